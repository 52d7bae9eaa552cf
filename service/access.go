package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
)

// AccessLink implements recsink.RecordingService. The link is signed with a
// key that can still read the object, proven by a HeadObject with it: the
// recording's own key first, then, when S3 refuses that one (deleted after
// the recording, say), the current key of the recording's scope and then of
// the organization, where it reaches the same bucket, as the upload does
// when a key is refused.
func (s *Service) AccessLink(ctx context.Context, orgID, id string, validFor time.Duration) (*recsink.AccessLink, error) {
	if validFor <= 0 || validFor > recsink.MaxAccessLinkValidity {
		return nil, recsink.FieldErrorf("validForSeconds", "validForSeconds must be from 1 to %d", int(recsink.MaxAccessLinkValidity.Seconds()))
	}
	rec, _, err := s.FindRecording(ctx, orgID, id)
	if err != nil {
		return nil, err
	}
	switch rec.State {
	case recsink.RecordingUploaded:
	case recsink.RecordingDeleted:
		return nil, recsink.Errorf(recsink.ECONFLICT, "the recording was deleted: its object is no longer in the bucket")
	case recsink.RecordingFailed:
		return nil, recsink.Errorf(recsink.ECONFLICT, "the recording failed: there is no complete object to download")
	default:
		return nil, recsink.Errorf(recsink.ECONFLICT, "the recording is %s; a link is available once it is uploaded", rec.State)
	}

	var refused *recsink.StorageError
	tried := map[string]bool{}
	try := func(c *recsink.Credential) (*recsink.AccessLink, error) {
		tried[c.ID] = true
		if c.Destination.Bucket != rec.Destination.Bucket || c.Destination.Endpoint != rec.Destination.Endpoint {
			return nil, nil
		}
		key, err := s.accessKey(c)
		if err != nil {
			return nil, err
		}
		client, err := s.cfg.Storage.Client(ctx, rec.Destination, key)
		if err != nil {
			return nil, err
		}
		if _, _, err := client.HeadObject(ctx, rec.ObjectKey); err != nil {
			var se *recsink.StorageError
			if errors.As(err, &se) && se.KeyRefused() {
				refused = se
				return nil, nil
			}
			return nil, fmt.Errorf("access link to %s: %w", rec.ID, err)
		}
		// S3 refuses the link once X-Amz-Date (the signing time, on this
		// node's clock) plus X-Amz-Expires has passed.
		now := time.Now()
		u, err := client.PresignGet(ctx, rec.ObjectKey, validFor)
		if err != nil {
			return nil, err
		}
		return &recsink.AccessLink{URL: u, Expires: now.Add(validFor).UTC(), AccessKeyID: c.AccessKeyID}, nil
	}

	scope := recsink.ScopeOrganization
	if own, err := s.store.FindCredential(ctx, orgID, rec.CredentialID); err == nil {
		scope = own.Scope
		if link, err := try(own); link != nil || err != nil {
			return link, err
		}
	} else if recsink.ErrorCode(err) != recsink.ENOTFOUND {
		return nil, err
	}
	for _, sc := range []string{scope, recsink.ScopeOrganization} {
		c, err := s.store.CurrentCredential(ctx, orgID, sc)
		if recsink.ErrorCode(err) == recsink.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, err
		}
		if tried[c.ID] {
			continue
		}
		if link, err := try(c); link != nil || err != nil {
			return link, err
		}
	}
	msg := "the key that wrote this recording was deleted and no current key reaches the bucket: save a key that can read " + rec.Destination.BucketPath()
	if refused != nil {
		msg = fmt.Sprintf("S3 refused the key that wrote this recording (%s) and no current key reaches the bucket: save a key that can read %s", refused.Code, rec.Destination.BucketPath())
		if refused.Code == "" {
			msg = "S3 refused the key that wrote this recording and no current key reaches the bucket: save a key that can read " + rec.Destination.BucketPath()
		}
	}
	return nil, recsink.Errorf(recsink.EDESTINATION, "%s", msg)
}
