package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// RunHealthReason checks that a failing spell keeps its start but shows
// the latest cause: a key health check that failed first because the
// endpoint did not answer and then because the role's trust policy refuses
// the organization reads as the trust policy's refusal, with no second
// change reported.
func RunHealthReason(t *testing.T, s recsink.Store) {
	ctx := context.Background()
	org := MustCreateOrganization(t, s)
	c := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(0))
	first := recsink.CredentialHealth{State: recsink.CredentialHealthFailing, Check: recsink.OpAssumeRole, Reason: "The security token service (STS) does not answer"}
	later := recsink.CredentialHealth{State: recsink.CredentialHealthFailing, Check: recsink.OpAssumeRole, Code: "AccessDenied",
		Reason: "the role's trust policy does not allow this organization"}
	for i, step := range []struct {
		h    recsink.CredentialHealth
		want bool
	}{{first, true}, {later, false}} {
		changed, err := s.SetCredentialHealth(ctx, c.ID, at(10+i), step.h)
		if err != nil || changed != step.want {
			t.Fatalf("failing %d: %v, %v; want %v", i, changed, err, step.want)
		}
	}
	hs, err := s.ListCredentialHealth(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := hs[c.ID]
	if h.State != recsink.CredentialHealthFailing || h.Since == nil || !h.Since.Equal(at(10)) ||
		h.Check != later.Check || h.Code != later.Code || h.Reason != later.Reason {
		t.Fatalf("health %+v; want failing since %s with the latest cause %+v", h, at(10).Format(time.RFC3339), later)
	}
	if changed, err := s.SetCredentialHealth(ctx, c.ID, at(20), recsink.CredentialHealth{State: recsink.CredentialHealthOK}); err != nil || !changed {
		t.Fatalf("recovered: %v, %v", changed, err)
	}
}
