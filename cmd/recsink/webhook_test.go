package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/webhook"
)

// Receiver is a real HTTP webhook receiver that records what it accepted.
type Receiver struct {
	*httptest.Server
	mu       sync.Mutex
	failNext int               // answer 500 to this many attempts first
	accepted map[string]int    // event ID → times accepted
	events   []map[string]any  // accepted events in arrival order
	bodies   map[string][]byte // event ID → body
	sigs     map[string]string // event ID → signature header
	changed  chan struct{}
}

func NewReceiver(tb testing.TB) *Receiver {
	r := &Receiver{accepted: map[string]int{}, bodies: map[string][]byte{}, sigs: map[string]string{}, changed: make(chan struct{}, 1)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.failNext > 0 {
			r.failNext--
			w.WriteHeader(500)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(400)
			return
		}
		id := ev["id"].(string)
		r.accepted[id]++
		if r.accepted[id] == 1 {
			r.events = append(r.events, ev)
		}
		r.bodies[id] = body
		r.sigs[id] = req.Header.Get(webhook.SignatureHeader)
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}))
	tb.Cleanup(r.Close)
	return r
}

// HostPort is the receiver's address, for the allowlist.
func (r *Receiver) HostPort() string { return strings.TrimPrefix(r.URL, "http://") }

// WaitEvent waits for the first accepted event of typ for which match holds.
func (r *Receiver) WaitEvent(tb testing.TB, typ string, match func(data map[string]any) bool, within time.Duration) map[string]any {
	tb.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		for _, ev := range r.events {
			if ev["type"] == typ && (match == nil || match(ev["data"].(map[string]any))) {
				r.mu.Unlock()
				return ev
			}
		}
		r.mu.Unlock()
		select {
		case <-r.changed:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			tb.Fatalf("no %s event within %s; got %v", typ, within, r.events)
			return nil
		}
	}
}

func forRecording(id string) func(map[string]any) bool {
	return func(d map[string]any) bool { return d["recordingId"] == id }
}

// mustWebhookEnv is a recording Env whose organization has a webhook
// endpoint on a real receiver.
func mustWebhookEnv(tb testing.TB, opts ...func(*main.Config)) (*Env, string, *Receiver, string) {
	tb.Helper()
	rcv := NewReceiver(tb)
	e, meeting := mustRecordingEnv(tb, withWebhooks(rcv, opts)...)
	return e, meeting, rcv, mustSetWebhook(tb, e.Org, rcv)
}

// withWebhooks is opts and what recsink needs to send webhooks to rcv
// without long waits between tries.
func withWebhooks(rcv *Receiver, opts []func(*main.Config)) []func(*main.Config) {
	return append(opts, func(c *main.Config) {
		c.AllowEndpoints = append(c.AllowEndpoints, rcv.HostPort())
		c.WebhookMinBackoff = 50 * time.Millisecond
	})
}

// mustSetWebhook sends org's webhooks to rcv (path /hooks), through the
// recsink org talks to, and returns the signing secret.
func mustSetWebhook(tb testing.TB, org *Client, rcv *Receiver) string {
	tb.Helper()
	ctx := context.Background()
	o, err := org.m.Store.FindOrganizationByAPIKeyHash(ctx, recsink.HashToken(org.Key))
	if err != nil {
		tb.Fatal(err)
	}
	secret, err := org.m.Webhooks.SetEndpoint(ctx, o.ID, rcv.URL+"/hooks", nil)
	if err != nil {
		tb.Fatal(err)
	}
	return secret
}

func TestWebhooks_StartedFinished(t *testing.T) {
	t.Parallel()
	e, meeting, rcv, secret := mustWebhookEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 6*mib+3)
	rec.MustPut(t, data)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)

	started := rcv.WaitEvent(t, recsink.WebhookRecordingStarted, forRecording(rec.ID), 20*time.Second)
	finished := rcv.WaitEvent(t, recsink.WebhookRecordingFinished, forRecording(rec.ID), 20*time.Second)
	d := finished["data"].(map[string]any)
	out := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID, nil)
	for _, k := range []string{"recordingId", "meetingId", "roomName", "objectKey", "sha256", "startDate", "endDate"} {
		if d[k] == nil || d[k] == "" {
			t.Errorf("recording.finished lacks %s: %v", k, d)
		}
	}
	if d["sizeBytes"] != float64(len(data)) || d["sha256"] != out["sha256"] || d["objectKey"] != rec.ObjectKey ||
		d["bucket"] != e.Bucket || d["meetingId"] != meeting || !strings.HasSuffix(rec.ObjectKey, d["filename"].(string)) {
		t.Errorf("recording.finished data %v, recording %v", d, out)
	}
	for _, ev := range []map[string]any{started, finished} {
		id := ev["id"].(string)
		rcv.mu.Lock()
		body, sig := rcv.bodies[id], rcv.sigs[id]
		rcv.mu.Unlock()
		if err := webhook.Verify(sig, body, secret, 5*time.Minute, time.Now()); err != nil {
			t.Errorf("signature of %s does not verify: %v", ev["type"], err)
		}
		if err := webhook.Verify(sig, body, secret+"x", 5*time.Minute, time.Now()); err == nil {
			t.Errorf("signature of %s verifies with a wrong secret", ev["type"])
		}
		if ev["createdAt"] == nil || !strings.HasPrefix(id, "evt_") {
			t.Errorf("event envelope %v", ev)
		}
		// Whereby's envelope and time format.
		if ev["apiVersion"] != "1.0" || !msTime.MatchString(ev["createdAt"].(string)) {
			t.Errorf("event envelope %v", ev)
		}
	}
	// Whereby's recording.finished: status "completed", sizeInMegaBytes.
	if d["status"] != "completed" || d["sizeInMegaBytes"] != float64(len(data)/1000)/1000 || !msTime.MatchString(d["startDate"].(string)) || !msTime.MatchString(d["endDate"].(string)) {
		t.Errorf("recording.finished data %v", d)
	}
	if s, ok := started["data"].(map[string]any)["status"]; ok {
		t.Errorf("recording.started has status %v", s)
	}
}

