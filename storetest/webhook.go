package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// Claims take due deliveries of every organization, so claim tests could
// take each other's rows in a shared database. They run one at a time
// (claimMu), each in its own hour of the years 1000 to 1999, and every other
// test's deliveries are due in 2025 or later, beyond any claim's now.
var claimMu sync.Mutex

// claimEpoch returns a random hour in the years 1000 to 1999 for one claim
// test.
func claimEpoch() time.Time {
	return time.Date(1000+rand.IntN(999), 1, 1, rand.IntN(364*24), 0, 0, 0, time.UTC)
}

func testWebhookEndpoint(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		e := NewWebhookEndpoint(org.ID)
		// Every byte value, NUL and 0xff included, must round-trip.
		e.SecretCiphertext = make([]byte, 256)
		for i := range e.SecretCiphertext {
			e.SecretCiphertext[i] = byte(255 - i)
		}
		if err := s.PutWebhookEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
		checkWebhookEndpoint(t, MustFindWebhookEndpoint(t, s, org.ID), e)
	})

	t.Run("Replace", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		e := NewWebhookEndpoint(org.ID)
		if err := s.PutWebhookEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
		e2 := &recsink.WebhookEndpoint{
			OrgID:                    org.ID,
			URL:                      "https://hooks.example.com/v2?token=" + recsink.RandomToken(6),
			Events:                   []string{},
			SecretCiphertext:         []byte(recsink.RandomToken(30)),
			PreviousSecretCiphertext: e.SecretCiphertext,
			PreviousSecretExpiresAt:  ptr(at(86400)),
			DisabledAt:               ptr(at(70)),
			CreatedAt:                e.CreatedAt,
			UpdatedAt:                at(60),
		}
		if err := s.PutWebhookEndpoint(ctx, e2); err != nil {
			t.Fatal(err)
		}
		checkWebhookEndpoint(t, MustFindWebhookEndpoint(t, s, org.ID), e2)

		// And back: the previous secret and times are cleared.
		e.UpdatedAt = at(120)
		if err := s.PutWebhookEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
		checkWebhookEndpoint(t, MustFindWebhookEndpoint(t, s, org.ID), e)
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		MustPutWebhookEndpoint(t, s, org.ID)
		if err := s.DeleteWebhookEndpoint(ctx, org.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.FindWebhookEndpoint(ctx, org.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.DeleteWebhookEndpoint(ctx, org.ID), recsink.ENOTFOUND)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		_, err := s.FindWebhookEndpoint(ctx, org.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.DeleteWebhookEndpoint(ctx, org.ID), recsink.ENOTFOUND)
		// An endpoint needs an organization.
		checkCode(t, s.PutWebhookEndpoint(ctx, NewWebhookEndpoint(recsink.NewID("org"))), recsink.ENOTFOUND)
	})

	t.Run("CrossOrganization", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		ea := MustPutWebhookEndpoint(t, s, a.ID)
		_, err := s.FindWebhookEndpoint(ctx, b.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.DeleteWebhookEndpoint(ctx, b.ID), recsink.ENOTFOUND)
		MustPutWebhookEndpoint(t, s, b.ID)
		if err := s.DeleteWebhookEndpoint(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		checkWebhookEndpoint(t, MustFindWebhookEndpoint(t, s, a.ID), ea)
	})
}

