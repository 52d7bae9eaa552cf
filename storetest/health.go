package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// testCredentialHealth covers the key health watch's state: which
// credentials are watched, one check per period, one change per spell.
func testCredentialHealth(t *testing.T, open func(t *testing.T) recsink.Store) {
	s, ctx := open(t), context.Background()
	org := MustCreateOrganization(t, s)
	held := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(0))
	r := NewRecording(org.ID, "health", recsink.RecordingRecording)
	r.CredentialID, r.AccessKeyID = held.ID, held.AccessKeyID
	if err := s.CreateRecording(ctx, r, TestLeaseTTL); err != nil {
		t.Fatal(err)
	}
	MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(1)) // replaced, held by none
	cur := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(2))

	watched, err := s.ListWatchedCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range watched {
		if c.OrgID == org.ID {
			ids = append(ids, c.ID)
		}
	}
	if !slices.Equal(ids, []string{held.ID, cur.ID}) {
		t.Fatalf("watched %v, want the held %s and the current %s", ids, held.ID, cur.ID)
	}

	// One claim per period.
	now := at(10)
	for i, want := range []bool{true, false} {
		ok, err := s.ClaimCredentialCheck(ctx, cur.ID, now, now.Add(-time.Hour))
		if err != nil || ok != want {
			t.Fatalf("claim %d: %v, %v; want %v", i, ok, err, want)
		}
	}
	if ok, err := s.ClaimCredentialCheck(ctx, cur.ID, at(20), at(15)); err != nil || !ok {
		t.Fatalf("claim a period later: %v, %v", ok, err)
	}

	// A failing spell changes the state once, and ends once.
	fail := recsink.CredentialHealth{State: recsink.CredentialHealthFailing, Check: "HeadBucket", Code: "InvalidAccessKeyId", Reason: "S3 does not know this access key ID"}
	for i, want := range []bool{true, false} {
		changed, err := s.SetCredentialHealth(ctx, cur.ID, at(21+i), fail)
		if err != nil || changed != want {
			t.Fatalf("failing %d: %v, %v; want %v", i, changed, err, want)
		}
	}
	hs, err := s.ListCredentialHealth(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := hs[cur.ID]
	if h.State != recsink.CredentialHealthFailing || h.Since == nil || !h.Since.Equal(at(21)) || h.Since.Location() != time.UTC ||
		h.Check != fail.Check || h.Code != fail.Code || h.Reason != fail.Reason || h.CheckedAt == nil || !h.CheckedAt.Equal(at(20)) {
		t.Fatalf("health %+v", h)
	}
	if hs[held.ID].State != recsink.CredentialHealthOK || hs[held.ID].CheckedAt != nil {
		t.Fatalf("unchecked credential: %+v", hs[held.ID])
	}
	if n, err := s.CountFailingCredentials(ctx); err != nil || n < 1 {
		t.Fatalf("CountFailingCredentials = %d, %v", n, err)
	}
	ok := recsink.CredentialHealth{State: recsink.CredentialHealthOK}
	for i, want := range []bool{true, false} {
		changed, err := s.SetCredentialHealth(ctx, cur.ID, at(30+i), ok)
		if err != nil || changed != want {
			t.Fatalf("recovered %d: %v, %v; want %v", i, changed, err, want)
		}
	}
	hs, err = s.ListCredentialHealth(ctx, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h := hs[cur.ID]; h.State != recsink.CredentialHealthOK || h.Since != nil || h.Reason != "" {
		t.Fatalf("health after recovery %+v", h)
	}
}
