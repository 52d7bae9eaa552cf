package main_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	main "github.com/recsink/recsink/cmd/recsink"
)

// TestRateLimit_API: past --api-rate/--api-burst an API key gets 429 with
// Retry-After and Whereby's body; the recorder's ingest on the same
// organization goes on unaffected meanwhile.
func TestRateLimit_API(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.APIRate, c.APIBurst = 2, 10 })
	rec := MustStartRecording(t, e.Org, meeting)

	var limited int
	var retryAfter string
	var msLeft float64
	for range 30 {
		status, out := e.Org.Do(t, "GET", "/v1/recordings/"+rec.ID, nil)
		switch status {
		case 200:
		case 429:
			limited++
			data, _ := out["data"].(map[string]any)
			if out["error"] == nil || data == nil || data["msLeft"] == nil {
				t.Fatalf("429 body %v", out)
			}
			msLeft = data["msLeft"].(float64)
		default:
			t.Fatalf("status %d: %v", status, out)
		}
	}
	// Retry-After, seen on a raw request.
	req, _ := http.NewRequest("GET", e.Main.URL()+"/v1/recordings", nil)
	req.Header.Set("Authorization", "Bearer "+e.Org.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	retryAfter = resp.Header.Get("Retry-After")
	if resp.StatusCode != 429 || retryAfter == "" {
		t.Fatalf("status %d, Retry-After %q", resp.StatusCode, retryAfter)
	}
	if n, err := strconv.Atoi(retryAfter); err != nil || n < 1 {
		t.Fatalf("Retry-After %q", retryAfter)
	}
	if limited < 15 || msLeft <= 0 {
		t.Fatalf("%d of 30 requests limited (msLeft %v), want at least 15 past a burst of 10 at 2/s", limited, msLeft)
	}

	// Ingest goes on, PUT after PUT, while the API key is limited.
	var sent []byte
	for i := range 40 {
		chunk := bytes.Repeat([]byte{byte(i)}, 4096)
		rec.MustPut(t, chunk)
		sent = append(sent, chunk...)
	}
	if off := rec.Offset(t); off != int64(len(sent)) {
		t.Fatalf("offset %d, want %d", off, len(sent))
	}
	t.Logf("%d of 30 API calls limited (Retry-After %s s, msLeft %v); 40 ingest PUTs and a HEAD unaffected", limited, retryAfter, msLeft)

	// Served again once the wait has passed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, _ := e.Org.Do(t, "GET", "/v1/recordings/"+rec.ID, nil)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still limited 5 s later")
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
}
