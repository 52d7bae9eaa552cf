package service_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
)

// cutBody is an ingest body that delivers data, then ends as a client that
// went away does: with err, or, when err is nil, by blocking until ctx (the
// request's context) is canceled and returning its error.
type cutBody struct {
	ctx  context.Context
	r    *bytes.Reader
	err  error
	sent chan struct{} // closed once every byte of data was read
	once sync.Once
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.r.Len() > 0 {
		return b.r.Read(p)
	}
	b.once.Do(func() { close(b.sent) })
	if b.err != nil {
		return 0, b.err
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

// TestStopAfterCancel races a stop against an ingest request whose client
// went away mid-body (its context canceled, or its body broken), at offsets
// inside a part and on either side of the first 5 MiB part boundary: the
// stop must never fail, and the recording stops at the bytes acknowledged.
func TestStopAfterCancel(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	svc := e.MustOpenService(t, newFakeS3())
	org := MustCreateOrganization(t, svc, "bucket")
	const chunk = 62_500 // the benchmark's PATCH
	boundary := int64(spool.MinPartSize)
	// before is what the recording holds when the cut request starts; cut is
	// how many bytes of that request arrive.
	type shape struct{ before, cut int64 }
	shapes := []shape{
		{0, 0}, {0, chunk / 2}, {chunk, 0}, {chunk, chunk / 2}, {chunk, chunk},
		{boundary - chunk, chunk}, // the cut request completes part 1 exactly
		{boundary - chunk/2, chunk / 2},
		{boundary - chunk/2, chunk},     // crosses the boundary
		{boundary - chunk/2, chunk / 4}, // stops short of it
		{boundary, 0}, {boundary, chunk / 2},
	}
	modes := []struct {
		name string
		err  error // nil: the context is canceled
	}{
		{"canceled", nil},
		{"broken", io.ErrUnexpectedEOF},
		{"canceled-after-eof", io.EOF},
	}
	iterations := 6
	if testing.Short() {
		iterations = 2
	}
	data := randomBytes(int(boundary + chunk))
	for i := range iterations {
		for _, sh := range shapes {
			for _, m := range modes {
				name := fmt.Sprintf("%d/%s/before=%d/cut=%d", i, m.name, sh.before, sh.cut)
				stopAfterCancel(t, svc, org, name, data, sh.before, sh.cut, m.err, i%3)
			}
		}
	}
}

// stopAfterCancel runs one race; order says when the stop goes: 0 right as
// the body ends, 1 once the request's context is canceled, 2 once the
// request has returned.
func stopAfterCancel(t *testing.T, svc *service.Service, org organization, name string, data []byte, before, cut int64, bodyErr error, order int) {
	t.Helper()
	bg := context.Background()
	rec, token := MustStartRecordingIn(t, svc, org)
	if before > 0 {
		MustAppend(t, svc, rec.ID, token, 0, data[:before])
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	body := &cutBody{ctx: ctx, r: bytes.NewReader(data[before : before+cut]), err: bodyErr, sent: make(chan struct{})}
	type result struct {
		n   int64
		err error
	}
	appended := make(chan result, 1)
	go func() {
		n, err := svc.Append(ctx, rec.ID, token, before, body)
		appended <- result{n, err}
	}()
	deadline := time.After(30 * time.Second)
	var res result
	got := false
	select {
	case <-body.sent:
	case res = <-appended: // a body ended at once (EOF) may be done already
		got = true
	case <-deadline:
		t.Fatalf("%s: the body was not read within 30 s", name)
	}
	if order >= 1 || bodyErr != nil {
		cancel()
	}
	if order == 2 && !got {
		select {
		case res = <-appended:
			got = true
		case <-deadline:
			t.Fatalf("%s: the canceled append did not return within 30 s", name)
		}
	}
	stopped, err := svc.StopRecording(bg, org.ID, rec.ID)
	if err != nil {
		t.Fatalf("%s: stop after the canceled append: %v (code %s)", name, err, recsink.ErrorCode(err))
	}
	cancel()
	if !got {
		select {
		case res = <-appended:
		case <-deadline:
			t.Fatalf("%s: the canceled append did not return within 30 s", name)
		}
	}
	if res.err == nil && bodyErr != io.EOF {
		t.Fatalf("%s: the cut append succeeded at %d", name, res.n)
	}
	if res.n < before || res.n > before+cut {
		t.Fatalf("%s: the cut append acknowledged %d, want %d..%d", name, res.n, before, before+cut)
	}
	// The stop is at the bytes acknowledged: what the append answered, or
	// more when it answered before its last sync.
	if stopped.BytesReceived < res.n || stopped.BytesReceived > before+cut {
		t.Fatalf("%s: stopped at %d bytes; the append acknowledged %d", name, stopped.BytesReceived, res.n)
	}
	if off, err := svc.Offset(bg, rec.ID, token); err != nil || off != stopped.BytesReceived {
		t.Fatalf("%s: offset after the stop %d (%v), want %d", name, off, err, stopped.BytesReceived)
	}
	if _, err := svc.Append(bg, rec.ID, token, stopped.BytesReceived, bytes.NewReader([]byte("late"))); recsink.ErrorCode(err) != recsink.ECONFLICT {
		t.Fatalf("%s: append after the stop: %v, want %s", name, err, recsink.ECONFLICT)
	}
}

// stallStore stalls the first save of a stopping recording, as a database
// stalled under load does: renewals fail meanwhile, so that the node's
// lease lapses during the write, which ends with the lease's cancellation.
type stallStore struct {
	*spyStore
	stalled atomic.Bool
	lapsed  chan struct{} // closed once the stalled write returned
	ended   atomic.Bool   // the stalled write's context ended (the lease lapsed)
}

func (s *stallStore) UpdateRecording(ctx context.Context, r *recsink.Recording) error {
	if r.State == recsink.RecordingStopping && s.stalled.CompareAndSwap(false, true) {
		s.renewFails.Store(true)
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
		s.ended.Store(ctx.Err() != nil)
		s.renewFails.Store(false)
		close(s.lapsed)
		return ctx.Err()
	}
	return s.spyStore.UpdateRecording(ctx, r)
}

// TestStopLeaseLapsedMidSave: a stop whose save outlives the node's local
// lease (its database stalled; renewals failed meanwhile) is not an
// internal error: the stop is saved once a renewal confirms the lease,
// and the recording completes at the bytes acknowledged.
func TestStopLeaseLapsedMidSave(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := &stallStore{spyStore: MustOpenStore(t), lapsed: make(chan struct{})}
	n := MustOpenNode(t, store, newFakeS3(), "node-1", func(c *service.Config) {
		c.LeaseTTL = 3 * time.Second // lapses within 2.4 s once renewals fail
		c.RetryMax = 100 * time.Millisecond
	})
	orgID, meetingID := MustSetUp(t, n, "AKIALAPSE")
	rec, token, err := n.StartRecording(ctx, orgID, meetingID)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(62_500)
	if _, err := n.Append(ctx, rec.ID, token, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	stopped, err := n.StopRecording(ctx, orgID, rec.ID)
	select {
	case <-store.lapsed:
	default:
		t.Fatal("the stop's save was not stalled")
	}
	if !store.ended.Load() {
		t.Fatal("the lease did not lapse during the stalled save within 30 s")
	}
	if err != nil {
		t.Fatalf("stop whose save outlived the lease: %v (code %s)", err, recsink.ErrorCode(err))
	}
	if stopped.BytesReceived != int64(len(data)) || stopped.EndDate == nil {
		t.Fatalf("stopped at %d bytes (end %v), want %d", stopped.BytesReceived, stopped.EndDate, len(data))
	}
	waitFor(t, 30*time.Second, "the recording uploaded", func() bool { return state(t, n, orgID, rec.ID) == recsink.RecordingUploaded })
}
