package postgres_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/postgres"
	"github.com/recsink/recsink/storetest"
)

// TestDatabaseDown stops the server under an open store: every call answers
// EUNAVAILABLE with a Retry-After (never an internal error), and once the
// server is back the same store works again, its credential watch included,
// without being reopened.
func TestDatabaseDown(t *testing.T) {
	t.Parallel()
	cluster := pgtest.MustStartPrivate(t)
	dsn := cluster.DSN("postgres")
	db, other := MustOpen(t, dsn), MustOpen(t, dsn)
	ctx := context.Background()
	org := storetest.MustCreateOrganization(t, db)
	rec := storetest.MustCreateRecording(t, db, org.ID, "room", recsink.RecordingRecording)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := db.WatchCredentials(wctx)
	if err != nil {
		t.Fatal(err)
	}
	awaitWatch(t, watch, "", 10*time.Second) // listening

	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(ctx context.Context) error{
		"FindRecording": func(ctx context.Context) error { _, err := db.FindRecording(ctx, org.ID, rec.ID); return err },
		"UpdateRecording": func(ctx context.Context) error {
			r := *rec
			r.BytesReceived++
			return db.UpdateRecording(ctx, &r)
		},
		"CreateRecording": func(ctx context.Context) error {
			return db.CreateRecording(ctx, storetest.NewRecording(org.ID, "room", recsink.RecordingRecording), time.Minute)
		},
		"RenewLeases": func(ctx context.Context) error {
			_, err := db.RenewLeases(ctx, storetest.TestNode, time.Minute)
			return err
		},
		"Now": func(ctx context.Context) error { _, err := db.Now(ctx); return err },
		"ListRecordings": func(ctx context.Context) error {
			_, _, err := db.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Limit: 10})
			return err
		},
		"CreateCredential": func(ctx context.Context) error {
			return db.CreateCredential(ctx, storetest.NewCredential(org.ID, recsink.ScopeOrganization, time.Now().UTC().Truncate(time.Microsecond)))
		},
		"FindOrganizationByAPIKeyHash": func(ctx context.Context) error {
			_, err := db.FindOrganizationByAPIKeyHash(ctx, recsink.HashToken("x"))
			return err
		},
		"Prune": func(ctx context.Context) error { _, err := db.Prune(ctx, time.Now()); return err },
	}
	for name, call := range calls {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		err := call(cctx)
		ccancel()
		var e *recsink.Error
		if !errors.As(err, &e) || e.Code != recsink.EUNAVAILABLE || e.RetryAfter <= 0 {
			t.Errorf("%s with the database down: %v, want EUNAVAILABLE with RetryAfter", name, err)
		}
	}

	began := time.Now()
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pool dials again on its own; no reopen.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := db.FindRecording(ctx, org.ID, rec.ID)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store still failing %v after the restart: %v", time.Since(began), err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	for name, call := range calls {
		if err := call(ctx); err != nil && recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Errorf("%s after the restart: %v", name, err)
		}
	}
	// The listener reconnects (and says "" since it may have missed
	// changes); a change made on another node then arrives as usual.
	awaitWatch(t, watch, "", 15*time.Second)
	for drained := false; !drained; { // what was said before the change
		select {
		case <-watch:
		default:
			drained = true
		}
	}
	c := storetest.NewCredential(org.ID, "room-"+recsink.RandomToken(4), time.Now().UTC().Truncate(time.Microsecond))
	if err := other.CreateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	// The organization, or "" when the change was seen by the poll (the
	// listener not yet back): both wake the recordings that need it.
	awaitWatch(t, watch, org.ID+"|", 5*time.Second)
	t.Logf("store and credential watch back %v after the restart began", time.Since(began).Round(time.Millisecond))
}

// TestWatchCredentialsPollsWhileListenerDown ends the listening connection
// and keeps it from coming back soon: a change made meanwhile still reaches
// the watcher, through the poll, within about a second.
func TestWatchCredentialsPollsWhileListenerDown(t *testing.T) {
	t.Parallel()
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	ctx := context.Background()
	db, other := MustOpen(t, dsn), MustOpen(t, dsn)
	postgres.SetListenTiming(db, 30*time.Second, 30*time.Second, 200*time.Millisecond)
	lost := make(chan struct{}, 1)
	db.Logger = slog.New(&signalHandler{msg: "postgres: credential listener lost; polling until it is back", ch: lost})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := db.WatchCredentials(wctx)
	if err != nil {
		t.Fatal(err)
	}
	awaitWatch(t, watch, "", 10*time.Second)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'recsink credential listener'`).Scan(&n); err != nil {
		t.Fatal(err)
	} else if n != 1 {
		t.Fatalf("terminated %d listening connections, want 1", n)
	}
	// The listener notices before the change, so that only the poll can
	// report it.
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not notice its connection's end within 10 s")
	}
	org := storetest.MustCreateOrganization(t, other)
	began := time.Now()
	storetest.MustCreateCredential(t, other, org.ID, recsink.ScopeOrganization, time.Now().UTC().Truncate(time.Microsecond))
	awaitWatch(t, watch, "", 3*time.Second)
	t.Logf("change seen through the poll after %v", time.Since(began).Round(time.Millisecond))
}

// awaitWatch waits for want on ch, skipping other values.
// awaitWatch waits for one of the organization IDs in want, split by "|"
// ("" is a valid one: anything may have changed).
func awaitWatch(t *testing.T, ch <-chan string, want string, limit time.Duration) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatal("the credential watch ended")
			}
			for _, w := range strings.Split(want, "|") {
				if got == w {
					return
				}
			}
		case <-timer.C:
			t.Fatalf("%q not heard within %v", want, limit)
		}
	}
}

// TestFinalStateTrigger checks that the database itself keeps a recording
// in its final state, whatever statement tries to move it back.
func TestFinalStateTrigger(t *testing.T) {
	t.Parallel()
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	db := MustOpen(t, dsn)
	ctx := context.Background()
	org := storetest.MustCreateOrganization(t, db)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, from := range []string{recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted} {
		for _, to := range []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
			recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted} {
			r := storetest.MustCreateRecording(t, db, org.ID, "room", from)
			_, err := conn.Exec(ctx, `UPDATE recordings SET state = $1 WHERE id = $2`, to, r.ID)
			allowed := from == to || to == recsink.RecordingDeleted && from != recsink.RecordingDeleted
			if allowed != (err == nil) {
				t.Errorf("raw UPDATE %s -> %s: %v", from, to, err)
			}
		}
	}
}

// signalHandler is a slog handler that sends on ch when a record with
// message msg is logged: a test waits on what the store reports.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalHandler) WithGroup(string) slog.Handler            { return h }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
