package main_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// faultProxy stands between recsink and versitygw and spoils some part
// uploads: a 500, a dropped connection, a slow answer, in turn.
type faultProxy struct {
	*httptest.Server
	mu     sync.Mutex
	parts  int
	faults map[string]int
}

func newFaultProxy(tb testing.TB, target string) *faultProxy {
	u, _ := url.Parse(target)
	p := &faultProxy{faults: map[string]int{}}
	rp := &httputil.ReverseProxy{
		// The Host header is kept as recsink sent it: it is part of the
		// SigV4 signature that versitygw checks.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host
		},
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" && r.URL.Query().Has("partNumber") {
			p.mu.Lock()
			p.parts++
			n := p.parts
			p.mu.Unlock()
			switch n % 4 {
			case 1:
				p.count("500")
				w.WriteHeader(500)
				w.Write([]byte(`<Error><Code>InternalError</Code><Message>injected</Message></Error>`))
				return
			case 2:
				p.count("drop")
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			case 3:
				p.count("slow")
				time.Sleep(300 * time.Millisecond) // a slow S3, not a wait for a condition
			}
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(p.Close)
	return p
}

func (p *faultProxy) count(kind string) {
	p.mu.Lock()
	p.faults[kind]++
	p.mu.Unlock()
}

// TestRecording_S3Faults: S3 answers 500s, drops connections and is slow on
// part uploads; the recording still completes byte-identical, and the
// errors are counted in the metrics.
func TestRecording_S3Faults(t *testing.T) {
	t.Parallel()
	s3 := MustStartS3(t)
	proxy := newFaultProxy(t, s3.Endpoint)
	e := mustEnvThrough(t, s3, proxy.URL)
	m := e.Main
	rec := MustStartRecording(t, e.Org, e.MustMeeting(t, e.Org))
	data := randomBytes(t, 26*mib+17)
	rec.MustPut(t, data[:13*mib])
	rec.MustPut(t, data[13*mib:])
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, s3, e.Bucket, rec.ObjectKey, data)
	proxy.mu.Lock()
	faults := proxy.faults
	proxy.mu.Unlock()
	if faults["500"] == 0 || faults["drop"] == 0 || faults["slow"] == 0 {
		t.Fatalf("not every fault was injected: %v", faults)
	}
	t.Logf("faults injected on part uploads: %v", faults)
	metrics := scrape(t, m)
	if metrics["recsink_uploaded_bytes_total"] != float64(len(data)) {
		t.Errorf("uploaded bytes %v, want %d", metrics["recsink_uploaded_bytes_total"], len(data))
	}
}

// TestRecording_ResumeFindsPartsInS3: S3 stores part 1 but its answers never
// reach recsink (lost responses), so the store never records it; after a
// restart recsink asks S3 with ListParts, records the part it finds, and
// does not send it again (it could not succeed: every answer for part 1 is
// lost). The object is byte-identical.
func TestRecording_ResumeFindsPartsInS3(t *testing.T) {
	t.Parallel()
	s3 := MustStartS3(t)
	u, _ := url.Parse(s3.Endpoint)
	var mu sync.Mutex
	restarted, sentAfter := false, 0
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
		pr.Out.Host = pr.In.Host
	}}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		part1 := r.Method == "PUT" && r.URL.Query().Get("partNumber") == "1"
		mu.Lock()
		if restarted && part1 {
			sentAfter++
		}
		mu.Unlock()
		if part1 {
			// S3 gets the part; recsink always gets a 500.
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			w.WriteHeader(500)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	e := mustEnvThrough(t, s3, proxy.URL)
	m := e.Main
	rec := MustStartRecording(t, e.Org, e.MustMeeting(t, e.Org))
	data := randomBytes(t, 7*mib)
	rec.MustPut(t, data)
	// Wait until S3 holds part 1 while recsink still thinks it failed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		parts, err := s3.S3Client(t, e.Key).ListParts(t.Context(), &awss3.ListPartsInput{Bucket: &e.Bucket, Key: &rec.ObjectKey, UploadId: uploadID(t, m, rec.ID)})
		if err == nil && len(parts.Parts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("part 1 never reached S3")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	m.Restart(t)
	mu.Lock()
	restarted = true // the new process found part 1 at resume, or sends it again now
	mu.Unlock()
	rec.IngestURL = m.URL() + "/v1/recordings/" + rec.ID + "/ingest"
	// Open serves at once and reconciles with S3 in the background.
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(m.Logs.String(), "part found in S3 at resume"); {
		if time.Now().After(deadline) {
			mustContain(t, m.Logs.String(), "part found in S3 at resume")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, s3, e.Bucket, rec.ObjectKey, data)
	mu.Lock()
	defer mu.Unlock()
	if sentAfter != 0 {
		t.Fatalf("part 1 was sent %d more times after the restart", sentAfter)
	}
}

// uploadID reads a recording's multipart upload ID from the store.
func uploadID(tb testing.TB, m *TestMain, id string) *string {
	tb.Helper()
	rec, err := m.Store.FindRecordingByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return &rec.UploadID
}

// mustEnvThrough runs recsink with an organization whose storage reaches
// versitygw through the test proxy at proxyURL (allowed as an endpoint).
func mustEnvThrough(tb testing.TB, s3 *s3test.Server, proxyURL string) *Env {
	tb.Helper()
	m := MustRunMain(tb, s3, func(c *main.Config) {
		c.AllowEndpoints = append(c.AllowEndpoints, strings.TrimPrefix(proxyURL, "http://"))
	})
	e := &Env{S3: s3, Main: m, Org: m.MustCreateOrg(tb)}
	e.Key = s3.CreateUser(tb, "user")
	e.Bucket = s3.CreateBucket(tb, e.Key.ID)
	body := e.Storage(e.Bucket, e.Key)
	body["endpoint"] = proxyURL
	e.Org.MustDo(tb, 200, "PUT", "/v1/storage", body)
	return e
}