func testWebhookDelivery(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		d := NewWebhookDelivery(org.ID, at(10))
		d.Payload = []byte{0, 1, 0xff, '{', '}'}
		d.State = "" // the store sets pending
		if err := s.CreateWebhookDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		if d.State != recsink.DeliveryPending {
			t.Fatalf("State = %q after create, want %q", d.State, recsink.DeliveryPending)
		}
		checkWebhookDeliveries(t, listAllWebhookDeliveries(t, s, org.ID, 10), []*recsink.WebhookDelivery{d})
	})

	t.Run("ErrIDConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		d := MustCreateWebhookDelivery(t, s, org.ID, at(10))
		dup := NewWebhookDelivery(org.ID, at(20))
		dup.ID = d.ID
		checkCode(t, s.CreateWebhookDelivery(ctx, dup), recsink.ECONFLICT)
		checkWebhookDeliveries(t, listAllWebhookDeliveries(t, s, org.ID, 10), []*recsink.WebhookDelivery{d})
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		checkCode(t, s.CreateWebhookDelivery(ctx, NewWebhookDelivery(recsink.NewID("org"), at(10))), recsink.ENOTFOUND)
		checkCode(t, s.UpdateWebhookDelivery(ctx, NewWebhookDelivery(org.ID, at(10))), recsink.ENOTFOUND)
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		d := MustCreateWebhookDelivery(t, s, org.ID, at(10))
		other := MustCreateWebhookDelivery(t, s, org.ID, at(10))

		d.Attempts, d.LastStatus, d.LastError, d.NextAttemptAt = 1, 500, "500 Internal Server Error", at(20)
		if err := s.UpdateWebhookDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		checkWebhookDeliveries(t, listAllWebhookDeliveries(t, s, org.ID, 10), []*recsink.WebhookDelivery{other, d})

		d.State, d.Attempts, d.LastStatus, d.LastError, d.DeliveredAt = recsink.DeliveryDelivered, 2, 204, "", ptr(at(21))
		if err := s.UpdateWebhookDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		checkWebhookDeliveries(t, listAllWebhookDeliveries(t, s, org.ID, 10), []*recsink.WebhookDelivery{other, d})

		// The organization is part of the key.
		moved := *d
		moved.OrgID = MustCreateOrganization(t, s).ID
		checkCode(t, s.UpdateWebhookDelivery(ctx, &moved), recsink.ENOTFOUND)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		var want []*recsink.WebhookDelivery
		for i := range 5 {
			want = append(want, MustCreateWebhookDelivery(t, s, a.ID, at(i)))
			MustCreateWebhookDelivery(t, s, b.ID, at(i))
		}
		slices.Reverse(want) // newest first
		for _, limit := range []int{1, 2, 5, 6} {
			t.Run(fmt.Sprint("Limit", limit), func(t *testing.T) {
				checkWebhookDeliveries(t, listAllWebhookDeliveries(t, s, a.ID, limit), want)
			})
		}

		// An organization without deliveries lists none.
		ds, next, err := s.ListWebhookDeliveries(ctx, MustCreateOrganization(t, s).ID, "", 10)
		if err != nil {
			t.Fatal(err)
		} else if len(ds) != 0 || next != "" {
			t.Fatalf("got %d deliveries and cursor %q, want none", len(ds), next)
		}

		_, _, err = s.ListWebhookDeliveries(ctx, a.ID, "not a cursor", 10)
		checkCode(t, err, recsink.EINVALID)
	})

	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		claimMu.Lock()
		t.Cleanup(claimMu.Unlock) // after the cleanup below, which runs first
		epoch := claimEpoch()
		e := func(sec int) time.Time { return epoch.Add(time.Duration(sec) * time.Second) }
		// Rows that a failed earlier run left behind in a shared database
		// must not count against this test's limits: claim them away.
		drainClaims(t, s, e(3600))

		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		// Due in the order first, second, third: second and third at the
		// same time, in creation order; over two organizations.
		second := MustCreateWebhookDelivery(t, s, a.ID, e(20))
		first := MustCreateWebhookDelivery(t, s, b.ID, e(10))
		third := MustCreateWebhookDelivery(t, s, a.ID, e(20))
		later := MustCreateWebhookDelivery(t, s, a.ID, e(100))
		done := MustCreateWebhookDelivery(t, s, b.ID, e(5))
		done.State, done.DeliveredAt = recsink.DeliveryDelivered, ptr(e(6))
		if err := s.UpdateWebhookDelivery(ctx, done); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// Leave nothing pending for later claims.
			for _, d := range []*recsink.WebhookDelivery{first, second, third, later} {
				d.State = recsink.DeliveryFailed
				if err := s.UpdateWebhookDelivery(context.Background(), d); err != nil {
					t.Error(err)
				}
			}
		})

		claim := func(now, lease time.Time, limit int) []*recsink.WebhookDelivery {
			t.Helper()
			ds, err := s.ClaimWebhookDeliveries(ctx, now, lease, limit)
			if err != nil {
				t.Fatal(err)
			}
			return ds
		}
		// leased returns copies of ds as claimed with lease.
		leased := func(lease time.Time, ds ...*recsink.WebhookDelivery) []*recsink.WebhookDelivery {
			var out []*recsink.WebhookDelivery
			for _, d := range ds {
				c := *d
				c.NextAttemptAt = lease
				out = append(out, &c)
			}
			return out
		}

		// Nothing is due before the first.
		checkWebhookDeliveries(t, claim(e(9), e(1000), 10), nil)
		// Due ones only, oldest first, up to the limit.
		checkWebhookDeliveries(t, claim(e(30), e(1000), 2), leased(e(1000), first, second))
		checkWebhookDeliveries(t, claim(e(30), e(1000), 2), leased(e(1000), third))
		// Claimed rows are not claimed again until their lease ends; the row
		// not yet due waits for its time.
		checkWebhookDeliveries(t, claim(e(99), e(2000), 10), nil)
		checkWebhookDeliveries(t, claim(e(100), e(2000), 10), leased(e(2000), later))
		checkWebhookDeliveries(t, claim(e(999), e(2000), 10), nil)
		// The lease ended: the rows are due again, with equal times in
		// creation order.
		checkWebhookDeliveries(t, claim(e(1000), e(3000), 10), leased(e(3000), second, first, third))
		// The lease is stored.
		checkWebhookDeliveries(t, listAllWebhookDeliveries(t, s, a.ID, 10),
			append(leased(e(2000), later), leased(e(3000), third, second)...))
		// A row that is no longer pending is never claimed.
		first.State, first.Attempts, first.NextAttemptAt, first.DeliveredAt =
			recsink.DeliveryDelivered, 1, e(1001), ptr(e(1001))
		if err := s.UpdateWebhookDelivery(ctx, first); err != nil {
			t.Fatal(err)
		}
		checkWebhookDeliveries(t, claim(e(3000), e(4000), 10), leased(e(4000), later, second, third))
	})
}

