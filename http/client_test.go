package http_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	rshttp "github.com/recsink/recsink/http"
)

// MustClient returns a client of the test server with the test API key.
func (ts *TestServer) MustClient(tb testing.TB) *rshttp.Client {
	tb.Helper()
	c := rshttp.NewClient(ts.URL+"/", testAPIKey)
	c.HTTPClient = ts.Client()
	return c
}

// mustCode fails unless err is a *recsink.Error with code.
func mustCode(tb testing.TB, err error, code string) *recsink.Error {
	tb.Helper()
	var e *recsink.Error
	if !errors.As(err, &e) || e.Code != code {
		tb.Fatalf("error %v (%T), want code %s", err, err, code)
	}
	return e
}

func TestClient_Recordings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("Start", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		rec, ingestURL, token, err := ts.MustClient(t).StartRecording(ctx, testMeeting)
		if err != nil {
			t.Fatal(err)
		}
		if rec.ID != testRecID || rec.State != recsink.RecordingRecording || rec.ObjectKey != "rec/team-abc/rec_1.mkv" ||
			rec.Destination.Bucket != "my-bucket" || rec.Destination.Prefix != "rec" || rec.AccessKeyID != testKeyID ||
			rec.CredentialID != "cred_1" || !rec.StartDate.Equal(date()) {
			t.Errorf("recording %+v", rec)
		}
		if ingestURL != ts.URL+"/v1/recordings/rec_1/ingest" || token != testToken {
			t.Errorf("ingest %s %s", ingestURL, token)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		_, _, _, err := ts.MustClient(t).StartRecording(ctx, "nope")
		if e := mustCode(t, err, recsink.ENOTFOUND); e.Message != "meeting not found" {
			t.Errorf("message %q", e.Message)
		}
		if rshttp.Retryable(err) {
			t.Error("not found is retryable")
		}
	})

	t.Run("ErrUnauthorized", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		c := ts.MustClient(t)
		c.APIKey = "wrong"
		_, _, err := c.FindRecording(ctx, testRecID)
		mustCode(t, err, recsink.EUNAUTHORIZED)
	})

	t.Run("FindStop", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		c := ts.MustClient(t)
		rec, events, err := c.FindRecording(ctx, testRecID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.BytesReceived != 10 || rec.BytesUploaded != 5 || rec.SizeBytes == nil || *rec.SizeBytes != 1234 ||
			len(events) != 1 || events[0].Type != recsink.EventStarted {
			t.Errorf("recording %+v events %+v", rec, events)
		}
		rec, err = c.StopRecording(ctx, testRecID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != recsink.RecordingStopping || rec.StopReason != recsink.StopRequested || rec.EndDate == nil {
			t.Errorf("stopped %+v", rec)
		}
	})
}

func TestClient_ListCredentials(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		us, err := ts.MustClient(t).ListCredentials(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(us) != 2 {
			t.Fatalf("%d credentials", len(us))
		}
		old, cur := us[0], us[1]
		if old.AccessKeyID != "AKIAOLDKEY" || old.State != recsink.CredentialDraining || old.Scope != recsink.ScopeOrganization ||
			len(old.ActiveRecordings) != 1 || old.ActiveRecordings[0] != testRecID || old.SafeToDeleteAfter == nil ||
			!old.SafeToDeleteAfter.Equal(date().Add(24*time.Hour)) || old.ReplacedAt == nil || old.Destination.BucketPath() != "my-bucket/rec" {
			t.Errorf("old %+v", old)
		}
		if cur.State != recsink.CredentialCurrent || cur.SafeToDeleteAfter != nil || cur.ActiveRecordings == nil || len(cur.ActiveRecordings) != 0 {
			t.Errorf("current %+v", cur)
		}
	})

	// A failure of the customer's storage keeps its code and message.
	t.Run("ErrDestination", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		ts.Storage.ListCredentialsFn = func(ctx context.Context, orgID string) ([]*recsink.CredentialUsage, error) {
			return nil, &recsink.StorageError{Op: "HeadBucket", Code: "NoSuchBucket", StatusCode: 404}
		}
		_, err := ts.MustClient(t).ListCredentials(ctx)
		if e := mustCode(t, err, recsink.EDESTINATION); !strings.Contains(e.Message, "bucket does not exist") {
			t.Errorf("message %q", e.Message)
		}
	})

	t.Run("ErrInternal", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		ts.Storage.ListCredentialsFn = func(ctx context.Context, orgID string) ([]*recsink.CredentialUsage, error) {
			return nil, errors.New("db on fire")
		}
		_, err := ts.MustClient(t).ListCredentials(ctx)
		if e := mustCode(t, err, recsink.EINTERNAL); e.Message != "internal error" {
			t.Errorf("message %q", e.Message)
		}
	})
}

