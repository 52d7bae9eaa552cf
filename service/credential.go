package service

import (
	"context"

	"github.com/recsink/recsink"
)

// resolveCredential returns the credential a new recording in the meeting
// binds: the room's own, else the organization's.
func (s *Service) resolveCredential(ctx context.Context, orgID, meetingID string) (*recsink.Credential, error) {
	c, err := s.store.CurrentCredential(ctx, orgID, meetingID)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		c, err = s.store.CurrentCredential(ctx, orgID, recsink.ScopeOrganization)
	}
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, recsink.Errorf(recsink.EDESTINATION, "no storage destination: set the organization's with PUT /v1/storage or the room's with PUT /v1/meetings/%s/recording/destination", meetingID)
	}
	return c, err
}

// credentialsChanged wakes the organization's recordings after a key was
// saved, so that blocked ones resume within moments.
func (s *Service) credentialsChanged(orgID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recorders {
		if r.rec.OrgID != orgID {
			continue
		}
		r.mu.Lock()
		clear(r.refused)
		r.mu.Unlock()
		r.poke()
	}
}

// switchCredential moves the recording to another saved key after S3
// refused the one it holds: the current key of the same scope, then the
// organization's, where it reaches the same bucket. It continues the same
// multipart upload with it.
func (r *recorder) switchCredential(refusedID string, se *recsink.StorageError) bool {
	r.mu.Lock()
	r.refused[refusedID] = true
	old := r.cred
	r.mu.Unlock()
	if old.ID != refusedID {
		return true // already switched by another part's failure
	}
	for _, scope := range []string{old.Scope, recsink.ScopeOrganization} {
		c, err := r.s.store.CurrentCredential(r.s.ctx, r.rec.OrgID, scope)
		if err != nil {
			continue
		}
		r.mu.Lock()
		skip := r.refused[c.ID]
		r.mu.Unlock()
		if skip || c.ID == old.ID || c.Destination.Bucket != r.rec.Destination.Bucket || c.Destination.Endpoint != r.rec.Destination.Endpoint {
			continue
		}
		key, err := r.s.accessKey(c)
		if err != nil {
			continue
		}
		client, err := r.s.cfg.Storage.Client(r.s.ctx, r.rec.Destination, key)
		if err != nil {
			continue
		}
		r.mu.Lock()
		r.cred, r.client = c, client
		r.rec.CredentialID, r.rec.AccessKeyID = c.ID, c.AccessKeyID
		r.mu.Unlock()
		_ = r.persist()
		r.event(recsink.EventCredentialSwitched, "S3 refused key %s (%s); continuing the same upload with key %s", old.AccessKeyID, orNone(se.Code, se.StatusCode), c.AccessKeyID)
		r.s.checkDrained(r.rec.OrgID, old.ID)
		return true
	}
	return false
}
