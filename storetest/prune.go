package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

func testPrune(t *testing.T, open func(t *testing.T) recsink.Store) {
	s, ctx := open(t), context.Background()
	org := MustCreateOrganization(t, s)
	withHistory := func(state string) *recsink.Recording {
		r := MustCreateRecording(t, s, org.ID, "room", state)
		for i := range 3 {
			if err := s.AddRecordingEvent(ctx, r.ID, recsink.RecordingEvent{Time: at(i), Type: recsink.EventStarted, Message: "x"}); err != nil {
				t.Fatal(err)
			}
			if err := s.PutPart(ctx, r.ID, recsink.Part{Number: int32(i + 1), Offset: int64(i), Size: 1, ETag: "e"}); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}
	var finished []*recsink.Recording
	for _, state := range []string{recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted} {
		finished = append(finished, withHistory(state))
	}
	running := withHistory(recsink.RecordingStopping)

	finish := func(d *recsink.WebhookDelivery, state string) {
		t.Helper()
		if err := s.CreateWebhookDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
		d.State = state
		if err := s.UpdateWebhookDelivery(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	oldDone := NewWebhookDelivery(org.ID, at(0))
	oldDone.DeliveredAt = ptr(at(1))
	finish(oldDone, recsink.DeliveryDelivered)
	oldFailed := NewWebhookDelivery(org.ID, at(0))
	finish(oldFailed, recsink.DeliveryFailed)
	oldPending := MustCreateWebhookDelivery(t, s, org.ID, at(0))
	// Created in the future: younger than any before given here.
	newDone := NewWebhookDelivery(org.ID, time.Now().Add(24*time.Hour).Truncate(time.Microsecond))
	finish(newDone, recsink.DeliveryDelivered)

	// The recordings changed just now: their history is not old enough
	// yet. Old finished deliveries go; pending and newer ones stay.
	st, err := s.Prune(ctx, mustNow(t, s).Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(finished, running) {
		checkHistory(t, s, r, 3)
	}
	if st.WebhookDeliveries < 2 {
		t.Fatalf("Prune counted %+v, want at least 2 deliveries", st)
	}
	ds := listAllWebhookDeliveries(t, s, org.ID, 100)
	kept := map[string]bool{}
	for _, d := range ds {
		kept[d.ID] = true
	}
	if kept[oldDone.ID] || kept[oldFailed.ID] || !kept[oldPending.ID] || !kept[newDone.ID] {
		t.Fatalf("after Prune the deliveries are %v: want the old finished ones gone, the pending and the new one kept", kept)
	}

	// An hour later: the finished recordings' history goes, the running
	// one's stays.
	st, err = s.Prune(ctx, mustNow(t, s).Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range finished {
		checkHistory(t, s, r, 0)
	}
	checkHistory(t, s, running, 3)
	if st.RecordingEvents < 9 || st.Parts < 9 {
		t.Fatalf("Prune counted %+v, want at least 9 events and 9 parts", st)
	}
	if got := listAllWebhookDeliveries(t, s, org.ID, 100); len(got) != len(ds) {
		t.Fatalf("a second Prune removed %d deliveries more", len(ds)-len(got))
	}
	// The recordings themselves stay: the API still lists them.
	for _, r := range finished {
		mustFind(t, s, r)
	}
}

func checkHistory(t *testing.T, s recsink.Store, r *recsink.Recording, want int) {
	t.Helper()
	es, err := s.ListRecordingEvents(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := s.ListParts(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != want || len(ps) != want {
		t.Fatalf("%s recording has %d events and %d parts, want %d of each", r.State, len(es), len(ps), want)
	}
}

// testPruneBatches prunes more rows than one batch deletes: all of them go,
// and all are counted.
func testPruneBatches(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Parallel()
	s, ctx := open(t), context.Background()
	org := MustCreateOrganization(t, s)
	r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingUploaded)
	const n = 1001 // two batches of sqlstore.PruneBatch (1,000)
	for i := range n {
		if err := s.AddRecordingEvent(ctx, r.ID, recsink.RecordingEvent{Time: at(i), Type: recsink.EventStarted}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Prune(ctx, mustNow(t, s).Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.RecordingEvents != n {
		t.Fatalf("Prune counted %d events, want %d", st.RecordingEvents, n)
	}
	checkHistory(t, s, r, 0)
}
