package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/recsink/recsink"
)

// parityProbeBody is the content of the parity probe, deleted at once.
const parityProbeBody = "recsink key parity check: safe to delete\n"

// checkParity checks, before key is saved for scope, that it can take over
// the scope's running recordings (those holding one of the scope's
// generations): ListParts on one running multipart upload, and a probe
// PutObject and DeleteObject under its prefix. S3 refusing a key there is
// the spec's step 1 ("identical permissions") proven rather than assumed.
// nil when no recording of the scope runs.
func (s *Service) checkParity(ctx context.Context, orgID, scope string, dest recsink.Destination, key recsink.AccessKey) (*recsink.Parity, error) {
	creds, err := s.store.ListCredentials(ctx, orgID)
	if err != nil {
		return nil, err
	}
	ofScope := map[string]bool{}
	for _, c := range creds {
		if c.Scope == scope {
			ofScope[c.ID] = true
		}
	}
	holding, err := s.store.ListHoldingRecordings(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var running []*recsink.Recording
	var sample *recsink.Recording // one with a multipart upload on dest's bucket
	for _, r := range holding {
		if !ofScope[r.CredentialID] {
			continue
		}
		running = append(running, r)
		if sample == nil && r.UploadID != "" && r.Destination.Bucket == dest.Bucket && r.Destination.Endpoint == dest.Endpoint {
			sample = r
		}
	}
	n := len(running)
	if n == 0 {
		return nil, nil
	}
	p := &recsink.Parity{RunningRecordings: n}
	if sample == nil {
		p.Message = fmt.Sprintf("The %s write to another bucket than this one (or have not started their upload yet): they keep the key they hold until they end.", recordingsWord(n))
		return p, nil
	}
	client, err := s.cfg.Storage.Client(ctx, sample.Destination, roleSubject(orgID, key))
	if err != nil {
		return nil, err
	}
	// "key" or "role", as the customer saved it.
	noun := "key"
	if recsink.IsRoleARN(key.ID) {
		noun = "role"
	}
	refused := func(op string, err error) (*recsink.Parity, error) {
		var se *recsink.StorageError
		if !errors.As(err, &se) {
			return nil, err
		}
		p.Check, p.Permission, p.Code = op, recsink.Permission(op), se.Code
		p.Message = fmt.Sprintf("The new %s cannot take over the %s: S3 refused %s (%s), so it lacks %s on bucket %s. Until it has it, they keep the key they hold; give the new %s the same permissions before deleting the old key.",
			noun, recordingsWord(n), op, orNone(se.Code, se.StatusCode), p.Permission, sample.Destination.BucketPath(), noun)
		return p, nil
	}
	if _, err := client.ListParts(ctx, sample.ObjectKey, sample.UploadID); err != nil {
		return refused("ListParts", err)
	}
	probe := path.Join(path.Dir(sample.ObjectKey), ".recsink-parity-"+recsink.RandomToken(8))
	if err := client.PutObject(ctx, probe, "text/plain", nil, bytes.NewReader([]byte(parityProbeBody)), int64(len(parityProbeBody))); err != nil {
		return refused("PutObject", err)
	}
	if err := client.DeleteObject(ctx, probe); err != nil {
		return refused("DeleteObject", err)
	}
	p.OK = true
	p.Message = fmt.Sprintf("The new %s can take over the %s.", noun, recordingsWord(n))
	return p, nil
}

// recordingsWord is "1 running recording" or "N running recordings".
func recordingsWord(n int) string {
	if n == 1 {
		return "1 running recording"
	}
	return fmt.Sprintf("%d running recordings", n)
}
