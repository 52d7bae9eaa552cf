package service

import (
	"context"
	"time"

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

// credentialsChanged wakes the organization's recordings ("" for every
// organization) after a key was saved, here or on another node, so that
// blocked ones resume within moments: each forgets which keys S3 refused
// and retries at once.
func (s *Service) credentialsChanged(orgID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recorders {
		if orgID != "" && r.rec.OrgID != orgID {
			continue
		}
		r.mu.Lock()
		clear(r.refused)
		r.mu.Unlock()
		r.keyChanges.Add(1)
		r.poke()
	}
}

// watchCredentials wakes the recordings of every organization whose keys
// changed on any node (the store's WatchCredentials), until ctx ends. Saves
// on this node also wake them directly; a second wake is harmless.
func (s *Service) watchCredentials(ctx context.Context) {
	for {
		changes, err := s.store.WatchCredentials(ctx)
		if err == nil {
			for orgID := range changes {
				s.credentialsChanged(orgID)
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The watch ended or could not start: anything may have changed.
		s.log.Warn("watch credentials; retrying", "err", err)
		s.credentialsChanged("")
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
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
		c, err := r.s.store.CurrentCredential(r.ctx, r.rec.OrgID, scope)
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
		client, err := r.s.cfg.Storage.Client(r.ctx, r.rec.Destination, key)
		if err != nil {
			continue
		}
		// Saved before it is used, so that the drain view counts the new
		// key from its first part. The old one is reported drained by the
		// upload loop once no part in flight uses it any more.
		if _, err := r.transition(r.ctx, func(rec *recsink.Recording) error {
			rec.CredentialID, rec.AccessKeyID = c.ID, c.AccessKeyID
			return nil
		}); err != nil {
			return false
		}
		r.mu.Lock()
		r.cred, r.client = c, client
		r.mu.Unlock()
		r.event(recsink.EventCredentialSwitched, "S3 refused key %s (%s); continuing the same upload with key %s", old.AccessKeyID, orNone(se.Code, se.StatusCode), c.AccessKeyID)
		return true
	}
	return false
}
