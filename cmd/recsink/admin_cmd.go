package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"strings"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/admin"
)

const adminUsage = "usage: recsink admin create --org NAME --email EMAIL --password-stdin [--data DIR | --db DSN]"

// runAdmin runs "recsink admin ...": the admin page's user management.
func runAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New(adminUsage)
	}
	return runAdminCreate(ctx, args[1:], stdin, stdout, stderr)
}

// runAdminCreate creates an admin user of an organization directly in the
// store. The password is read from stdin, never from the command line,
// where other local users could read it.
func runAdminCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := DefaultConfig()
	var orgName, email string
	var passwordStdin bool
	fs := flag.NewFlagSet("recsink admin create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&orgName, "org", "", "name of the organization the admin manages")
	fs.StringVar(&email, "email", "", "the admin's email, used to sign in")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input (required)")
	fs.StringVar(&cfg.Data, "data", cfg.Data, "data folder (holds the SQLite file)")
	fs.StringVar(&cfg.DB, "db", cfg.DB, "database DSN (default sqlite:<data>/recsink.db)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if orgName == "" || email == "" || !passwordStdin || fs.NArg() > 0 {
		return errors.New(adminUsage)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != strings.TrimSpace(email) {
		return fmt.Errorf("--email %q is not an email address", email)
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	hash, err := admin.HashPassword(password)
	if err != nil {
		return errors.New(recsink.ErrorMessage(err))
	}

	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	org, err := store.FindOrganizationByName(ctx, orgName)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return fmt.Errorf("no organization named %q; create it with: recsink org create NAME", orgName)
	} else if err != nil {
		return err
	}
	u := &recsink.AdminUser{
		ID:           recsink.NewID("adm"),
		OrgID:        org.ID,
		Email:        addr.Address,
		PasswordHash: hash,
		CreatedAt:    recsink.Now(),
	}
	if err := store.CreateAdminUser(ctx, u); err != nil {
		if recsink.ErrorCode(err) == recsink.ECONFLICT {
			return errors.New(recsink.ErrorMessage(err))
		}
		return err
	}
	if err := store.AddAuditEvent(ctx, &recsink.AuditEvent{ID: recsink.NewID("aud"), OrgID: org.ID, Time: recsink.Now(), Actor: "cli",
		Address: "local", Action: recsink.AuditAdminUserCreated, Target: u.ID, Details: "admin " + u.Email + " created"}); err != nil {
		return fmt.Errorf("admin %s created, but not recorded in the audit trail: %w", u.Email, err)
	}
	fmt.Fprintf(stdout, "admin %s created for organization %s (id %s); sign in at /admin/\n", u.Email, org.Name, u.ID)
	return nil
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("--password-stdin: no standard input")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--password-stdin: read: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("--password-stdin: standard input is empty: pipe the password in, for example: printf '%s' \"$PASSWORD\" | recsink admin create ...")
	}
	return line, nil
}