func TestClient_IAMPolicy(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	c := ts.MustClient(t)
	doc, err := c.IAMPolicy(context.Background(), "my-bucket/rec")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "arn:aws:s3:::my-bucket/rec/*") {
		t.Errorf("policy %s", doc)
	}
	_, err = c.IAMPolicy(context.Background(), "Bad_Bucket")
	if e := mustCode(t, err, recsink.EINVALID); e.Field != "bucket" {
		t.Errorf("field %q", e.Field)
	}
}

func TestUploader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	newUploader := func(ts *TestServer) *rshttp.Uploader {
		return &rshttp.Uploader{URL: ts.URL + ingestPath, Token: testToken, HTTPClient: ts.Client()}
	}

	t.Run("OffsetPatch", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		up := newUploader(ts)
		if n, err := up.Offset(ctx); err != nil || n != 0 {
			t.Fatalf("offset %d, %v", n, err)
		}
		if n, err := up.Patch(ctx, 0, strings.NewReader("hello ")); err != nil || n != 6 {
			t.Fatalf("patch: %d, %v", n, err)
		}
		// A body of unknown length streams.
		if n, err := up.Patch(ctx, 6, io.MultiReader(strings.NewReader("wor"), strings.NewReader("ld"))); err != nil || n != 11 {
			t.Fatalf("patch: %d, %v", n, err)
		}
		if n, err := up.Patch(ctx, 11, nil); err != nil || n != 11 {
			t.Fatalf("empty patch: %d, %v", n, err)
		}
		if n, err := up.Offset(ctx); err != nil || n != 11 || ts.Ingest.Data() != "hello world" {
			t.Fatalf("offset %d, %v, data %q", n, err, ts.Ingest.Data())
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		up := newUploader(ts)
		if _, err := up.Patch(ctx, 0, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
		n, err := up.Patch(ctx, 1, strings.NewReader("bc"))
		mustCode(t, err, recsink.ECONFLICT)
		if n != 3 {
			t.Errorf("offset with the conflict %d, want 3", n)
		}
	})

	t.Run("ErrSpoolFull", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		ts.Ingest.FullAfter = 2
		up := newUploader(ts)
		n, err := up.Patch(ctx, 0, strings.NewReader("abcdef"))
		if e := mustCode(t, err, recsink.EUNAVAILABLE); e.RetryAfter != 7 {
			t.Errorf("RetryAfter %d", e.RetryAfter)
		}
		if n != 0 || !rshttp.Retryable(err) {
			t.Errorf("offset %d, retryable %v", n, rshttp.Retryable(err))
		}
	})

	// A body cut for going quiet is retried from the offset it reports.
	t.Run("ErrIdleCut", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenLimitedServer(t, func(s *rshttp.Server) { s.IngestIdleTimeout = 300 * time.Millisecond })
		up := newUploader(ts)
		pr, pw := io.Pipe()
		defer pw.Close()
		go io.WriteString(pw, "abc") // then silence
		n, err := up.Patch(ctx, 0, pr)
		mustCode(t, err, recsink.EUNAVAILABLE)
		if n != 3 || !rshttp.Retryable(err) {
			t.Errorf("offset %d, retryable %v: %v", n, rshttp.Retryable(err), err)
		}
	})

	t.Run("ErrToken", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		up := newUploader(ts)
		up.Token = "wrong"
		_, err := up.Offset(ctx) // HEAD: no body, the code comes from the status
		mustCode(t, err, recsink.EUNAUTHORIZED)
		_, err = up.Patch(ctx, 0, strings.NewReader("x"))
		mustCode(t, err, recsink.EUNAUTHORIZED)
		if rshttp.Retryable(err) {
			t.Error("a wrong token is retryable")
		}
	})

	// A proxy's own error page is an error of the status's code.
	t.Run("ErrProxy", func(t *testing.T) {
		t.Parallel()
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>Bad Gateway</html>", http.StatusBadGateway)
		}))
		defer proxy.Close()
		up := &rshttp.Uploader{URL: proxy.URL, Token: testToken}
		_, err := up.Patch(ctx, 0, strings.NewReader("x"))
		if e := mustCode(t, err, recsink.EUNAVAILABLE); !strings.Contains(e.Message, "502") {
			t.Errorf("message %q", e.Message)
		}
		if !rshttp.Retryable(err) {
			t.Error("502 is not retryable")
		}
	})

	t.Run("ErrConnection", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		up := &rshttp.Uploader{URL: srv.URL, Token: testToken}
		if _, err := up.Offset(ctx); err == nil || !rshttp.Retryable(err) {
			t.Fatalf("error %v, want a retryable transport error", err)
		}
	})
}

