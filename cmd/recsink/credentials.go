package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/http"
)

const (
	credentialsUsage = "usage: recsink credentials [--url URL] [--api-key KEY]"
	rotateUsage      = "usage: recsink rotate --wait [--scope organization|MEETING_ID] [--key-id OLD_ACCESS_KEY_ID] [--url URL] [--api-key KEY]"
)

// runCredentials runs `recsink credentials`: the rotation view, every
// generation of the organization's and its rooms' keys with the recordings
// holding each and when each is safe to delete.
func runCredentials(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("recsink credentials", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return errors.New(credentialsUsage)
	}
	api, err := cf.client(nil)
	if err != nil {
		return err
	}
	usages, err := api.ListCredentials(ctx)
	if err != nil {
		return fmt.Errorf("list credentials: %w", err)
	}
	printCredentials(stdout, usages)
	return nil
}

// printCredentials writes the rotation view as a table.
func printCredentials(w io.Writer, usages []*recsink.CredentialUsage) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tACCESS KEY ID\tCREATED\tSTATE\tACTIVE RECORDINGS\tSAFE TO DELETE")
	for _, u := range usages {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.ID, u.Scope, u.AccessKeyID,
			u.CreatedAt.UTC().Format(time.RFC3339), u.State, activeList(u.ActiveRecordings), safeToDelete(u))
	}
	tw.Flush()
}

// activeList shows a count and the first few recording IDs.
func activeList(ids []string) string {
	if len(ids) == 0 {
		return "0"
	}
	const show = 3
	s := fmt.Sprintf("%d (%s", len(ids), strings.Join(ids[:min(len(ids), show)], ", "))
	if len(ids) > show {
		s += fmt.Sprintf(", +%d more", len(ids)-show)
	}
	return s + ")"
}

// safeToDelete says when the generation's key may be deleted in IAM.
func safeToDelete(u *recsink.CredentialUsage) string {
	switch {
	case u.State == recsink.CredentialCurrent:
		return "no: in use"
	case u.SafeToDeleteAfter == nil && len(u.ActiveRecordings) > 0:
		// Held by a blocked or stopping recording: no time can be promised.
		return "not yet: " + u.SafeToDeleteReason
	case u.SafeToDeleteAfter == nil:
		return "now"
	}
	return "after " + u.SafeToDeleteAfter.UTC().Format(time.RFC3339)
}

// rotateCmd is `recsink rotate` with its tunables; tests shrink them.
type rotateCmd struct {
	PollEvery time.Duration
	Refresh   time.Duration
	LogEvery  time.Duration
	TTY       *bool
}

func newRotateCmd() *rotateCmd {
	return &rotateCmd{PollEvery: time.Second, Refresh: 500 * time.Millisecond, LogEvery: 5 * time.Second}
}

// runRotate runs `recsink rotate --wait`: once a new key is saved for a
// scope, wait until every recording holding a replaced key of the scope
// (or the key --key-id) has finished, then say the old key is safe to
// delete. It returns an error when ctx is canceled first.
func runRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return newRotateCmd().run(ctx, args, stdout, stderr)
}

