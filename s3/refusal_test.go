package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/s3"
)

// TestClient_RefusalBehindReset stands for an endpoint that refuses a part
// and drops the connection while the body is still coming, so the client
// reads a reset instead of the answer (versitygw does this under load for a
// deleted key). The error returned is S3's own refusal, learnt from a
// request without a body, so the recording reads "the key was refused" and
// not "S3 keeps failing". Where the second request is accepted, the reset
// stays what it was: a lost connection.
func TestClient_RefusalBehindReset(t *testing.T) {
	t.Parallel()
	const refusal = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`
	const listing = `<?xml version="1.0" encoding="UTF-8"?><ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>up</UploadId><IsTruncated>false</IsTruncated></ListPartsResult>`
	part := bytes.Repeat([]byte("recsink "), 768<<10) // 6 MiB: more than the socket buffers take
	for _, tt := range []struct {
		name     string
		listCode int
		listBody string
		wantCode string
		wantHTTP int
	}{
		{"KeyRefused", 403, refusal, "InvalidAccessKeyId", 403},
		{"ProbeAccepted", 200, listing, "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var probes atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPut {
					// Drop the connection with a reset, reading nothing of
					// the body: no answer can reach the client.
					c, _, err := w.(http.Hijacker).Hijack()
					if err != nil {
						t.Error(err)
						return
					}
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
					return
				}
				if r.Method != http.MethodGet || !strings.Contains(r.URL.RawQuery, "uploadId=up") || r.URL.Query().Get("max-parts") != "1" {
					t.Errorf("unexpected request %s %s", r.Method, r.URL)
				}
				probes.Add(1)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(tt.listCode)
				io.WriteString(w, tt.listBody)
			}))
			defer ts.Close()
			hp := strings.TrimPrefix(ts.URL, "http://")
			st := s3.New(s3.Config{AllowEndpoints: []string{hp}, Logger: slog.New(slog.DiscardHandler)})
			c, err := st.Client(context.Background(), recsink.Destination{Bucket: "b", Endpoint: ts.URL, Region: "us-east-1", ForcePathStyle: true},
				recsink.AccessKey{ID: "AKID", Secret: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = c.UploadPart(ctx, "k", recsink.Upload{ID: "up"}, 2, bytes.NewReader(part), int64(len(part)))
			var se *recsink.StorageError
			if !errors.As(err, &se) {
				t.Fatalf("UploadPart = %v, want a *recsink.StorageError", err)
			}
			if se.Op != "UploadPart" || se.Code != tt.wantCode || se.StatusCode != tt.wantHTTP {
				t.Errorf("StorageError Op %q Code %q HTTP %d, want UploadPart %q %d (%v)", se.Op, se.Code, se.StatusCode, tt.wantCode, tt.wantHTTP, err)
			}
			if got := se.KeyRefused(); got != (tt.wantCode != "") {
				t.Errorf("KeyRefused() = %v", got)
			}
			if probes.Load() == 0 {
				t.Error("S3 was never asked why the connection was lost")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error carries the secret: %v", err)
			}
		})
	}
}
