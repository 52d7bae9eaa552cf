package main_test

import (
	"bytes"
	"encoding/json"
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
	// Half a request a second after a burst of 5: however slow the machine,
	// 30 requests in under 10 s leave at least 20 over the limit.
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.APIRate, c.APIBurst = 0.5, 5 })
	rec := MustStartRecording(t, e.Org, meeting)

	var limited int
	var retryAfter string
	var msLeft float64
	began := time.Now()
	for range 30 {
		req, _ := http.NewRequest("GET", e.Main.URL()+"/v1/recordings/"+rec.ID, nil)
		req.Header.Set("Authorization", "Bearer "+e.Org.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		switch resp.StatusCode {
		case 200:
		case 429:
			limited++
			data, _ := out["data"].(map[string]any)
			if out["error"] == nil || data == nil || data["msLeft"] == nil {
				t.Fatalf("429 body %v", out)
			}
			msLeft = data["msLeft"].(float64)
			retryAfter = resp.Header.Get("Retry-After")
			if n, err := strconv.Atoi(retryAfter); err != nil || n < 1 || float64(n*1000) < msLeft {
				t.Fatalf("Retry-After %q with msLeft %v", retryAfter, msLeft)
			}
		default:
			t.Fatalf("status %d: %v", resp.StatusCode, out)
		}
	}
	if took := time.Since(began); took < 10*time.Second && (limited < 15 || msLeft <= 0) {
		t.Fatalf("%d of 30 requests limited in %s (msLeft %v), want at least 15 past a burst of 5 at 0.5/s", limited, took, msLeft)
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _ := e.Org.Do(t, "GET", "/v1/recordings/"+rec.ID, nil)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still limited 10 s later")
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
}
