package storetest

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

func testAdmin(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("User", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		u := NewAdminUser(org.ID)
		email := u.Email
		u.Email = "  " + strings.ToUpper(email) + " "
		if err := s.CreateAdminUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if u.Email != email {
			t.Fatalf("stored email = %q, want %q (trimmed, lowercased)", u.Email, email)
		}
		got, err := s.FindAdminUserByEmail(ctx, strings.ToUpper(email))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != u.ID || got.OrgID != org.ID || got.Email != email ||
			!bytes.Equal(got.PasswordHash, u.PasswordHash) || !got.CreatedAt.Equal(u.CreatedAt) || got.CreatedAt.Location() != time.UTC {
			t.Fatalf("FindAdminUserByEmail = %+v, want %+v", got, u)
		}
	})

	t.Run("ErrUserNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		_, err := s.FindAdminUserByEmail(ctx, "nobody-"+strings.ToLower(recsink.RandomToken(6))+"@example.com")
		checkCode(t, err, recsink.ENOTFOUND)
		// A user of an organization that does not exist is refused.
		checkCode(t, s.CreateAdminUser(ctx, NewAdminUser("org_nope")), recsink.ENOTFOUND)
	})

	t.Run("ErrEmailConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		u := MustCreateAdminUser(t, s, a.ID)
		// The email is unique across organizations, whatever its case.
		dup := NewAdminUser(b.ID)
		dup.Email = strings.ToUpper(u.Email)
		checkCode(t, s.CreateAdminUser(ctx, dup), recsink.ECONFLICT)
		got, err := s.FindAdminUserByEmail(ctx, u.Email)
		if err != nil {
			t.Fatal(err)
		} else if got.ID != u.ID || got.OrgID != a.ID {
			t.Fatalf("after the conflict the email names %s of %s, want %s of %s", got.ID, got.OrgID, u.ID, a.ID)
		}
	})

	t.Run("Session", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		u := MustCreateAdminUser(t, s, org.ID)
		now := time.Now().UTC().Truncate(time.Microsecond)
		sess := NewAdminSession(u, now, 12*time.Hour)
		if err := s.CreateAdminSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindAdminSession(ctx, sess.TokenHash, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.TokenHash, sess.TokenHash) || got.UserID != u.ID || got.OrgID != org.ID || got.CSRFToken != sess.CSRFToken ||
			!got.CreatedAt.Equal(sess.CreatedAt) || !got.ExpiresAt.Equal(sess.ExpiresAt) || got.ExpiresAt.Location() != time.UTC {
			t.Fatalf("FindAdminSession = %+v, want %+v", got, sess)
		}

		// Expired: not found at or after its expiry.
		_, err = s.FindAdminSession(ctx, sess.TokenHash, sess.ExpiresAt)
		checkCode(t, err, recsink.ENOTFOUND)
		_, err = s.FindAdminSession(ctx, sess.TokenHash, sess.ExpiresAt.Add(time.Second))
		checkCode(t, err, recsink.ENOTFOUND)

		// Another token finds nothing.
		_, err = s.FindAdminSession(ctx, recsink.HashToken("nope"), now)
		checkCode(t, err, recsink.ENOTFOUND)

		// Deleted: gone, and deleting again is harmless.
		if err := s.DeleteAdminSession(ctx, sess.TokenHash); err != nil {
			t.Fatal(err)
		}
		_, err = s.FindAdminSession(ctx, sess.TokenHash, now)
		checkCode(t, err, recsink.ENOTFOUND)
		if err := s.DeleteAdminSession(ctx, sess.TokenHash); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ExpiredSessionCreated", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		u := MustCreateAdminUser(t, s, org.ID)
		now := time.Now().UTC().Truncate(time.Microsecond)
		old := NewAdminSession(u, now.Add(-13*time.Hour), 12*time.Hour)
		if err := s.CreateAdminSession(ctx, old); err != nil {
			t.Fatal(err)
		}
		_, err := s.FindAdminSession(ctx, old.TokenHash, now)
		checkCode(t, err, recsink.ENOTFOUND)
		// A new session beside it works.
		fresh := NewAdminSession(u, now, 12*time.Hour)
		if err := s.CreateAdminSession(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindAdminSession(ctx, fresh.TokenHash, now); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrSessionUserNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		sess := NewAdminSession(&recsink.AdminUser{ID: "adm_nope", OrgID: org.ID}, time.Now().UTC().Truncate(time.Microsecond), time.Hour)
		checkCode(t, s.CreateAdminSession(ctx, sess), recsink.ENOTFOUND)
	})

	t.Run("Isolation", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		ua, ub := MustCreateAdminUser(t, s, a.ID), MustCreateAdminUser(t, s, b.ID)
		now := time.Now().UTC().Truncate(time.Microsecond)
		sa, sb := NewAdminSession(ua, now, time.Hour), NewAdminSession(ub, now, time.Hour)
		for _, sess := range []*recsink.AdminSession{sa, sb} {
			if err := s.CreateAdminSession(ctx, sess); err != nil {
				t.Fatal(err)
			}
		}
		// Each session names its own user and organization only.
		for _, c := range []struct {
			sess *recsink.AdminSession
			user *recsink.AdminUser
		}{{sa, ua}, {sb, ub}} {
			got, err := s.FindAdminSession(ctx, c.sess.TokenHash, now)
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID != c.user.ID || got.OrgID != c.user.OrgID || got.CSRFToken != c.sess.CSRFToken {
				t.Fatalf("session of %s = user %s org %s", c.user.ID, got.UserID, got.OrgID)
			}
		}
		// Deleting A's session leaves B's.
		if err := s.DeleteAdminSession(ctx, sa.TokenHash); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FindAdminSession(ctx, sb.TokenHash, now); err != nil {
			t.Fatal(err)
		}
	})
}

// NewAdminUser returns an admin user of the organization with a random
// lowercase email and a placeholder password hash.
func NewAdminUser(orgID string) *recsink.AdminUser {
	return &recsink.AdminUser{
		ID:           recsink.NewID("adm"),
		OrgID:        orgID,
		Email:        "admin-" + strings.ToLower(recsink.RandomToken(9)) + "@example.com",
		PasswordHash: []byte("$2a$10$" + recsink.RandomToken(40)),
		CreatedAt:    at(0),
	}
}

// MustCreateAdminUser creates an admin user of the organization in s.
func MustCreateAdminUser(tb testing.TB, s recsink.Store, orgID string) *recsink.AdminUser {
	tb.Helper()
	u := NewAdminUser(orgID)
	if err := s.CreateAdminUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return u
}

// NewAdminSession returns a session of u created at created that lasts ttl,
// with a random token hash and CSRF token.
func NewAdminSession(u *recsink.AdminUser, created time.Time, ttl time.Duration) *recsink.AdminSession {
	return &recsink.AdminSession{
		TokenHash: recsink.HashToken(recsink.RandomToken(32)),
		UserID:    u.ID,
		OrgID:     u.OrgID,
		CSRFToken: recsink.RandomToken(32),
		CreatedAt: created,
		ExpiresAt: created.Add(ttl),
	}
}
