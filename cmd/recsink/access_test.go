package main_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// fetch GETs url with a plain HTTP client and returns the status and body.
func fetch(tb testing.TB, url string) (int, []byte) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestAccessLink_Versitygw: an access link fetched with a plain GET returns
// the object byte-identical; after it expires S3 refuses it; with the
// recording's key deleted and a new key saved a new link still works; with
// no key left that reaches the bucket the answer says so.
func TestAccessLink_Versitygw(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	b := e.S3.CreateUser(t, "user")
	e.S3.PutBucketPolicy(t, e.Bucket, e.Key, e.Key.ID, b.ID)

	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 6*mib+11)
	rec.MustPut(t, data)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)

	link := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID+"/access-link?validForSeconds=2", nil)
	u := link["accessLink"].(string)
	expires := time.UnixMilli(int64(link["expires"].(float64)))
	if !strings.Contains(u, e.Key.ID) {
		t.Errorf("link not signed with the recording's key %s: %s", e.Key.ID, u)
	}
	if status, got := fetch(t, u); status != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET the link: status %d, %d bytes, want %d identical", status, len(got), len(data))
	}
	// Refused once it has expired. SigV4 counts from the signing second,
	// so the refusal may come up to 1 s before expires, never earlier.
	for {
		status, _ := fetch(t, u)
		if status == 403 {
			if early := time.Until(expires); early > time.Second {
				t.Fatalf("refused %s before it expires", early)
			}
			t.Logf("refused %s after expires", -time.Until(expires).Round(time.Millisecond))
			break
		}
		if status != 200 {
			t.Fatalf("GET the link: status %d", status)
		}
		if time.Since(expires) > 5*time.Second {
			t.Fatalf("the link still works %s after it expired", time.Since(expires))
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}

	// The key that wrote the recording is deleted; a new key is saved.
	e.S3.DeleteUser(t, e.Key.ID)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	link = e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+rec.ID+"/access-link", nil)
	u = link["accessLink"].(string)
	if !strings.Contains(u, b.ID) {
		t.Errorf("link not signed with the new key %s: %s", b.ID, u)
	}
	if status, got := fetch(t, u); status != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET the new link: status %d, %d bytes", status, len(got))
	}

	// No saved key reaches the bucket.
	e.S3.DeleteUser(t, b.ID)
	status, out := e.Org.Do(t, "GET", "/v1/recordings/"+rec.ID+"/access-link", nil)
	if status != 422 || !strings.Contains(out["error"].(string), "no current key reaches the bucket") {
		t.Fatalf("no key: %d %v", status, out)
	}
}
