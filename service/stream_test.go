package service_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media/mkvmux"
	"github.com/recsink/recsink/service"
)

// liveFakes stands in for the store and the recording services, to drive
// service.Live's sessions: each start makes a recording whose ingest
// collects the bytes until the stream closes.
type liveFakes struct {
	// The methods live ingest does not call (access links, bulk delete)
	// are the embedded nil interface's: calling one fails the test.
	recsink.RecordingService
	mu       sync.Mutex
	keys     map[string]*recsink.StreamKey // by hash
	started  []string
	stopped  map[string]bool
	received map[string]*bytes.Buffer
	stopCh   chan string
}

func newLiveFakes(key string) *liveFakes {
	f := &liveFakes{keys: map[string]*recsink.StreamKey{}, stopped: map[string]bool{},
		received: map[string]*bytes.Buffer{}, stopCh: make(chan string, 16)}
	f.keys[string(recsink.HashToken(key))] = &recsink.StreamKey{MeetingID: "mtg_1", OrgID: "org_1"}
	return f
}

func (f *liveFakes) PutStreamKey(context.Context, *recsink.StreamKey) error { return nil }
func (f *liveFakes) FindStreamKey(context.Context, string, string) (*recsink.StreamKey, error) {
	return nil, recsink.Errorf(recsink.ENOTFOUND, "no")
}
func (f *liveFakes) FindStreamKeyByHash(_ context.Context, h []byte) (*recsink.StreamKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keys[string(h)]; k != nil {
		return k, nil
	}
	return nil, recsink.Errorf(recsink.ENOTFOUND, "no such stream key")
}
func (f *liveFakes) DeleteStreamKey(context.Context, string, string) error   { return nil }
func (f *liveFakes) TouchStreamKey(context.Context, string, time.Time) error { return nil }

func (f *liveFakes) StartRecording(_ context.Context, orgID, meetingID string) (*recsink.Recording, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := recsink.NewID("rec")
	f.started = append(f.started, id)
	f.received[id] = &bytes.Buffer{}
	return &recsink.Recording{ID: id, OrgID: orgID, MeetingID: meetingID, Destination: recsink.Destination{FileFormat: "mkv"}}, "token", nil
}

func (f *liveFakes) StopRecording(_ context.Context, _, id string) (*recsink.Recording, error) {
	f.mu.Lock()
	f.stopped[id] = true
	f.mu.Unlock()
	f.stopCh <- id
	return &recsink.Recording{ID: id}, nil
}

func (f *liveFakes) Append(ctx context.Context, id, _ string, _ int64, body io.Reader) (int64, error) {
	f.mu.Lock()
	buf := f.received[id]
	f.mu.Unlock()
	var b bytes.Buffer
	n, err := io.Copy(&b, body)
	f.mu.Lock()
	buf.Write(b.Bytes())
	f.mu.Unlock()
	return n, err
}

func (f *liveFakes) FindRecording(context.Context, string, string) (*recsink.Recording, []recsink.RecordingEvent, error) {
	return nil, nil, nil
}
func (f *liveFakes) ListRecordings(context.Context, string, recsink.RecordingFilter) ([]*recsink.Recording, string, error) {
	return nil, "", nil
}
func (f *liveFakes) DeleteRecording(context.Context, string, string) error { return nil }
func (f *liveFakes) Offset(context.Context, string, string) (int64, error) { return 0, nil }

func (f *liveFakes) waitStopped(tb testing.TB, within time.Duration) string {
	tb.Helper()
	select {
	case id := <-f.stopCh:
		return id
	case <-time.After(within):
		tb.Fatalf("no recording stopped within %s", within)
		return ""
	}
}

var audioOnly = mkvmux.Tracks{Audio: &mkvmux.Audio{Config: []byte{0x12, 0x10}, SampleRate: 44100, Channels: 2}}

