package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/internal/s3test"
)

// outageClock tells which phase a request began in: before the database
// went down, while it was down, or after it was started again.
type outageClock struct{ phase atomic.Int32 }

const (
	phaseBefore = iota
	phaseDown
	phaseAfter
)

var phaseNames = [...]string{"before", "down", "after"}

// phaseCounts counts answers by the phase their request began in.
type phaseCounts [3]statusCounts

func (c *phaseCounts) String() string {
	return fmt.Sprintf("before: %s; while down: %s; after: %s", c[0].String(), c[1].String(), c[2].String())
}

// outageFaults counts the answers that break the rules for a database
// outage, by kind.
type outageFaults struct {
	mu   sync.Mutex
	seen map[string]int
}

func (f *outageFaults) add(kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	f.seen[kind]++
}

// TestChaos_DatabaseDown (issue 10, fault 3): two recsink nodes on one
// PostgreSQL, a recording streaming through each; PostgreSQL stops for 20 s
// mid-recording and starts again. Every API call answers 2xx or 503 with
// Retry-After (never 500, never 401 for a valid key), ingest keeps being
// accepted into the spool or answers 503 with Retry-After (never 401 for
// the valid token); afterwards both objects are byte-identical.
func TestChaos_DatabaseDown(t *testing.T) {
	t.Parallel()
	const (
		outage = 20 * time.Second
		size   = 24 * mib
		rate   = 640 << 10 // bytes per second that each recorder sends
	)
	s3 := s3test.MustStart(t)
	// A cluster of this test's own, since it goes down.
	pg := pgtest.MustStartPrivate(t)
	dsn := pg.DSN("postgres")
	key := s3.CreateUser(t, "user")
	bucket := s3.CreateBucket(t, key.ID)
	apiKey := mustOrgCreate(t, "--db", dsn)
	masterKey := mustMasterKeyFile(t)
	// Leases outlast the outage, so that what this test sees is the
	// database being down, not a takeover after it.
	args := []string{"--db", dsn, "--master-key-file", masterKey, "--lease-ttl", "60s"}
	nodes := []*Process{MustStartProcess(t, s3, t.TempDir(), args...), MustStartProcess(t, s3, t.TempDir(), args...)}
	defer func() {
		if t.Failed() {
			for i, n := range nodes {
				t.Logf("node %d log (tail):\n%s", i, logTail(n.logs.String(), 3000))
			}
		}
	}()
	clients := []*Client{processClient(nodes[0], apiKey), processClient(nodes[1], apiKey)}
	e := &Env{S3: s3, Main: clients[0].m, Org: clients[0], Key: key, Bucket: bucket}
	clients[0].MustDo(t, 200, "PUT", "/v1/storage", e.Storage(bucket, key))
	meeting := e.MustMeeting(t, clients[1])
	recs := []Started{MustStartRecording(t, clients[0], meeting), MustStartRecording(t, clients[1], meeting)}
	sent := [][]byte{randomBytes(t, size), randomBytes(t, size+1)}

	var clock outageClock
	var api, ingest phaseCounts
	var faults outageFaults
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second}

	// answer records one answer: its status by phase, and a fault when it
	// is neither 2xx nor 503 with Retry-After (409 allowed for ingest: the
	// offset moved under a request that was cut).
	answer := func(counts *phaseCounts, what string, began int32, resp *http.Response, err error) {
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		counts[began].add(status)
		switch {
		case status/100 == 2:
		case status == 503 && resp.Header.Get("Retry-After") != "":
		case status == 409 && what == "ingest":
		default:
			kind := fmt.Sprintf("%s %d (began %s)", what, status, phaseNames[began])
			if status == 503 {
				kind += " without Retry-After"
			}
			faults.add(kind)
		}
	}

	// The API is called on both nodes every 100 ms, all along.
	var wg sync.WaitGroup
	stopProbes := make(chan struct{})
	for i, c := range clients {
		wg.Go(func() {
			other := recs[1-i]
			calls := []struct{ method, path, body, token string }{
				{"GET", "/v1/recordings/" + recs[i].ID, "", ""},
				{"GET", "/v1/meetings", "", ""},
				{"GET", "/v1/recordings?limit=5", "", ""},
				{"HEAD", "/v1/recordings/" + recs[i].ID + "/ingest", "", recs[i].Token},
				{"GET", "/v1/storage", "", ""},
				{"GET", "/v1/credentials", "", ""},
				{"POST", "/v1/meetings", `{"endDate":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`, ""},
				// The other node's recording, through this node: it finds the owner.
				{"HEAD", "/v1/recordings/" + other.ID + "/ingest", "", other.Token},
				{"GET", "/v1/meetings/" + meeting, "", ""},
			}
			for n := 0; ; n++ {
				select {
				case <-stopProbes:
					return
				case <-time.After(100 * time.Millisecond): // the probes' pace
				}
				call := calls[n%len(calls)]
				var body io.Reader
				if call.body != "" {
					body = bytes.NewReader([]byte(call.body))
				}
				req, _ := http.NewRequestWithContext(ctx, call.method, c.m.URL()+call.path, body)
				req.Header.Set("Authorization", "Bearer "+c.Key)
				if call.token != "" {
					req.Header.Set("Authorization", "Bearer "+call.token)
					req.Header.Set("Tus-Resumable", "1.0.0")
				}
				if call.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				began := clock.phase.Load()
				resp, err := hc.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				what := call.method + " " + trimID(call.path)
				if call.token != "" {
					what = "ingest " + what
				}
				answer(&api, what, began, resp, err)
			}
		})
	}

	// Each recorder sends its media at a steady rate with tus PATCHes,
	// honouring 503, Retry-After and Upload-Offset, until finish is closed;
	// then it sends the rest at once.
	finish := make(chan struct{})
	acked := make([]atomic.Int64, len(recs))
	recorded := make([]error, len(recs))
	var recWG sync.WaitGroup
	for i, r := range recs {
		recWG.Go(func() {
			recorded[i] = paceRecorder(ctx, hc, r, sent[i], rate, finish, &clock, &acked[i], func(began int32, resp *http.Response, err error) {
				answer(&ingest, "ingest", began, resp, err)
			})
		})
	}

	// PostgreSQL goes down mid-recording for 20 s, then comes back.
	time.Sleep(3 * time.Second) // the recordings run a while first
	before := [2]int64{acked[0].Load(), acked[1].Load()}
	if err := pg.Stop(); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	clock.phase.Store(phaseDown)
	downAt := time.Now()
	time.Sleep(outage) // the outage itself: its length is the fault
	clock.phase.Store(phaseAfter)
	during := [2]int64{acked[0].Load() - before[0], acked[1].Load() - before[1]}
	if err := pg.Restart(); err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
	t.Logf("PostgreSQL down for %v; ingest acknowledged while it was down: %d and %d bytes", time.Since(downAt).Round(100*time.Millisecond), during[0], during[1])
	time.Sleep(2 * time.Second) // the recordings run a while after it
	close(finish)
	recWG.Wait()
	close(stopProbes)
	wg.Wait()

	t.Logf("API answers by phase: %s", api.String())
	t.Logf("ingest answers by phase: %s", ingest.String())
	saw := fmt.Sprintf("API while down: %s; ingest while down: %s", api[phaseDown].String(), ingest[phaseDown].String())
	for i, err := range recorded {
		if err != nil {
			chaosRow(t, "PostgreSQL down 20 s mid-recording, two nodes", saw+"; a recorder could not finish", int64(len(sent[i]))-acked[i].Load())
			t.Fatalf("recorder %d: %v (acknowledged %d of %d bytes)", i, err, acked[i].Load(), len(sent[i]))
		}
	}
	var lost int64
	for i, r := range recs {
		clients[(i+1)%2].MustDo(t, 200, "POST", "/v1/recordings/"+r.ID+"/stop", nil)
	}
	for i, r := range recs {
		WaitState(t, clients[i], r.ID, recsink.RecordingUploaded, 60*time.Second)
		got := s3.GetObject(t, bucket, r.ObjectKey)
		if !bytes.Equal(got, sent[i]) {
			lost += int64(len(sent[i]) - firstDiff(got, sent[i]))
			t.Errorf("recording %d: object %d bytes, want %d identical (first difference at %d)", i, len(got), len(sent[i]), firstDiff(got, sent[i]))
		}
	}
	chaosRow(t, "PostgreSQL down 20 s mid-recording, two nodes", saw, lost)
	faults.mu.Lock()
	defer faults.mu.Unlock()
	for kind, n := range faults.seen {
		t.Errorf("%d× %s: want 2xx or 503 with Retry-After", n, kind)
	}
	if api[phaseDown].get(503) == 0 {
		t.Errorf("no API call answered 503 while the database was down: %s", api[phaseDown].String())
	}
}

