package http_test

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// TestRateLimit: an API key past its burst gets 429 with Retry-After and
// Whereby's body {"error", "data": {"msLeft"}}; another key is not held
// back by it; ingest is never limited; a key is served again once the wait
// it was told has passed.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer()
	ts.API.APIRate, ts.API.APIBurst = 2, 3
	ts.Server = httptest.NewServer(ts.API.Handler())
	t.Cleanup(ts.Close)

	for i := range 3 {
		if resp, b := ts.Call(t, "GET", "/v1/recordings", ""); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: status %d: %s", i, resp.StatusCode, b)
		}
	}
	resp, b := ts.Call(t, "GET", "/v1/recordings/"+testRecID, "")
	if resp.StatusCode != 429 {
		t.Fatalf("past the burst: status %d: %s", resp.StatusCode, b)
	}
	var body struct {
		Error string `json:"error"`
		Data  struct {
			MsLeft *int64 `json:"msLeft"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error == "" || body.Data.MsLeft == nil || *body.Data.MsLeft <= 0 || *body.Data.MsLeft > 500 {
		t.Fatalf("429 body %s (%v)", b, err)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra != 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}

	// Another key has its own bucket.
	req := ts.NewRequest(t, "GET", "/v1/recordings", "")
	req.Header.Set("Authorization", "Bearer "+testAPIKey2)
	if resp, b := ts.Do(t, req); resp.StatusCode != 200 {
		t.Fatalf("another key: status %d: %s", resp.StatusCode, b)
	}
	// Ingest is authenticated by the recording's token and never limited.
	for i := range 20 {
		req := ts.NewRequest(t, "HEAD", "/v1/recordings/"+testRecID+"/ingest", "")
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Tus-Resumable", "1.0.0")
		if resp, _ := ts.Do(t, req); resp.StatusCode == 429 {
			t.Fatalf("ingest HEAD %d limited", i)
		}
	}
	// Served again after msLeft: the refill is what is under test, so the
	// test lets exactly that much time pass.
	time.Sleep(time.Duration(*body.Data.MsLeft) * time.Millisecond)
	if resp, b := ts.Call(t, "GET", "/v1/recordings", ""); resp.StatusCode != 200 {
		t.Fatalf("after msLeft: status %d: %s", resp.StatusCode, b)
	}
}
