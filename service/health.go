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
	// ReplacedBy is, on a credential.recovered sent because the failing
	// credential was replaced and no recording holds it any more, the
	// scope's current credential; nil when the scope's settings were
	// removed, and for a credential that passes its checks again.
	ReplacedBy *replacement `json:"replacedBy,omitempty"`
}

// replacement names the credential that replaced a failing one.
type replacement struct {
	CredentialID string `json:"credentialId"`
	AccessKeyID  string `json:"accessKeyId"`
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
		ev.Message = "The saved " + credentialNoun(c.AccessKeyID) + " " + c.AccessKeyID + " fails its " + h.Check + " check: " + h.Reason
		s.log.Warn("key failing", "org", c.OrgID, "credential", c.ID, "accessKeyId", c.AccessKeyID, "check", h.Check, "code", h.Code)
	} else {
		ev.Message = "The saved " + credentialNoun(c.AccessKeyID) + " " + c.AccessKeyID + " passes its checks again."
		s.log.Info("key recovered", "org", c.OrgID, "credential", c.ID, "accessKeyId", c.AccessKeyID)
	}
	// The event's ID is the credential and the spell's start, so that a
	// retry or a second node puts it in the outbox once.
	id := "evt_" + c.ID + "_" + h.State + "_" + now.Format("20060102T150405.000000000")
	if err := s.cfg.Notifier.EnqueueOnce(context.WithoutCancel(ctx), c.OrgID, id, typ, ev); err != nil {
		s.log.Error("enqueue webhook", "credential", c.ID, "type", typ, "err", err)
	}
}

// replacedHealth ends the failing spell of c, a replaced credential that no
// recording holds any more, with credential.recovered: the customer fixed
// what credential.failing reported by saving working settings (every save
// passes the checks first), and c is no longer used, so it stops being
// watched and must not stay failing on the banner or the metric. checkDrained
// calls it once c is drained, at the save when no recording held c, or when
// the last recording holding it ended or moved to the new key. The store
// reports the change to one caller only, so one event is sent.
func (s *Service) replacedHealth(ctx context.Context, c *recsink.Credential) {
	now, err := s.store.Now(ctx)
	if err != nil {
		return
	}
	changed, err := s.store.SetCredentialHealth(ctx, c.ID, now, recsink.CredentialHealth{State: recsink.CredentialHealthOK})
	if err != nil {
		if !isCanceled(err) {
			s.log.Warn("key health: end the failing spell of a replaced key", "credential", c.ID, "err", err)
		}
		return
	}
	if !changed {
		return // it was not failing
	}
	ev := healthEvent{
		CredentialID: c.ID, Scope: c.Scope, AccessKeyID: c.AccessKeyID, Bucket: c.Destination.Bucket,
		State: recsink.CredentialHealthOK, Since: recsink.APITime(now),
	}
	what := credentialNoun(c.AccessKeyID)
	if cur, err := s.store.CurrentCredential(ctx, c.OrgID, c.Scope); err == nil {
		ev.ReplacedBy = &replacement{CredentialID: cur.ID, AccessKeyID: cur.AccessKeyID}
		ev.Message = "The saved " + what + " " + c.AccessKeyID + ", which failed its checks, is no longer used: it was replaced by " +
			credentialNoun(cur.AccessKeyID) + " " + cur.AccessKeyID + ", which passed every check when it was saved."
	} else {
		ev.Message = "The saved " + what + " " + c.AccessKeyID + ", which failed its checks, is no longer used: its settings were removed."
	}
	s.log.Info("failing key replaced", "org", c.OrgID, "credential", c.ID, "accessKeyId", c.AccessKeyID)
	id := "evt_" + c.ID + "_" + recsink.CredentialHealthOK + "_" + now.Format("20060102T150405.000000000")
	if err := s.cfg.Notifier.EnqueueOnce(context.WithoutCancel(ctx), c.OrgID, id, recsink.WebhookCredentialRecovered, ev); err != nil {
		s.log.Error("enqueue webhook", "credential", c.ID, "type", recsink.WebhookCredentialRecovered, "err", err)
	}
}

// credentialNoun is "role" for a role ARN, else "key".
func credentialNoun(id string) string {
	if recsink.IsRoleARN(id) {
		return "role"
	}
	return "key"
}

// isTransient reports whether a failed check failed for a reason that is
// not the key's: throttling, a server error, or no answer.
func isTransient(report *recsink.CheckReport) bool {
	for _, ch := range report.Checks {
		if ch.OK || ch.Skipped {
			continue
		}
		if ch.Transient {
			return true
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