// drainClaims claims every pending delivery due at now, with a lease in the
// far future.
func drainClaims(t *testing.T, s recsink.Store, now time.Time) {
	t.Helper()
	for range 1000 {
		ds, err := s.ClaimWebhookDeliveries(context.Background(), now, time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			return
		}
	}
	t.Fatal("claims do not end")
}

// NewWebhookEndpoint returns an endpoint of the organization with every
// field but the previous secret and disabled time set.
func NewWebhookEndpoint(orgID string) *recsink.WebhookEndpoint {
	return &recsink.WebhookEndpoint{
		OrgID:            orgID,
		URL:              "https://hooks.example.com/recsink/" + recsink.RandomToken(6),
		Events:           []string{recsink.WebhookRecordingFinished, recsink.WebhookRecordingFailed},
		SecretCiphertext: []byte(recsink.RandomToken(40)),
		CreatedAt:        at(1),
		UpdatedAt:        at(2),
	}
}

// MustPutWebhookEndpoint puts a new endpoint for the organization in s.
func MustPutWebhookEndpoint(tb testing.TB, s recsink.Store, orgID string) *recsink.WebhookEndpoint {
	tb.Helper()
	e := NewWebhookEndpoint(orgID)
	if err := s.PutWebhookEndpoint(context.Background(), e); err != nil {
		tb.Fatal(err)
	}
	return e
}

