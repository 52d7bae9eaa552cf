package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// testAudit: audit events come back newest first, page by page, only to
// their organization; an admin's events name the admin by email; Prune
// deletes those older than its time.
func testAudit(t *testing.T, open func(t *testing.T) recsink.Store) {
	s, ctx := open(t), context.Background()
	org := MustCreateOrganization(t, s)
	other := MustCreateOrganization(t, s)
	u := &recsink.AdminUser{ID: recsink.NewID("adm"), OrgID: org.ID, Email: "ada-" + recsink.RandomToken(4) + "@example.com", PasswordHash: []byte("x"), CreatedAt: at(0)}
	if err := s.CreateAdminUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	var want []*recsink.AuditEvent
	for i := range 5 {
		e := &recsink.AuditEvent{ID: recsink.NewID("aud"), OrgID: org.ID, Time: at(i), Actor: "apikey:rsk_…0011aabb", Address: "192.0.2.7",
			Action: recsink.AuditRecordingDeleted, Target: recsink.NewID("rec"), Details: "object rec/x.mkv in my-bucket"}
		if i == 3 {
			e.Actor, e.AdminUserID = "admin", u.ID
		}
		if err := s.AddAuditEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append([]*recsink.AuditEvent{e}, want...)
	}
	if err := s.AddAuditEvent(ctx, &recsink.AuditEvent{ID: recsink.NewID("aud"), OrgID: other.ID, Time: at(1), Actor: "cli", Action: recsink.AuditStorageSaved}); err != nil {
		t.Fatal(err)
	}

	var got []*recsink.AuditEvent
	cursor := ""
	for range 10 {
		page, next, err := s.ListAuditEvents(ctx, org.ID, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, e := range got {
		w := want[i]
		if e.ID != w.ID || !e.Time.Equal(w.Time) || e.Address != w.Address || e.Action != w.Action || e.Target != w.Target || e.Details != w.Details {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
		wantActor := w.Actor
		if w.AdminUserID != "" {
			wantActor = u.Email
		}
		if e.Actor != wantActor {
			t.Errorf("event %d: actor %q, want %q", i, e.Actor, wantActor)
		}
	}
	if _, _, err := s.ListAuditEvents(ctx, org.ID, "%%%", 2); recsink.ErrorCode(err) != recsink.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}

	st, err := s.Prune(ctx, at(2).Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	left, _, err := s.ListAuditEvents(ctx, org.ID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if st.AuditEvents < 3 || len(left) != 2 || left[1].ID != want[1].ID {
		t.Fatalf("after Prune: stats %+v, %d left", st, len(left))
	}
}
