package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/recsink/recsink"
)

// RunConcurrentWrites runs the recording engine's writes (update, part,
// event, find) from 50 goroutines at once against s: none may fail (SQLite:
// no "database is locked"), and every part and event is kept.
func RunConcurrentWrites(t *testing.T, s recsink.Store) {
	t.Helper()
	ctx := context.Background()
	org := MustCreateOrganization(t, s)
	var recs []*recsink.Recording
	for range 5 {
		recs = append(recs, MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording))
	}

	const goroutines, rounds = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds*4)
	for g := range goroutines {
		wg.Go(func() {
			base := *recs[g%len(recs)] // each goroutine its own copy
			r := &base
			for i := range rounds {
				r.BytesReceived = int64(g*rounds + i)
				if err := s.UpdateRecording(ctx, r); err != nil {
					errs <- fmt.Errorf("update: %w", err)
				}
				p := recsink.Part{Number: int32(g*rounds + i + 1), Offset: int64(i), Size: 1, ETag: "e"}
				if err := s.PutPart(ctx, r.ID, p); err != nil {
					errs <- fmt.Errorf("put part: %w", err)
				}
				e := recsink.RecordingEvent{Time: r.StartDate, Type: recsink.EventUploadResumed, Message: fmt.Sprint(g, i)}
				if err := s.AddRecordingEvent(ctx, r.ID, e); err != nil {
					errs <- fmt.Errorf("add event: %w", err)
				}
				if _, err := s.FindRecordingByID(ctx, r.ID); err != nil {
					errs <- fmt.Errorf("find: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	var parts, events int
	for _, r := range recs {
		ps, err := s.ListParts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		es, err := s.ListRecordingEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		parts, events = parts+len(ps), events+len(es)
	}
	if want := goroutines * rounds; parts != want || events != want {
		t.Fatalf("%d parts and %d events, want %d of each", parts, events, want)
	}
}
