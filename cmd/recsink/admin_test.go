package main_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/sqlite"
)

func TestAdminCreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := main.Run(ctx, []string{"org", "create", "acme", "--data", dir}, &out, &errb); err != nil {
		t.Fatalf("org create: %v\n%s", err, errb.String())
	}

	create := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := main.RunAdmin(ctx, append([]string{"create"}, args...), strings.NewReader(stdin), &out, &errb)
		return out.String(), err
	}

	t.Run("OK", func(t *testing.T) {
		out, err := create("correct horse battery\n", "--org", "acme", "--email", "Ada@Example.com", "--password-stdin", "--data", dir)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "ada@example.com") {
			t.Fatalf("output %q does not name the admin", out)
		}
		db, err := sqlite.Open(ctx, filepath.Join(dir, "recsink.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		u, err := db.FindAdminUserByEmail(ctx, "ada@example.com")
		if err != nil {
			t.Fatal(err)
		}
		org, err := db.FindOrganizationByName(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if u.OrgID != org.ID {
			t.Fatalf("admin of %s, want %s", u.OrgID, org.ID)
		}
		if err := bcrypt.CompareHashAndPassword(u.PasswordHash, []byte("correct horse battery")); err != nil {
			t.Fatalf("stored hash does not match the password (line ending kept?): %v", err)
		}
		if cost, _ := bcrypt.Cost(u.PasswordHash); cost < bcrypt.DefaultCost {
			t.Fatalf("bcrypt cost %d, want at least %d", cost, bcrypt.DefaultCost)
		}
	})

	for _, tc := range []struct {
		name, stdin, want string
		args              []string
	}{
		{"ErrShortPassword", "short\n", "at least 12", []string{"--org", "acme", "--email", "b@example.com", "--password-stdin", "--data", dir}},
		{"ErrEmptyStdin", "", "empty", []string{"--org", "acme", "--email", "b@example.com", "--password-stdin", "--data", dir}},
		{"ErrNoPasswordStdin", "long enough password\n", "usage", []string{"--org", "acme", "--email", "b@example.com", "--data", dir}},
		{"ErrBadEmail", "long enough password\n", "not an email", []string{"--org", "acme", "--email", "nope", "--password-stdin", "--data", dir}},
		{"ErrUnknownOrg", "long enough password\n", "no organization", []string{"--org", "nope", "--email", "b@example.com", "--password-stdin", "--data", dir}},
		{"ErrEmailTaken", "long enough password\n", "already exists", []string{"--org", "acme", "--email", "taken@example.com", "--password-stdin", "--data", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "ErrEmailTaken" {
				if _, err := create("long enough password\n", tc.args...); err != nil {
					t.Fatal(err)
				}
			}
			_, err := create(tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
