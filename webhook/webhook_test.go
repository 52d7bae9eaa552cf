package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/storetest"
	"github.com/recsink/recsink/webhook"
)

// waitTimeout bounds every wait for a condition; generous for -race on a
// loaded machine.
const waitTimeout = 15 * time.Second

func TestDeliver(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	r := MustNewReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusNoContent) })
	d := env.MustStart(t, r)
	secret := env.MustSetEndpoint(t, d, r.URL+"/hooks?token=abc", nil)

	data := map[string]any{"recordingId": "rec_1", "bytes": 42}
	if err := d.Enqueue(context.Background(), env.OrgID, recsink.WebhookRecordingFinished, data); err != nil {
		t.Fatal(err)
	}
	req := r.MustReceive(t)
	env.MustObserve(t, webhook.OutcomeDelivered)

	if req.Method != http.MethodPost || req.Path != "/hooks?token=abc" {
		t.Fatalf("request %s %s, want POST /hooks?token=abc", req.Method, req.Path)
	}
	for k, want := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         "recsink-webhooks",
		"Recsink-Event-Type": recsink.WebhookRecordingFinished,
	} {
		if got := req.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	var ev struct {
		ID, Type, CreatedAt, APIVersion string
		Data                            map[string]any
	}
	if err := json.Unmarshal(req.Body, &ev); err != nil {
		t.Fatalf("body %s: %v", req.Body, err)
	}
	if !strings.HasPrefix(ev.ID, "evt_") || ev.ID != req.Header.Get("Recsink-Event-Id") ||
		ev.Type != recsink.WebhookRecordingFinished || ev.Data["recordingId"] != "rec_1" || ev.Data["bytes"] != 42.0 {
		t.Fatalf("event = %+v (Recsink-Event-Id %q)", ev, req.Header.Get("Recsink-Event-Id"))
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.CreatedAt); err != nil || len(ev.CreatedAt) != len("2006-01-02T15:04:05.000Z") {
		t.Fatalf("createdAt %q: %v", ev.CreatedAt, err)
	}
	if ev.APIVersion != "1.0" {
		t.Fatalf("apiVersion %q", ev.APIVersion)
	}

	sig := req.Header.Get(webhook.SignatureHeader)
	now := time.Now()
	if err := webhook.Verify(sig, req.Body, secret, webhook.DefaultTolerance, now); err != nil {
		t.Fatalf("Verify(%q) = %v", sig, err)
	}
	if err := webhook.Verify(sig, req.Body, "whsec_wrong", webhook.DefaultTolerance, now); !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Fatalf("Verify with a wrong secret = %v, want ErrSignatureMismatch", err)
	}
	tampered := bytes.Replace(req.Body, []byte("rec_1"), []byte("rec_2"), 1)
	if err := webhook.Verify(sig, tampered, secret, webhook.DefaultTolerance, now); !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Fatalf("Verify of a tampered body = %v, want ErrSignatureMismatch", err)
	}
	if err := webhook.Verify(sig, req.Body, secret, webhook.DefaultTolerance, now.Add(10*time.Minute)); !errors.Is(err, webhook.ErrTimestampTolerance) {
		t.Fatalf("Verify 10 minutes later = %v, want ErrTimestampTolerance", err)
	}

	del := env.MustDelivery(t, d, ev.ID)
	if del.State != recsink.DeliveryDelivered || del.Attempts != 1 || del.LastStatus != http.StatusNoContent ||
		del.DeliveredAt == nil || del.Type != recsink.WebhookRecordingFinished || !bytes.Equal(del.Payload, req.Body) {
		t.Fatalf("delivery = %+v", del)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const secret, other = "whsec_a", "whsec_b"
	at := time.Unix(1_750_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	good, bad := webhook.Sign(secret, at, body), webhook.Sign(other, at, body)
	for _, tt := range []struct {
		name, header string
		now          time.Time
		want         error
	}{
		{"OK", "t=1750000000,v1=" + good, at, nil},
		{"OKSecondSignature", "t=1750000000,v1=" + bad + ",v1=" + good, at, nil},
		{"OKWithinTolerance", "t=1750000000,v1=" + good, at.Add(-5 * time.Minute), nil},
		{"OKUnknownScheme", "t=1750000000,v0=zz,v1=" + good, at, nil},
		{"ErrWrongSecret", "t=1750000000,v1=" + bad, at, webhook.ErrSignatureMismatch},
		{"ErrOtherTimestamp", "t=1750000001,v1=" + good, at, webhook.ErrSignatureMismatch},
		{"ErrTooOld", "t=1750000000,v1=" + good, at.Add(5*time.Minute + time.Second), webhook.ErrTimestampTolerance},
		{"ErrTooNew", "t=1750000000,v1=" + good, at.Add(-6 * time.Minute), webhook.ErrTimestampTolerance},
		{"ErrNoTimestamp", "v1=" + good, at, webhook.ErrInvalidHeader},
		{"ErrTwoTimestamps", "t=1750000000,t=1,v1=" + good, at, webhook.ErrInvalidHeader},
		{"ErrNoSignature", "t=1750000000", at, webhook.ErrInvalidHeader},
		{"ErrGarbage", "garbage", at, webhook.ErrInvalidHeader},
		{"ErrEmpty", "", at, webhook.ErrInvalidHeader},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := webhook.Verify(tt.header, body, secret, webhook.DefaultTolerance, tt.now); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestRetry fails the first attempt with a 500 and the second with a
// dropped connection; the third delivers the event, once.
func TestRetry(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	gate := make(chan struct{}) // lets the second attempt proceed
	r := MustNewReceiver(t, func(w http.ResponseWriter, req *http.Request, n int) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
		case 2:
			select {
			case <-gate:
			case <-req.Context().Done():
				return
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	d := env.MustStart(t, r)
	secret := env.MustSetEndpoint(t, d, r.URL, nil)
	if err := d.Enqueue(context.Background(), env.OrgID, recsink.WebhookRecordingStarted, nil); err != nil {
		t.Fatal(err)
	}

	env.MustObserve(t, webhook.OutcomeRetry)
	id := r.MustReceive(t).Header.Get("Recsink-Event-Id")
	del := env.MustDelivery(t, d, id)
	if del.State != recsink.DeliveryPending || del.Attempts != 1 || del.LastStatus != 500 ||
		!strings.Contains(del.LastError, "500") || !del.NextAttemptAt.After(del.CreatedAt) {
		t.Fatalf("after the first attempt: %+v", del)
	}
	close(gate)

	env.MustObserve(t, webhook.OutcomeRetry)
	del = env.MustDelivery(t, d, id)
	if del.State != recsink.DeliveryPending || del.Attempts != 2 || del.LastStatus != 0 || del.LastError == "" ||
		strings.Contains(del.LastError, secret) || strings.Contains(del.LastError, r.URL) {
		t.Fatalf("after the second attempt: %+v", del)
	}

	env.MustObserve(t, webhook.OutcomeDelivered)
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	del = env.MustDelivery(t, d, id)
	if del.State != recsink.DeliveryDelivered || del.Attempts != 3 || del.LastStatus != 200 || del.LastError != "" {
		t.Fatalf("after delivery: %+v", del)
	}
	// The receiver saw three attempts, all of the same event, and answered
	// 2xx to one.
	if n := r.Count(); n != 3 {
		t.Fatalf("receiver saw %d requests, want 3", n)
	}
	for range 2 {
		if got := r.MustReceive(t).Header.Get("Recsink-Event-Id"); got != id {
			t.Fatalf("event %s, want %s", got, id)
		}
	}
}

// TestRestart stops a dispatcher while its receiver is down; a new one on
// the same store delivers the event once.
func TestRestart(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	var up atomic.Bool
	var delivered sync.Map // event ID → count of 2xx answers
	r := MustNewReceiver(t, func(w http.ResponseWriter, req *http.Request, _ int) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		n, _ := delivered.LoadOrStore(req.Header.Get("Recsink-Event-Id"), new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
	})
	d1 := env.MustStart(t, r)
	env.MustSetEndpoint(t, d1, r.URL, nil)
	if err := d1.Enqueue(context.Background(), env.OrgID, recsink.WebhookRecordingFailed, nil); err != nil {
		t.Fatal(err)
	}
	env.MustObserve(t, webhook.OutcomeRetry)
	if err := d1.Stop(); err != nil {
		t.Fatal(err)
	}
	id := r.MustReceive(t).Header.Get("Recsink-Event-Id")
	if del := env.MustDelivery(t, d1, id); del.State != recsink.DeliveryPending {
		t.Fatalf("delivery after stop: %+v", del)
	}

	up.Store(true)
	// A new dispatcher, as after a restart; the outcomes of d1's retries
	// come first.
	d2 := env.MustStart(t, r)
	env.MustObserveEventually(t, webhook.OutcomeDelivered)
	if err := d2.Stop(); err != nil {
		t.Fatal(err)
	}
	n, ok := delivered.Load(id)
	if !ok || n.(*atomic.Int32).Load() != 1 {
		t.Fatalf("event %s delivered %v times, want once", id, n)
	}
	if del := env.MustDelivery(t, d2, id); del.State != recsink.DeliveryDelivered {
		t.Fatalf("delivery: %+v", del)
	}
}

// TestGone checks that a 410 disables the endpoint and the organization's
// pending deliveries, and that no event is enqueued for it afterwards.
func TestGone(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	r := MustNewReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusGone) })
	d := env.MustStart(t, r)
	env.MustSetEndpoint(t, d, r.URL, nil)
	ctx := context.Background()

	// A delivery waiting for a later attempt.
	waiting := storetest.NewWebhookDelivery(env.OrgID, time.Now().Add(time.Hour))
	if err := env.Store.CreateWebhookDelivery(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	if err := d.Enqueue(ctx, env.OrgID, recsink.WebhookRecordingFinished, nil); err != nil {
		t.Fatal(err)
	}
	id := r.MustReceive(t).Header.Get("Recsink-Event-Id")
	env.MustObserve(t, webhook.OutcomeDisabled) // waiting
	env.MustObserve(t, webhook.OutcomeDisabled) // the one sent

	ep, err := d.Endpoint(ctx, env.OrgID)
	if err != nil {
		t.Fatal(err)
	} else if ep.DisabledAt == nil {
		t.Fatal("endpoint not disabled")
	}
	if del := env.MustDelivery(t, d, id); del.State != recsink.DeliveryDisabled || del.LastStatus != 410 || del.Attempts != 1 {
		t.Fatalf("delivery: %+v", del)
	}
	if del := env.MustDelivery(t, d, waiting.ID); del.State != recsink.DeliveryDisabled || del.Attempts != 0 {
		t.Fatalf("waiting delivery: %+v", del)
	}

	if err := d.Enqueue(ctx, env.OrgID, recsink.WebhookRecordingFinished, nil); err != nil {
		t.Fatal(err)
	}
	if ds, _, err := d.Deliveries(ctx, env.OrgID, "", 100); err != nil {
		t.Fatal(err)
	} else if len(ds) != 2 {
		t.Fatalf("%d deliveries, want the 2 before the endpoint was disabled", len(ds))
	}

	// Setting the endpoint again enables it.
	env.MustSetEndpoint(t, d, r.URL, nil)
	if ep, err := d.Endpoint(ctx, env.OrgID); err != nil {
		t.Fatal(err)
	} else if ep.DisabledAt != nil {
		t.Fatal("endpoint still disabled after it was set again")
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if n := r.Count(); n != 1 {
		t.Fatalf("receiver saw %d requests, want 1", n)
	}
}

// TestRotateSecret checks that both secrets sign during the grace, only the
// new one after it, and that setting the endpoint again keeps no old secret.
func TestRotateSecret(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64 // added to the dispatcher's clock
	env := MustNewEnv(t)
	env.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	r := MustNewReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {})
	d := env.MustStart(t, r)
	ctx := context.Background()
	old := env.MustSetEndpoint(t, d, r.URL, nil)
	secret, err := d.RotateSecret(ctx, env.OrgID)
	if err != nil {
		t.Fatal(err)
	}
	if secret == old || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("rotated secret %q, old %q", secret, old)
	}
	if ep, err := d.Endpoint(ctx, env.OrgID); err != nil {
		t.Fatal(err)
	} else if ep.PreviousSecretExpiresAt == nil || ep.PreviousSecretExpiresAt.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("previous secret expires at %v, want in 24 h", ep.PreviousSecretExpiresAt)
	}

	// deliver sends an event and returns its signature header and body.
	deliver := func() (string, []byte) {
		t.Helper()
		if err := d.Enqueue(ctx, env.OrgID, recsink.WebhookCredentialDrained, nil); err != nil {
			t.Fatal(err)
		}
		req := r.MustReceive(t)
		env.MustObserve(t, webhook.OutcomeDelivered)
		return req.Header.Get(webhook.SignatureHeader), req.Body
	}

	sig, body := deliver()
	if n := strings.Count(sig, "v1="); n != 2 {
		t.Fatalf("signature %q has %d v1 values during the grace, want 2", sig, n)
	}
	now := env.Now()
	for i, s := range []string{secret, old} {
		if err := webhook.Verify(sig, body, s, webhook.DefaultTolerance, now); err != nil {
			t.Fatalf("Verify with secret %d of [new, old]: %v", i, err)
		}
	}
	// Each signature on its own verifies with exactly its secret: the new
	// one first.
	ts, v1a, v1b := parseSignature(t, sig)
	for _, tt := range []struct {
		v1, secret, other string
	}{{v1a, secret, old}, {v1b, old, secret}} {
		h := "t=" + ts + ",v1=" + tt.v1
		if err := webhook.Verify(h, body, tt.secret, webhook.DefaultTolerance, now); err != nil {
			t.Fatalf("Verify(%q): %v", h, err)
		}
		if err := webhook.Verify(h, body, tt.other, webhook.DefaultTolerance, now); !errors.Is(err, webhook.ErrSignatureMismatch) {
			t.Fatalf("Verify(%q) with the other secret = %v, want ErrSignatureMismatch", h, err)
		}
	}

	// After the grace only the new secret signs.
	offset.Store(int64(25 * time.Hour))
	sig, body = deliver()
	now = env.Now()
	if n := strings.Count(sig, "v1="); n != 1 {
		t.Fatalf("signature %q has %d v1 values after the grace, want 1", sig, n)
	}
	if err := webhook.Verify(sig, body, secret, webhook.DefaultTolerance, now); err != nil {
		t.Fatal(err)
	}
	if err := webhook.Verify(sig, body, old, webhook.DefaultTolerance, now); !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Fatalf("Verify with the old secret after the grace = %v", err)
	}

	// Rotate, then set the endpoint again: only the newest secret signs.
	offset.Store(0)
	if _, err := d.RotateSecret(ctx, env.OrgID); err != nil {
		t.Fatal(err)
	}
	newest := env.MustSetEndpoint(t, d, r.URL, nil)
	sig, body = deliver()
	if n := strings.Count(sig, "v1="); n != 1 {
		t.Fatalf("signature %q has %d v1 values after set, want 1", sig, n)
	}
	if err := webhook.Verify(sig, body, newest, webhook.DefaultTolerance, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// parseSignature splits "t=..,v1=..,v1=..".
func parseSignature(t *testing.T, h string) (ts, v1a, v1b string) {
	t.Helper()
	parts := strings.Split(h, ",")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "t=") || !strings.HasPrefix(parts[1], "v1=") || !strings.HasPrefix(parts[2], "v1=") {
		t.Fatalf("signature header %q", h)
	}
	return parts[0][2:], parts[1][3:], parts[2][3:]
}

func TestSetEndpoint(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	r := MustNewReceiver(t, func(http.ResponseWriter, *http.Request, int) {})
	d := env.MustStart(t, r) // allows r's host:port only
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		for _, u := range []string{r.URL, r.URL + "/a/b?c=d", "https://93.184.215.14/hooks", "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8080/"} {
			if _, err := d.SetEndpoint(ctx, env.OrgID, u, nil); err != nil {
				t.Fatalf("SetEndpoint(%q) = %v", u, err)
			}
		}
		secret, err := d.SetEndpoint(ctx, env.OrgID, r.URL, []string{recsink.WebhookRecordingFailed, recsink.WebhookRecordingFailed})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, "whsec_") || len(secret) < 40 {
			t.Fatalf("secret %q", secret)
		}
		ep, err := d.Endpoint(ctx, env.OrgID)
		if err != nil {
			t.Fatal(err)
		}
		if ep.URL != r.URL || len(ep.Events) != 1 || ep.Events[0] != recsink.WebhookRecordingFailed ||
			bytes.Contains(ep.SecretCiphertext, []byte(secret)) || ep.PreviousSecretCiphertext != nil {
			t.Fatalf("endpoint %+v", ep)
		}
	})

	for _, tt := range []struct {
		name, url string
		events    []string
		field     string
	}{
		{"ErrEmpty", "", nil, "url"},
		{"ErrScheme", "ftp://example.com/", nil, "url"},
		{"ErrNoHost", "https:///path", nil, "url"},
		{"ErrNotURL", "example.com/hooks", nil, "url"},
		{"ErrUser", "https://user:pass@example.com/", nil, "url"},
		{"ErrFragment", "https://example.com/#x", nil, "url"},
		{"ErrBadPort", "https://example.com:99999/", nil, "url"},
		{"ErrLoopbackOtherPort", "http://127.0.0.1:1/", nil, "url"},
		{"ErrLocalhost", "http://localhost:1/", nil, "url"},
		{"ErrIPv6Loopback", "http://[::1]:8080/", nil, "url"},
		{"ErrPrivate", "https://10.1.2.3/", nil, "url"},
		{"ErrLinkLocal", "http://169.254.169.254/latest/meta-data", nil, "url"},
		{"ErrSharedAddressSpace", "http://100.100.100.200/", nil, "url"},
		{"ErrMappedIPv4", "http://[::ffff:192.168.1.1]/", nil, "url"},
		{"ErrUnknownEvent", r.URL, []string{recsink.WebhookRecordingFinished, "recording.nope"}, "events"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.SetEndpoint(ctx, env.OrgID, tt.url, tt.events)
			if recsink.ErrorCode(err) != recsink.EINVALID || recsink.ErrorField(err) != tt.field {
				t.Fatalf("SetEndpoint(%q) = %v, want EINVALID on %s", tt.url, err, tt.field)
			}
		})
	}

	t.Run("ErrUnknownOrganization", func(t *testing.T) {
		_, err := d.SetEndpoint(ctx, recsink.NewID("org"), r.URL, nil)
		if recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("SetEndpoint = %v, want ENOTFOUND", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := d.DeleteEndpoint(ctx, env.OrgID); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Endpoint(ctx, env.OrgID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("Endpoint = %v, want ENOTFOUND", err)
		}
		if err := d.DeleteEndpoint(ctx, env.OrgID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("DeleteEndpoint = %v, want ENOTFOUND", err)
		}
		if _, err := d.RotateSecret(ctx, env.OrgID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
			t.Fatalf("RotateSecret = %v, want ENOTFOUND", err)
		}
		// No endpoint: nothing to enqueue, and no error.
		if err := d.Enqueue(ctx, env.OrgID, recsink.WebhookRecordingStarted, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDialGuard checks that the dialer, not only SetEndpoint, refuses a
// loopback receiver that is not allowed: the endpoint was set on a server
// that allowed it, and is delivered by one that does not.
func TestDialGuard(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	r := MustNewReceiver(t, func(http.ResponseWriter, *http.Request, int) {})
	env.MustSetEndpoint(t, env.New(r), r.URL, nil)

	d := env.New(nil) // allows nothing
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	if err := d.Enqueue(context.Background(), env.OrgID, recsink.WebhookRecordingStarted, nil); err != nil {
		t.Fatal(err)
	}
	env.MustObserve(t, webhook.OutcomeRetry)
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	ds, _, err := d.Deliveries(context.Background(), env.OrgID, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].State != recsink.DeliveryPending || !strings.Contains(ds[0].LastError, "non-public address") {
		t.Fatalf("deliveries %+v", ds)
	}
	if n := r.Count(); n != 0 {
		t.Fatalf("receiver saw %d requests, want none", n)
	}
}

// TestSubscription checks that only subscribed types are enqueued.
func TestSubscription(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	r := MustNewReceiver(t, func(http.ResponseWriter, *http.Request, int) {})
	d := env.MustStart(t, r)
	ctx := context.Background()
	env.MustSetEndpoint(t, d, r.URL, []string{recsink.WebhookRecordingFinished, recsink.WebhookCredentialDrained})

	for _, typ := range recsink.WebhookEventTypes {
		if err := d.Enqueue(ctx, env.OrgID, typ, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Enqueue(ctx, env.OrgID, "recording.nope", nil); recsink.ErrorCode(err) != recsink.EINVALID {
		t.Fatalf("Enqueue of an unknown type = %v, want EINVALID", err)
	}
	env.MustObserve(t, webhook.OutcomeDelivered)
	env.MustObserve(t, webhook.OutcomeDelivered)
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range 2 {
		got[r.MustReceive(t).Header.Get("Recsink-Event-Type")] = true
	}
	if !got[recsink.WebhookRecordingFinished] || !got[recsink.WebhookCredentialDrained] || r.Count() != 2 {
		t.Fatalf("received %v (%d requests)", got, r.Count())
	}
	if ds, _, err := d.Deliveries(ctx, env.OrgID, "", 100); err != nil {
		t.Fatal(err)
	} else if len(ds) != 2 {
		t.Fatalf("%d deliveries, want 2", len(ds))
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	env := MustNewEnv(t)
	d := env.New(nil)
	if err := d.Stop(); err != nil { // never started
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	// Started again, and stopped by its context.
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Env is one test's store, box and organization, and the observed outcomes
// of its dispatchers.
type Env struct {
	Store    *sqlite.DB
	Box      *secrets.Box
	OrgID    string
	Now      func() time.Time // nil means time.Now
	outcomes chan string
}

// MustNewEnv opens a store in a temp dir with one organization.
func MustNewEnv(tb testing.TB) *Env {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "recsink.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, secrets.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return &Env{Store: db, Box: box, OrgID: storetest.MustCreateOrganization(tb, db).ID, outcomes: make(chan string, 1000)}
}

// Delivered implements webhook.Observer.
func (e *Env) Delivered(_, outcome string) { e.outcomes <- outcome }

// New returns a dispatcher on the env's store with fast retries, allowing
// r's host:port when r is not nil.
func (e *Env) New(r *Receiver) *webhook.Dispatcher {
	cfg := webhook.Config{
		Store:        e.Store,
		Box:          e.Box,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   20 * time.Millisecond,
		PollInterval: 5 * time.Millisecond,
		Observer:     e,
		Now:          e.Now,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if r != nil {
		cfg.AllowEndpoints = []string{r.Listener.Addr().String()}
	}
	return webhook.New(cfg)
}

// MustStart starts a new dispatcher and stops it when the test ends.
func (e *Env) MustStart(tb testing.TB, r *Receiver) *webhook.Dispatcher {
	tb.Helper()
	d := e.New(r)
	if err := d.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Stop() })
	return d
}

// MustSetEndpoint sets the org's endpoint and returns its secret.
func (e *Env) MustSetEndpoint(tb testing.TB, d *webhook.Dispatcher, url string, events []string) string {
	tb.Helper()
	secret, err := d.SetEndpoint(context.Background(), e.OrgID, url, events)
	if err != nil {
		tb.Fatal(err)
	}
	return secret
}

// MustObserve waits for the next outcome and checks it.
func (e *Env) MustObserve(tb testing.TB, want string) {
	tb.Helper()
	select {
	case got := <-e.outcomes:
		if got != want {
			tb.Fatalf("outcome %q, want %q", got, want)
		}
	case <-time.After(waitTimeout):
		tb.Fatalf("no outcome within %s, want %q", waitTimeout, want)
	}
}

// MustObserveEventually waits for an outcome, skipping others.
func (e *Env) MustObserveEventually(tb testing.TB, want string) {
	tb.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case got := <-e.outcomes:
			if got == want {
				return
			}
		case <-deadline:
			tb.Fatalf("no outcome %q within %s", want, waitTimeout)
		}
	}
}

// MustDelivery returns the org's delivery id.
func (e *Env) MustDelivery(tb testing.TB, d *webhook.Dispatcher, id string) *recsink.WebhookDelivery {
	tb.Helper()
	ds, _, err := d.Deliveries(context.Background(), e.OrgID, "", 100)
	if err != nil {
		tb.Fatal(err)
	}
	for _, del := range ds {
		if del.ID == id {
			return del
		}
	}
	tb.Fatalf("no delivery %s", id)
	return nil
}

// Receiver is a webhook receiver on loopback that records every request.
type Receiver struct {
	*httptest.Server
	requests chan Request
	n        atomic.Int32
}

// Request is a request the receiver got.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// MustNewReceiver starts a receiver that answers with handle, which is
// given the request's number from 1 (the default answer is 200).
func MustNewReceiver(tb testing.TB, handle func(w http.ResponseWriter, r *http.Request, n int)) *Receiver {
	tb.Helper()
	r := &Receiver{requests: make(chan Request, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			tb.Errorf("receiver: %v", err)
			return
		}
		n := int(r.n.Add(1))
		r.requests <- Request{Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body}
		handle(w, req, n)
	}))
	tb.Cleanup(r.Close)
	return r
}

// Count returns the number of requests received.
func (r *Receiver) Count() int { return int(r.n.Load()) }

// MustReceive waits for the next request.
func (r *Receiver) MustReceive(tb testing.TB) Request {
	tb.Helper()
	select {
	case req := <-r.requests:
		return req
	case <-time.After(waitTimeout):
		tb.Fatalf("no request within %s", waitTimeout)
		return Request{}
	}
}