func newLive(tb testing.TB, f *liveFakes, grace time.Duration) *service.Live {
	l := service.NewLive(service.LiveConfig{Keys: f, Recordings: f, Ingest: f, Grace: grace,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tb.Cleanup(l.Close)
	return l
}

func TestLive_Sessions(t *testing.T) {
	ctx := context.Background()
	key := recsink.NewStreamKey()

	t.Run("ErrWrongKey", func(t *testing.T) {
		l := newLive(t, newLiveFakes(key), time.Second)
		for _, k := range []string{"", "rsl_x", recsink.NewStreamKey()} {
			if err := l.Authorize(ctx, k); recsink.ErrorCode(err) != recsink.EUNAUTHORIZED {
				t.Fatalf("Authorize(%q): %v, want EUNAUTHORIZED", k, err)
			}
			if _, err := l.Publish(ctx, "rtmp", k, audioOnly, time.Now()); recsink.ErrorCode(err) != recsink.EUNAUTHORIZED {
				t.Fatalf("Publish: %v, want EUNAUTHORIZED", err)
			}
		}
	})

	t.Run("CleanEndStops", func(t *testing.T) {
		f := newLiveFakes(key)
		l := newLive(t, f, time.Hour)
		pub, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Authorize(ctx, key); recsink.ErrorCode(err) != recsink.ECONFLICT {
			t.Fatalf("second publisher: %v, want ECONFLICT", err)
		}
		if _, err := l.Publish(ctx, "srt", key, audioOnly, time.Now()); recsink.ErrorCode(err) != recsink.ECONFLICT {
			t.Fatalf("second publish: %v, want ECONFLICT", err)
		}
		for i := range 30 {
			if err := pub.WriteAudio(time.Duration(i)*100*time.Millisecond, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		pub.End(true, "unpublished")
		id := f.waitStopped(t, 5*time.Second)
		if id != pub.RecordingID() || len(f.started) != 1 {
			t.Fatalf("stopped %s, started %v", id, f.started)
		}
		f.mu.Lock()
		n := f.received[id].Len()
		f.mu.Unlock()
		if n < 100 {
			t.Fatalf("only %d bytes reached the ingest", n)
		}
		if live, _ := l.LiveStatus("mtg_1"); live {
			t.Fatal("live after the end")
		}
	})

	t.Run("DropWaitsGraceThenStops", func(t *testing.T) {
		f := newLiveFakes(key)
		l := newLive(t, f, 300*time.Millisecond)
		pub, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dropped := time.Now()
		pub.End(false, "connection reset")
		if live, _ := l.LiveStatus("mtg_1"); live {
			t.Fatal("live while waiting for the publisher")
		}
		f.waitStopped(t, 5*time.Second)
		if d := time.Since(dropped); d < 300*time.Millisecond {
			t.Fatalf("stopped %s after the drop, before the grace period", d)
		}
		// Back after the grace period: a new recording.
		pub2, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if pub2.RecordingID() == pub.RecordingID() {
			t.Fatal("a publisher back after the grace period continued the old recording")
		}
	})

	t.Run("ResumeWithinGrace", func(t *testing.T) {
		f := newLiveFakes(key)
		l := newLive(t, f, time.Hour)
		pub, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pub.WriteAudio(0, []byte{1})
		pub.End(false, "connection reset")
		if err := l.Authorize(ctx, key); err != nil {
			t.Fatalf("a key in its grace period: %v", err)
		}
		pub2, err := l.Publish(ctx, "srt", key, audioOnly, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if pub2.RecordingID() != pub.RecordingID() || len(f.started) != 1 {
			t.Fatalf("resumed into %s, want %s; started %v", pub2.RecordingID(), pub.RecordingID(), f.started)
		}
		// The old publication is done.
		if err := pub.WriteAudio(time.Second, []byte{2}); err == nil {
			t.Fatal("the dropped publication still writes")
		}
		pub2.End(true, "end")
		f.waitStopped(t, 5*time.Second)
	})

	t.Run("OtherTracksStartNewRecording", func(t *testing.T) {
		f := newLiveFakes(key)
		l := newLive(t, f, time.Hour)
		pub, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pub.End(false, "connection reset")
		other := mkvmux.Tracks{Audio: &mkvmux.Audio{Config: []byte{0x11, 0x90}, SampleRate: 48000, Channels: 2}}
		pub2, err := l.Publish(ctx, "rtmp", key, other, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if id := f.waitStopped(t, 5*time.Second); id != pub.RecordingID() || pub2.RecordingID() == id {
			t.Fatalf("stopped %s; old %s, new %s", id, pub.RecordingID(), pub2.RecordingID())
		}
	})

	t.Run("CloseStops", func(t *testing.T) {
		f := newLiveFakes(key)
		l := service.NewLive(service.LiveConfig{Keys: f, Recordings: f, Ingest: f,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if _, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now()); err != nil {
			t.Fatal(err)
		}
		l.Close()
		f.waitStopped(t, time.Second)
		if _, err := l.Publish(ctx, "rtmp", key, audioOnly, time.Now()); recsink.ErrorCode(err) != recsink.EUNAVAILABLE {
			t.Fatalf("publish after Close: %v, want EUNAVAILABLE", err)
		}
	})
}