// Example_recordFile starts a recording, sends a file with the resumable
// ingest, resuming from the server's offset after a failure, and stops it.
func Example_recordFile() {
	ctx := context.Background()
	c := rshttp.NewClient("http://127.0.0.1:8080", os.Getenv("RECSINK_API_KEY"))
	rec, ingestURL, token, err := c.StartRecording(ctx, "MEETING_ID")
	if err != nil {
		fmt.Println(recsink.ErrorCode(err), recsink.ErrorMessage(err))
		return
	}
	f, err := os.Open("meeting.mkv")
	if err != nil {
		return
	}
	defer f.Close()

	up := &rshttp.Uploader{URL: ingestURL, Token: token}
	offset := int64(0)
	for attempt := 0; attempt < 10; attempt++ {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return
		}
		n, err := up.Patch(ctx, offset, f)
		if err == nil {
			offset = n
			break
		}
		if !rshttp.Retryable(err) && recsink.ErrorCode(err) != recsink.ECONFLICT {
			fmt.Println(err)
			return
		}
		time.Sleep(time.Second) // the pause before it retries
		if offset, err = up.Offset(ctx); err != nil {
			continue
		}
	}
	if _, err := c.StopRecording(ctx, rec.ID); err != nil {
		fmt.Println(err)
	}
}

// Example_waitForObject polls a stopped recording until its object is
// complete in the bucket, and gives up after ten minutes.
func Example_waitForObject() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := rshttp.NewClient("http://127.0.0.1:8080", os.Getenv("RECSINK_API_KEY"))
	for {
		rec, _, err := c.FindRecording(ctx, "rec_...")
		if err != nil {
			fmt.Println(err)
			return
		}
		if rec.Finished() {
			fmt.Println(rec.State, rec.Destination.Bucket, rec.ObjectKey, rec.SHA256)
			return
		}
		select {
		case <-ctx.Done():
			fmt.Println("recording rec_... not finished within 10 minutes")
			return
		case <-time.After(time.Second): // the poll interval
		}
	}
}

// ExampleClient_ListCredentials tells which old keys are safe to delete.
func ExampleClient_ListCredentials() {
	c := rshttp.NewClient("http://127.0.0.1:8080", os.Getenv("RECSINK_API_KEY"))
	usages, err := c.ListCredentials(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range usages {
		if u.State == recsink.CredentialDrained {
			fmt.Printf("key %s of %s is safe to delete\n", u.AccessKeyID, u.Scope)
		}
	}
}