func (c *rotateCmd) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	var wait bool
	var scope, keyID string
	fs := flag.NewFlagSet("recsink rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, rotateUsage)
		fmt.Fprintln(stderr, "After saving a new key (PUT /v1/storage, or a room's destination), waits until the old key is held by no recording.")
		fs.PrintDefaults()
	}
	cf.register(fs)
	fs.BoolVar(&wait, "wait", false, "wait until the replaced key is drained (required)")
	fs.StringVar(&scope, "scope", "", "\"organization\" or a meeting ID (default organization, or any scope with --key-id)")
	fs.StringVar(&keyID, "key-id", "", "the old access key ID to wait for (default every replaced key of the scope)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if !wait || len(pos) > 0 {
		return errors.New(rotateUsage)
	}
	if scope == "" && keyID == "" {
		scope = recsink.ScopeOrganization
	}
	api, err := cf.client(nil)
	if err != nil {
		return err
	}

	var last []*recsink.CredentialUsage
	p := newProgress(stderr, c.tty(stderr), c.Refresh, c.LogEvery)
	line := "waiting"
	var lineMu sync.Mutex
	stopProgress := p.start(func() string {
		lineMu.Lock()
		defer lineMu.Unlock()
		return line
	})
	defer stopProgress()
	for {
		usages, err := api.ListCredentials(ctx)
		switch {
		case err == nil:
			targets, err := rotationTargets(usages, scope, keyID)
			if err != nil {
				return err
			}
			last = targets
			holding, after := drainStatus(targets)
			if len(holding) == 0 {
				stopProgress()
				for _, k := range keysOf(targets) {
					if inUse := keyInUse(usages, k); inUse != "" {
						fmt.Fprintf(stdout, "key %s is drained from its old generation, but %s\n", k, inUse)
						continue
					}
					fmt.Fprintf(stdout, "key %s is drained: safe to delete now\n", k)
				}
				return nil
			}
			s := fmt.Sprintf("waiting: %s held by %s", strings.Join(keysOf(targets), ", "), activeList(holding))
			if after != nil {
				s += ", safe to delete after " + after.UTC().Format(time.RFC3339) + " at the latest"
			}
			lineMu.Lock()
			line = s
			lineMu.Unlock()
		case ctx.Err() != nil:
		case !http.Retryable(err):
			return fmt.Errorf("list credentials: %w", err)
		default:
			p.note(fmt.Sprintf("list credentials: %v; retrying", describe(err)))
		}

		select {
		case <-ctx.Done():
			stopProgress()
			keys := "the old key"
			if len(last) > 0 {
				keys = strings.Join(keysOf(last), ", ")
			}
			return fmt.Errorf("stopped waiting: %s is not drained yet: %w", keys, ctx.Err())
		case <-time.After(c.PollEvery):
		}
	}
}

func (c *rotateCmd) tty(w io.Writer) bool {
	if c.TTY != nil {
		return *c.TTY
	}
	return isTerminal(w)
}

// rotationTargets returns the replaced generations to wait for: those of
// the key keyID (in scope, when given), or else every replaced generation
// of scope.
func rotationTargets(usages []*recsink.CredentialUsage, scope, keyID string) ([]*recsink.CredentialUsage, error) {
	var targets []*recsink.CredentialUsage
	var current *recsink.CredentialUsage
	for _, u := range usages {
		if scope != "" && u.Scope != scope || keyID != "" && u.AccessKeyID != keyID {
			continue
		}
		if u.State == recsink.CredentialCurrent {
			current = u
			continue
		}
		targets = append(targets, u)
	}
	where := "scope " + scope
	if scope == "" {
		where = "any scope"
	}
	switch {
	case len(targets) > 0:
		return targets, nil
	case keyID != "" && current != nil:
		return nil, fmt.Errorf("key %s is the current key of scope %s: save the new key first, then wait for this one", keyID, current.Scope)
	case keyID != "":
		return nil, fmt.Errorf("no key %s in %s: recsink credentials lists the keys", keyID, where)
	}
	return nil, fmt.Errorf("%s has no replaced key to wait for: save the new key first (PUT /v1/storage, or PUT /v1/meetings/ID/recording/destination for a room)", where)
}

// drainStatus returns the recordings still holding any target and the
// latest time one of them may still run.
func drainStatus(targets []*recsink.CredentialUsage) (holding []string, after *time.Time) {
	for _, u := range targets {
		holding = append(holding, u.ActiveRecordings...)
		if u.SafeToDeleteAfter != nil && (after == nil || u.SafeToDeleteAfter.After(*after)) {
			after = u.SafeToDeleteAfter
		}
	}
	return holding, after
}

// keysOf returns the access key IDs of the generations, without repeats.
func keysOf(us []*recsink.CredentialUsage) []string {
	var keys []string
	for _, u := range us {
		if !slices.Contains(keys, u.AccessKeyID) {
			keys = append(keys, u.AccessKeyID)
		}
	}
	return keys
}

// keyInUse says where the access key is still in use by another
// generation (the same key saved again, or for another scope), or "".
func keyInUse(usages []*recsink.CredentialUsage, keyID string) string {
	for _, u := range usages {
		if u.AccessKeyID != keyID {
			continue
		}
		switch u.State {
		case recsink.CredentialCurrent:
			return "it is still the current key of scope " + u.Scope
		case recsink.CredentialDraining:
			return fmt.Sprintf("a generation of scope %s still holds it for %s", u.Scope, activeList(u.ActiveRecordings))
		}
	}
	return ""
}