// msTime is a time as the API writes it: RFC 3339 in UTC with milliseconds.
var msTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// TestWebhooks_RetriedOnceAcrossRestart: a receiver that fails the first
// attempts gets each event later, exactly once by id, across a restart.
func TestWebhooks_RetriedOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	e, meeting, rcv, _ := mustWebhookEnv(t)
	rcv.mu.Lock()
	rcv.failNext = 3
	rcv.mu.Unlock()
	rec := MustStartRecording(t, e.Org, meeting)
	rec.MustPut(t, []byte("short"))
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 20*time.Second)
	e.Main.Restart(t)
	rcv.WaitEvent(t, recsink.WebhookRecordingStarted, forRecording(rec.ID), 30*time.Second)
	rcv.WaitEvent(t, recsink.WebhookRecordingFinished, forRecording(rec.ID), 30*time.Second)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.failNext != 0 {
		t.Fatalf("the receiver's failures were not all tried: %d left", rcv.failNext)
	}
	for id, n := range rcv.accepted {
		if n != 1 {
			t.Errorf("event %s accepted %d times", id, n)
		}
	}
}

// TestWebhooks_UploadBlockedResumed: S3 stops mid-recording: the platform
// hears recording.upload_blocked, then recording.upload_resumed.
func TestWebhooks_UploadBlockedResumed(t *testing.T) {
	t.Parallel()
	e, meeting, rcv, _ := mustWebhookEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 16*mib)
	e.S3.Stop(t)
	rec.MustPut(t, data[:11*mib])
	blocked := rcv.WaitEvent(t, recsink.WebhookRecordingUploadBlocked, forRecording(rec.ID), 30*time.Second)
	mustContain(t, blocked["data"].(map[string]any)["reason"].(string), "does not answer")
	WaitState(t, e.Org, rec.ID, recsink.RecordingBlocked, 5*time.Second)
	e.S3.Start(t)
	rcv.WaitEvent(t, recsink.WebhookRecordingUploadResumed, forRecording(rec.ID), 30*time.Second)
	rec.MustPut(t, data[11*mib:])
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
}

// scrape reads /metrics with the Prometheus text parser.
func scrape(tb testing.TB, m *TestMain) map[string]float64 {
	tb.Helper()
	resp, err := http.Get(m.URL() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, mt := range f.GetMetric() {
			key := name
			for _, l := range mt.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case mt.Counter != nil:
				out[key] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				out[key] = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				out[key+"_count"] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestMetrics_Recording(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.SpoolLimit = 64 * mib })
	before := scrape(t, e.Main)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 12*mib+99)
	rec.MustPut(t, data)
	during := scrape(t, e.Main)
	if during["recsink_recordings{state=recording}"] != 1 || during["recsink_spool_limit_bytes"] != 64*mib {
		t.Errorf("during the recording: recordings %v, spool limit %v", during["recsink_recordings{state=recording}"], during["recsink_spool_limit_bytes"])
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	after := scrape(t, e.Main)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"recsink_received_bytes_total", float64(len(data))},
		{"recsink_uploaded_bytes_total", float64(len(data))},
		{"recsink_part_upload_duration_seconds_count", 3}, // 5 MiB + 5 MiB + the tail
		{"recsink_recordings_finished_total{state=uploaded}", 1},
	} {
		if got := after[c.name] - before[c.name]; got != c.want {
			t.Errorf("%s moved by %v, want %v", c.name, got, c.want)
		}
	}
	if after["recsink_recordings{state=recording}"] != 0 || after["recsink_spool_bytes"] != 0 {
		t.Errorf("after: recordings %v, spool %v", after["recsink_recordings{state=recording}"], after["recsink_spool_bytes"])
	}
	var raw bytes.Buffer
	resp, _ := http.Get(e.Main.URL() + "/metrics")
	io.Copy(&raw, resp.Body)
	resp.Body.Close()
	if strings.Contains(raw.String(), e.Key.ID) || strings.Contains(raw.String(), rec.ID) {
		t.Error("/metrics carries a key ID or recording ID label")
	}
}
