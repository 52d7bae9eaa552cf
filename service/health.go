package service

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/recsink/recsink"
)

// healthEvent is the data of the credential.failing and
// credential.recovered webhooks.
type healthEvent struct {
	CredentialID string          `json:"credentialId"`
	Scope        string          `json:"scope"`
	AccessKeyID  string          `json:"accessKeyId"`
	Bucket       string          `json:"bucket"`
	State        string          `json:"state"`
	Since        recsink.APITime `json:"since"`
	Check        string          `json:"check,omitempty"`
	Code         string          `json:"code,omitempty"`
	Message      string          `json:"message"`
}

// healthWatch re-checks, every CredentialCheckInterval, each saved key and
// role that a current or draining generation uses, so that a key deleted
// or stripped of a permission is reported (credential.failing, the admin
// banner, the metric) before the next meeting fails with it. Every node
// runs it; the database's last-check time lets one node check each
// credential per period, and the failing state changes once per spell.
func (s *Service) healthWatch(ctx context.Context) {
	every := s.cfg.CredentialCheckInterval
	if every < 0 {
		return
	}
	for {
		// Wake about six times a period, jittered, so that credentials
		// saved at once and nodes started at once spread their checks.
		wait := every/8 + time.Duration(rand.Int64N(int64(every/8)+1))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		s.checkHealth(ctx)
	}
}

// checkHealth checks each watched credential that is due.
func (s *Service) checkHealth(ctx context.Context) {
	creds, err := s.store.ListWatchedCredentials(ctx)
	if err != nil {
		if !isCanceled(err) {
			s.log.Warn("key health watch: list credentials", "err", err)
		}
		return
	}
	for _, c := range creds {
		if ctx.Err() != nil {
			return
		}
		now, err := s.store.Now(ctx)
		if err != nil {
			return
		}
		// Due three quarters of a period after the last check: with the
		// wake-ups above, each credential is checked again within one
		// period, so a key that stops working is found within one.
		ok, err := s.store.ClaimCredentialCheck(ctx, c.ID, now, now.Add(-s.cfg.CredentialCheckInterval*3/4))
		if err != nil || !ok {
			continue // checked lately, here or by another node
		}
		s.checkCredential(ctx, c)
	}
}

// checkCredential runs the storage check on c and records the outcome,
// sending a webhook when the state changed.
func (s *Service) checkCredential(ctx context.Context, c *recsink.Credential) {
	key, err := s.accessKey(c)
	if err != nil {
		s.log.Error("key health watch", "credential", c.ID, "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	report, err := s.cfg.Storage.Check(cctx, c.Destination, key)
	cancel()
	if err != nil {
		if !isCanceled(err) {
			s.log.Warn("key health watch: check", "credential", c.ID, "err", err)
		}
		return
	}
	h := recsink.CredentialHealth{State: recsink.CredentialHealthOK}
	if !report.OK {
		h.State = recsink.CredentialHealthFailing
		for _, ch := range report.Checks {
			if !ch.OK && !ch.Skipped {
				h.Check, h.Code, h.Reason = ch.Name, ch.Code, ch.Message
				break
			}
		}
		if isTransient(report) {
			// Throttling and server errors say nothing about the key: do
			// not report a key as failing for them.
			return
		}
	}
	now, err := s.store.Now(ctx)
	if err != nil {
		return
	}
	changed, err := s.store.SetCredentialHealth(ctx, c.ID, now, h)
	if err != nil || !changed {
		return
	}
	ev := healthEvent{
		CredentialID: c.ID, Scope: c.Scope, AccessKeyID: c.AccessKeyID, Bucket: c.Destination.Bucket,
		State: h.State, Since: recsink.APITime(now), Check: h.Check, Code: h.Code,
	}
	typ := recsink.WebhookCredentialRecovered
	if h.State == recsink.CredentialHealthFailing {
		typ = recsink.WebhookCredentialFailing
		ev.Message = "The saved key " + c.AccessKeyID + " fails its " + h.Check + " check: " + h.Reason
		s.log.Warn("key failing", "org", c.OrgID, "credential", c.ID, "accessKeyId", c.AccessKeyID, "check", h.Check, "code", h.Code)
	} else {
		ev.Message = "The saved key " + c.AccessKeyID + " passes its checks again."
		s.log.Info("key recovered", "org", c.OrgID, "credential", c.ID, "accessKeyId", c.AccessKeyID)
	}
	// The event's ID is the credential and the spell's start, so that a
	// retry or a second node puts it in the outbox once.
	id := "evt_" + c.ID + "_" + h.State + "_" + now.Format("20060102T150405.000000000")
	if err := s.cfg.Notifier.EnqueueOnce(context.WithoutCancel(ctx), c.OrgID, id, typ, ev); err != nil {
		s.log.Error("enqueue webhook", "credential", c.ID, "type", typ, "err", err)
	}
}

// isTransient reports whether a failed check failed for a reason that is
// not the key's: throttling, a server error, or no answer.
func isTransient(report *recsink.CheckReport) bool {
	for _, ch := range report.Checks {
		if ch.OK || ch.Skipped {
			continue
		}
		switch ch.Code {
		case "SlowDown", "Throttling", "ThrottlingException", "InternalError", "ServiceUnavailable", "Timeout":
			return true
		}
		return false
	}
	return false
}

// FailingCredentials counts saved keys and roles in a failing spell, for
// metrics.
func (s *Service) FailingCredentials(ctx context.Context) (int, error) {
	return s.store.CountFailingCredentials(ctx)
}