// MustFindWebhookEndpoint returns the organization's endpoint.
func MustFindWebhookEndpoint(tb testing.TB, s recsink.Store, orgID string) *recsink.WebhookEndpoint {
	tb.Helper()
	e, err := s.FindWebhookEndpoint(context.Background(), orgID)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// NewWebhookDelivery returns a pending delivery of the organization with a
// random ID, due at next.
func NewWebhookDelivery(orgID string, next time.Time) *recsink.WebhookDelivery {
	id := recsink.NewID("evt")
	return &recsink.WebhookDelivery{
		ID:            id,
		OrgID:         orgID,
		Type:          recsink.WebhookRecordingFinished,
		Payload:       []byte(`{"id":"` + id + `"}`),
		CreatedAt:     next,
		State:         recsink.DeliveryPending,
		NextAttemptAt: next,
	}
}

// MustCreateWebhookDelivery creates a pending delivery due at next in s.
func MustCreateWebhookDelivery(tb testing.TB, s recsink.Store, orgID string, next time.Time) *recsink.WebhookDelivery {
	tb.Helper()
	d := NewWebhookDelivery(orgID, next)
	if err := s.CreateWebhookDelivery(context.Background(), d); err != nil {
		tb.Fatal(err)
	}
	return d
}

// listAllWebhookDeliveries follows cursors until the last page.
func listAllWebhookDeliveries(t *testing.T, s recsink.Store, orgID string, limit int) []*recsink.WebhookDelivery {
	t.Helper()
	var all []*recsink.WebhookDelivery
	cursor := ""
	for range 100 {
		ds, next, err := s.ListWebhookDeliveries(context.Background(), orgID, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > limit {
			t.Fatalf("page of %d deliveries, limit %d", len(ds), limit)
		}
		all = append(all, ds...)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatal("pagination does not end")
	return nil
}

func checkWebhookEndpoint(t *testing.T, got, want *recsink.WebhookEndpoint) {
	t.Helper()
	if got.OrgID != want.OrgID || got.URL != want.URL || !slices.Equal(got.Events, want.Events) ||
		!bytes.Equal(got.SecretCiphertext, want.SecretCiphertext) ||
		!bytes.Equal(got.PreviousSecretCiphertext, want.PreviousSecretCiphertext) ||
		!equalTimePtr(got.PreviousSecretExpiresAt, want.PreviousSecretExpiresAt) ||
		!equalTimePtr(got.DisabledAt, want.DisabledAt) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("webhook endpoint =\n%+v\nwant\n%+v", *got, *want)
	}
	if got.Events == nil {
		t.Fatal("Events is nil, want an empty list")
	}
	if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Fatalf("webhook endpoint times are not in UTC: %v, %v", got.CreatedAt, got.UpdatedAt)
	}
}

func checkWebhookDelivery(t *testing.T, got, want *recsink.WebhookDelivery) {
	t.Helper()
	if got.ID != want.ID || got.OrgID != want.OrgID || got.Type != want.Type ||
		!bytes.Equal(got.Payload, want.Payload) || !got.CreatedAt.Equal(want.CreatedAt) ||
		got.State != want.State || got.Attempts != want.Attempts || !got.NextAttemptAt.Equal(want.NextAttemptAt) ||
		got.LastStatus != want.LastStatus || got.LastError != want.LastError ||
		!equalTimePtr(got.DeliveredAt, want.DeliveredAt) {
		t.Fatalf("webhook delivery =\n%+v\nwant\n%+v", *got, *want)
	}
	if got.CreatedAt.Location() != time.UTC || got.NextAttemptAt.Location() != time.UTC {
		t.Fatalf("webhook delivery times are not in UTC: %v, %v", got.CreatedAt, got.NextAttemptAt)
	}
}

func checkWebhookDeliveries(t *testing.T, got, want []*recsink.WebhookDelivery) {
	t.Helper()
	if len(got) != len(want) {
		var ids []string
		for _, d := range got {
			ids = append(ids, d.ID+"("+d.OrgID+")")
		}
		t.Fatalf("got %d webhook deliveries %v, want %d", len(got), ids, len(want))
	}
	for i := range want {
		checkWebhookDelivery(t, got[i], want[i])
	}
}

func testWebhook(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("Endpoint", func(t *testing.T) { t.Parallel(); testWebhookEndpoint(t, open) })
	t.Run("Delivery", func(t *testing.T) { t.Parallel(); testWebhookDelivery(t, open) })
}
