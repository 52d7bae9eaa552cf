package main_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink"
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
	m := MustRunMain(t, s3, func(c *main.Config) {
		c.AllowEndpoints = append(c.AllowEndpoints, strings.TrimPrefix(proxy.URL, "http://"))
	})
	e := &Env{S3: s3, Main: m, Org: m.MustCreateOrg(t)}
	e.Key = s3.CreateUser(t, "user")
	e.Bucket = s3.CreateBucket(t, e.Key.ID)
	body := e.Storage(e.Bucket, e.Key)
	body["endpoint"] = proxy.URL
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", body)
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
