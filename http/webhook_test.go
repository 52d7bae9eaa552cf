package http_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

const testWebhookSecret = "whsec_SECRETSECRETSECRET"

// WebhookService is an in-memory recsink.WebhookService for one
// organization.
type WebhookService struct {
	mu       sync.Mutex
	endpoint *recsink.WebhookEndpoint
	rotated  int
	Cursor   string // of the last Deliveries
	Limit    int    // of the last Deliveries

	SetEndpointFn func(ctx context.Context, orgID, url string, events []string) (string, error)
}

var _ recsink.WebhookService = (*WebhookService)(nil)

func (s *WebhookService) SetEndpoint(ctx context.Context, orgID, url string, events []string) (string, error) {
	if s.SetEndpointFn != nil {
		return s.SetEndpointFn(ctx, orgID, url, events)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoint = &recsink.WebhookEndpoint{OrgID: orgID, URL: url, Events: events, SecretCiphertext: []byte(testWebhookSecret), CreatedAt: date(), UpdatedAt: date()}
	return testWebhookSecret, nil
}

func (s *WebhookService) Endpoint(ctx context.Context, orgID string) (*recsink.WebhookEndpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoint == nil || s.endpoint.OrgID != orgID {
		return nil, recsink.Errorf(recsink.ENOTFOUND, "no webhook endpoint")
	}
	ep := *s.endpoint
	return &ep, nil
}

func (s *WebhookService) DeleteEndpoint(ctx context.Context, orgID string) error {
	if _, err := s.Endpoint(ctx, orgID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoint = nil
	return nil
}

func (s *WebhookService) RotateSecret(ctx context.Context, orgID string) (string, error) {
	if _, err := s.Endpoint(ctx, orgID); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotated++
	expires := date().Add(24 * time.Hour)
	s.endpoint.PreviousSecretExpiresAt = &expires
	return testWebhookSecret + "2", nil
}

func (s *WebhookService) Deliveries(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.WebhookDelivery, string, error) {
	s.mu.Lock()
	s.Cursor, s.Limit = cursor, limit
	s.mu.Unlock()
	delivered := date().Add(time.Second)
	ds := []*recsink.WebhookDelivery{
		{ID: "evt_2", OrgID: orgID, Type: recsink.WebhookRecordingFinished, Payload: []byte(`{"secret":"no"}`), CreatedAt: date(),
			State: recsink.DeliveryPending, Attempts: 2, NextAttemptAt: date().Add(time.Minute), LastStatus: 500, LastError: "receiver answered 500"},
		{ID: "evt_1", OrgID: orgID, Type: recsink.WebhookRecordingStarted, CreatedAt: date(),
			State: recsink.DeliveryDelivered, Attempts: 1, NextAttemptAt: date(), LastStatus: 200, DeliveredAt: &delivered},
	}
	if cursor != "" {
		return []*recsink.WebhookDelivery{}, "", nil
	}
	return ds, "next-page", nil
}

// MustOpenWebhookServer is MustOpenServer with a WebhookService.
func MustOpenWebhookServer(tb testing.TB) (*TestServer, *WebhookService) {
	tb.Helper()
	ts := MustOpenServer(tb)
	wh := &WebhookService{}
	ts.API.WebhookService = wh
	return ts, wh
}

func TestWebhooks(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		ts, _ := MustOpenWebhookServer(t)
		if resp, b := ts.Call(t, "GET", "/v1/webhooks", ""); resp.StatusCode != 404 || MustDecodeError(t, b).Code != "not_found" {
			t.Fatalf("GET before PUT: status %d: %s", resp.StatusCode, b)
		}

		resp, b := ts.Call(t, "PUT", "/v1/webhooks", `{"url":" https://example.com/hook ","events":["recording.finished","recording.finished","credential.drained"]}`)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("PUT: status %d Cache-Control %q: %s", resp.StatusCode, resp.Header.Get("Cache-Control"), b)
		}
		var put struct {
			URL    string   `json:"url"`
			Events []string `json:"events"`
			Secret string   `json:"secret"`
		}
		if err := json.Unmarshal(b, &put); err != nil {
			t.Fatal(err)
		}
		if put.URL != "https://example.com/hook" || strings.Join(put.Events, ",") != "recording.finished,credential.drained" || put.Secret != testWebhookSecret {
			t.Fatalf("PUT: %s", b)
		}

		resp, b = ts.Call(t, "GET", "/v1/webhooks", "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET: status %d: %s", resp.StatusCode, b)
		}
		if strings.Contains(string(b), "SECRET") {
			t.Fatalf("GET shows the secret: %s", b)
		}
		got := MustDecode(t, b)
		if got["url"] != "https://example.com/hook" || got["createdAt"] != "2030-01-02T03:04:05.000Z" || got["updatedAt"] == nil {
			t.Fatalf("GET: %s", b)
		}
		if _, ok := got["disabledAt"]; ok {
			t.Errorf("disabledAt on an enabled endpoint: %s", b)
		}

		resp, b = ts.Call(t, "POST", "/v1/webhooks/rotate-secret", "")
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" || MustDecode(t, b)["secret"] != testWebhookSecret+"2" {
			t.Fatalf("rotate: status %d: %s", resp.StatusCode, b)
		}
		_, b = ts.Call(t, "GET", "/v1/webhooks", "")
		if MustDecode(t, b)["previousSecretExpiresAt"] != "2030-01-03T03:04:05.000Z" {
			t.Errorf("GET after rotation: %s", b)
		}

		if resp, b := ts.Call(t, "DELETE", "/v1/webhooks", ""); resp.StatusCode != 204 {
			t.Fatalf("DELETE: status %d: %s", resp.StatusCode, b)
		}
		if resp, b := ts.Call(t, "DELETE", "/v1/webhooks", ""); resp.StatusCode != 404 {
			t.Fatalf("DELETE again: status %d: %s", resp.StatusCode, b)
		}
		if resp, b := ts.Call(t, "POST", "/v1/webhooks/rotate-secret", ""); resp.StatusCode != 404 {
			t.Fatalf("rotate without endpoint: status %d: %s", resp.StatusCode, b)
		}
	})

	t.Run("AllEvents", func(t *testing.T) {
		t.Parallel()
		ts, _ := MustOpenWebhookServer(t)
		resp, b := ts.Call(t, "PUT", "/v1/webhooks", `{"url":"https://example.com/hook"}`)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if ev, ok := MustDecode(t, b)["events"].([]any); !ok || len(ev) != 0 {
			t.Fatalf("events %s, want []", b)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name, body string
			status     int
			field      string
		}{
			{"ErrNoURL", `{"events":[]}`, 400, "url"},
			{"ErrBlankURL", `{"url":"  "}`, 400, "url"},
			{"ErrUnknownEvent", `{"url":"https://example.com","events":["recording.exploded"]}`, 400, "events"},
			{"ErrEventsNotArray", `{"url":"https://example.com","events":"recording.started"}`, 400, "events"},
			{"ErrUnknownField", `{"url":"https://example.com","secret":"mine"}`, 400, "secret"},
			{"ErrURLRefused", `{"url":"http://127.0.0.1/hook"}`, 400, "url"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				ts, wh := MustOpenWebhookServer(t)
				wh.SetEndpointFn = func(ctx context.Context, orgID, url string, events []string) (string, error) {
					return "", recsink.FieldErrorf("url", "url host 127.0.0.1 is a loopback address")
				}
				resp, b := ts.Call(t, "PUT", "/v1/webhooks", tt.body)
				if resp.StatusCode != tt.status || MustDecodeError(t, b).Field != tt.field {
					t.Fatalf("status %d, want %d field %s: %s", resp.StatusCode, tt.status, tt.field, b)
				}
			})
		}
		t.Run("ErrContentType", func(t *testing.T) {
			t.Parallel()
			ts, _ := MustOpenWebhookServer(t)
			req := ts.NewRequest(t, "PUT", "/v1/webhooks", `{"url":"https://example.com"}`)
			req.Header.Set("Content-Type", "text/plain")
			if resp, b := ts.Do(t, req); resp.StatusCode != 415 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
		})
	})

	t.Run("Deliveries", func(t *testing.T) {
		t.Parallel()
		ts, wh := MustOpenWebhookServer(t)
		resp, b := ts.Call(t, "GET", "/v1/webhooks/deliveries?limit=2", "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if strings.Contains(string(b), "secret") || strings.Contains(string(b), "orgId") {
			t.Fatalf("payload or org in the list: %s", b)
		}
		var page struct {
			Results []map[string]any `json:"results"`
			Cursor  string           `json:"cursor"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Results) != 2 || page.Cursor != "next-page" || wh.Limit != 2 {
			t.Fatalf("page %s, limit %d", b, wh.Limit)
		}
		d := page.Results[0]
		for k, v := range map[string]any{"id": "evt_2", "type": "recording.finished", "state": "pending", "attempts": float64(2),
			"nextAttemptAt": "2030-01-02T03:05:05.000Z", "lastStatus": float64(500), "lastError": "receiver answered 500", "createdAt": "2030-01-02T03:04:05.000Z"} {
			if d[k] != v {
				t.Errorf("%s = %v, want %v", k, d[k], v)
			}
		}
		if page.Results[1]["deliveredAt"] != "2030-01-02T03:04:06.000Z" {
			t.Errorf("deliveredAt %v", page.Results[1]["deliveredAt"])
		}

		_, b = ts.Call(t, "GET", "/v1/webhooks/deliveries?cursor=next-page", "")
		if string(b) != `{"results":[],"cursor":null}`+"\n" || wh.Cursor != "next-page" || wh.Limit != 50 {
			t.Errorf("last page %s, cursor %q, limit %d", b, wh.Cursor, wh.Limit)
		}
		if resp, b := ts.Call(t, "GET", "/v1/webhooks/deliveries?limit=0", ""); resp.StatusCode != 400 || MustDecodeError(t, b).Field != "limit" {
			t.Errorf("limit=0: status %d: %s", resp.StatusCode, b)
		}
	})

	t.Run("NotEnabled", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		for _, r := range [][2]string{{"GET", "/v1/webhooks"}, {"PUT", "/v1/webhooks"}, {"DELETE", "/v1/webhooks"},
			{"POST", "/v1/webhooks/rotate-secret"}, {"GET", "/v1/webhooks/deliveries"}} {
			resp, b := ts.Call(t, r[0], r[1], "")
			if resp.StatusCode != 501 || !strings.Contains(MustDecodeError(t, b).Error, "not enabled") {
				t.Errorf("%s %s: status %d: %s", r[0], r[1], resp.StatusCode, b)
			}
		}
	})

	t.Run("ErrUnauthorized", func(t *testing.T) {
		t.Parallel()
		ts, _ := MustOpenWebhookServer(t)
		req := ts.NewRequest(t, "GET", "/v1/webhooks", "")
		req.Header.Set("Authorization", "Bearer wrong")
		if resp, _ := ts.Do(t, req); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestIAMPolicy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, bucket, resource string
	}{
		{"OK", "my-bucket", "arn:aws:s3:::my-bucket/*"},
		{"Prefix", "my-bucket/rec/2030/", "arn:aws:s3:::my-bucket/rec/2030/*"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			resp, b := ts.Call(t, "GET", "/v1/storage/iam-policy?bucket="+tt.bucket, "")
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var doc struct {
				Version   string
				Statement []struct {
					Action   []string
					Resource []string
				}
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Version != "2012-10-17" || len(doc.Statement) != 2 || doc.Statement[1].Resource[0] != tt.resource ||
				doc.Statement[0].Resource[0] != "arn:aws:s3:::my-bucket" {
				t.Fatalf("policy %s", b)
			}
		})
	}
	for _, tt := range []struct{ name, query string }{
		{"ErrMissing", ""},
		{"ErrUppercase", "?bucket=MyBucket"},
		{"ErrURL", "?bucket=https://s3.amazonaws.com/b"},
		{"ErrPrefix", "?bucket=my-bucket/a%5Cb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			resp, b := ts.Call(t, "GET", "/v1/storage/iam-policy"+tt.query, "")
			if resp.StatusCode != 400 || MustDecodeError(t, b).Field != "bucket" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
		})
	}
}
