package service_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/storetest"
)

// TestCleaner runs the cleaner with a tiny retention and interval: the
// history of finished recordings goes, at the start and again at each tick,
// the running recording's stays, and Run returns once its context ends.
func TestCleaner(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "recsink.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	org := storetest.MustCreateOrganization(t, store)
	withHistory := func(state string) *recsink.Recording {
		r := storetest.MustCreateRecording(t, store, org.ID, "room", state)
		for i := range 2 {
			if err := store.AddRecordingEvent(ctx, r.ID, recsink.RecordingEvent{Time: time.Now(), Type: recsink.EventStarted}); err != nil {
				t.Fatal(err)
			}
			if err := store.PutPart(ctx, r.ID, recsink.Part{Number: int32(i + 1), Size: 1, ETag: "e"}); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	history := func(r *recsink.Recording) int {
		es, err := store.ListRecordingEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := store.ListParts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(es) + len(ps)
	}
	waitGone := func(r *recsink.Recording) {
		t.Helper()
		waitFor(t, 10*time.Second, "history of the "+r.State+" recording "+r.ID+" pruned", func() bool { return history(r) == 0 })
	}

	first := withHistory(recsink.RecordingUploaded)
	running := withHistory(recsink.RecordingRecording)
	var logs syncBuffer
	c := &service.Cleaner{Store: store, Retention: time.Millisecond, Interval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(rctx) }()

	waitGone(first)
	// A recording that finishes later is pruned at a later tick.
	second := withHistory(recsink.RecordingFailed)
	waitGone(second)
	if n := history(running); n != 4 {
		t.Fatalf("the running recording's history has %d rows, want 4", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if !strings.Contains(logs.String(), "pruned old history") {
		t.Fatalf("no prune logged: %s", logs.String())
	}
}

// TestCleanerRetentionOff keeps everything when the retention is zero.
func TestCleanerRetentionOff(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "recsink.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	org := storetest.MustCreateOrganization(t, store)
	r := storetest.MustCreateRecording(t, store, org.ID, "room", recsink.RecordingUploaded)
	if err := store.AddRecordingEvent(context.Background(), r.ID, recsink.RecordingEvent{Time: time.Now(), Type: recsink.EventStarted}); err != nil {
		t.Fatal(err)
	}
	(&service.Cleaner{Store: store}).Run(context.Background()) // returns at once
	if es, err := store.ListRecordingEvents(context.Background(), r.ID); err != nil || len(es) != 1 {
		t.Fatalf("events = %v, %v; want the one kept", es, err)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