// paceRecorder streams data to r at rate bytes per second until finish is
// closed, then at full speed, with tus PATCHes of up to 256 KiB. It honours
// 503 (waiting Retry-After), and resumes from Upload-Offset (asking HEAD
// when an answer has none). Every answer goes to answer with the phase its
// request began in; acked holds the highest offset a 2xx acknowledged.
func paceRecorder(ctx context.Context, hc *http.Client, r Started, data []byte, rate int64, finish <-chan struct{}, clock *outageClock,
	acked *atomic.Int64, answer func(began int32, resp *http.Response, err error)) error {
	const chunk = 256 << 10
	start := time.Now()
	var offset int64
	known := true
	for offset < int64(len(data)) {
		if ctx.Err() != nil {
			return fmt.Errorf("out of time at offset %d", offset)
		}
		if !known {
			req, _ := http.NewRequestWithContext(ctx, "HEAD", r.IngestURL, nil)
			req.Header.Set("Authorization", "Bearer "+r.Token)
			req.Header.Set("Tus-Resumable", "1.0.0")
			began := clock.phase.Load()
			resp, err := hc.Do(req)
			answer(began, resp, err)
			if err != nil {
				time.Sleep(500 * time.Millisecond) // the recorder's pause before it tries again
				continue
			}
			resp.Body.Close()
			if n, ok := headerOffset(resp); ok && resp.StatusCode == 200 {
				offset, known = n, true
			} else {
				time.Sleep(retryWait(resp)) // the recorder honours Retry-After
			}
			continue
		}
		select {
		case <-finish:
		default:
			if allowed := int64(time.Since(start).Seconds() * float64(rate)); offset >= allowed {
				time.Sleep(50 * time.Millisecond) // the media's own pace
				continue
			}
		}
		end := min(offset+chunk, int64(len(data)))
		req, _ := http.NewRequestWithContext(ctx, "PATCH", r.IngestURL, bytes.NewReader(data[offset:end]))
		req.Header.Set("Authorization", "Bearer "+r.Token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		began := clock.phase.Load()
		resp, err := hc.Do(req)
		answer(began, resp, err)
		if err != nil {
			known = false
			time.Sleep(500 * time.Millisecond) // the recorder's pause before it tries again
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		n, ok := headerOffset(resp)
		switch {
		case resp.StatusCode/100 == 2 && ok:
			if n < acked.Load() {
				return fmt.Errorf("PATCH answered Upload-Offset %d below the %d bytes acknowledged before", n, acked.Load())
			}
			offset = n
			acked.Store(n)
		case ok:
			offset = n
			time.Sleep(retryWait(resp)) // the recorder honours Retry-After
		default:
			known = false
			time.Sleep(retryWait(resp)) // the recorder honours Retry-After
		}
	}
	return nil
}

// headerOffset returns a response's Upload-Offset.
func headerOffset(resp *http.Response) (int64, bool) {
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return n, err == nil && n >= 0
}

// retryWait is how long a recorder waits after an error answer: its
// Retry-After (at most 10 s), else half a second.
func retryWait(resp *http.Response) time.Duration {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, 10*time.Second)
	}
	return 500 * time.Millisecond
}

// trimID shortens a path for a count's name: the IDs in it are dropped.
func trimID(path string) string {
	var out []byte
	for i := 0; i < len(path); i++ {
		if i+4 < len(path) && (path[i:i+4] == "rec_" || path[i:i+4] == "mtg_") {
			out = append(out, path[i:i+4]...)
			out = append(out, "…"...)
			for i < len(path) && path[i] != '/' && path[i] != '?' {
				i++
			}
			i--
			continue
		}
		out = append(out, path[i])
	}
	return string(out)
}
