package main_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/faultproxy"
	"github.com/recsink/recsink/internal/s3test"
)

// TestChaos_HangingEndpoint (issue 10, fault 1): organization B's bucket sits
// behind an endpoint that accepts connections and never answers, with 20 of
// B's recordings running; organization A's bucket is healthy. A's 12 MiB
// recording is uploaded within 5 s of its stop; B's recordings go blocked
// saying that the endpoint did not answer within the deadline; once the
// endpoint answers again, every one of B's recordings completes
// byte-identical.
func TestChaos_HangingEndpoint(t *testing.T) {
	t.Parallel()
	const (
		bRecordings = 20
		bSize       = 6*mib + 7 // a whole 5 MiB part to upload while recording, and a last one
		aSize       = 12 * mib
		// The S3 deadline is longer than A's 5 s: A's uploads cannot wait
		// for B's hung attempts to be cut; only a fair share of the upload
		// slots gets them through in time.
		s3Timeout = 8 * time.Second
		aWithin   = 5 * time.Second
	)
	s3 := s3test.MustStart(t)
	proxy := faultproxy.Start(t, s3.HostPort)
	data := t.TempDir()
	keyA := mustOrgCreate(t, "--data", data)
	keyB := mustOrgCreate(t, "--data", data)
	p := MustStartProcess(t, s3, data, "--allow-endpoint", proxy.Addr, "--s3-timeout", s3Timeout.String())
	defer func() {
		if t.Failed() {
			t.Logf("recsink log (tail):\n%s", logTail(p.logs.String(), 4000))
		}
	}()
	a, b := processClient(p, keyA), processClient(p, keyB)
	userA, userB := s3.CreateUser(t, "user"), s3.CreateUser(t, "user")
	bucketA, bucketB := s3.CreateBucket(t, userA.ID), s3.CreateBucket(t, userB.ID)
	e := &Env{S3: s3, Main: a.m, Org: a, Key: userA, Bucket: bucketA}
	a.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(bucketA, userA))
	storageB := e.Storage(bucketB, userB)
	storageB["endpoint"] = proxy.URL
	b.MustDo(t, 200, "PUT", "/v1/storage", storageB)

	// B's recordings start while the endpoint answers (a start creates the
	// multipart upload), then it hangs, and their media arrives.
	meetingB := e.MustMeeting(t, b)
	recsB := make([]Started, bRecordings)
	dataB := make([][]byte, bRecordings)
	for i := range recsB {
		recsB[i] = MustStartRecording(t, b, meetingB)
		dataB[i] = randomBytes(t, bSize+i)
	}
	proxy.SetMode(faultproxy.Hang)
	var wg sync.WaitGroup
	putErrs := make([]int, bRecordings)
	for i := range recsB {
		wg.Go(func() {
			resp, err := chaosHTTP.Do(ingestPut(recsB[i], dataB[i]))
			if err != nil {
				return
			}
			resp.Body.Close()
			putErrs[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, st := range putErrs {
		if st/100 != 2 {
			t.Fatalf("B's recording %d: ingest PUT answered %d with the endpoint hanging (media goes to the spool)", i, st)
		}
	}
	// B's part uploads now hold connections to the hanging endpoint.
	deadline := time.Now().Add(20 * time.Second)
	for proxy.Stats().HangOpen < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("B's uploads never reached the hanging endpoint: %+v", proxy.Stats())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	t.Logf("B: %d recordings of ~%d MiB spooled; %d connections hung at the endpoint", bRecordings, bSize/mib, proxy.Stats().HangOpen)

	// A streams 12 MiB and stops: its object completes within 5 s.
	recA := MustStartRecording(t, a, e.MustMeeting(t, a))
	dataA := randomBytes(t, aSize)
	recA.MustPut(t, dataA)
	a.MustDo(t, 200, "POST", "/v1/recordings/"+recA.ID+"/stop", nil)
	stopped := time.Now()
	var last map[string]any
	for {
		_, last = getRecording(a, recA.ID)
		if last != nil && last["state"] == recsink.RecordingUploaded {
			break
		}
		if time.Since(stopped) > 30*time.Second {
			chaosRow(t, "one organization's endpoint hangs (20 recordings)", fmt.Sprintf("another organization's recording still %v with %v bytes in S3 30 s after its stop", last["state"], last["bytesUploaded"]), 0)
			t.Fatalf("A's recording is not uploaded 30 s after its stop while B's endpoint hangs: %v", last)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	aTook := time.Since(stopped)
	t.Logf("A (healthy bucket): 12 MiB recording uploaded %v after its stop, with B's endpoint hanging (%d connections hung)", aTook.Round(10*time.Millisecond), proxy.Stats().HangOpen)
	if aTook > aWithin {
		t.Errorf("A's recording took %v after its stop, want at most %v", aTook, aWithin)
	}
	checkObject(t, s3, bucketA, recA.ObjectKey, dataA)

	// B's recordings go blocked, saying why in plain words.
	began := time.Now()
	pending := map[int]bool{}
	for i := range recsB {
		pending[i] = true
	}
	var lastErr string
	for len(pending) > 0 {
		for i := range pending {
			_, out := getRecording(b, recsB[i].ID)
			if out == nil || out["state"] != recsink.RecordingBlocked {
				continue
			}
			msg, _ := out["lastError"].(string)
			if !strings.Contains(msg, "did not answer within") {
				t.Errorf("B's recording %d is blocked with lastError %q, want one saying the endpoint did not answer within the deadline", i, msg)
			}
			lastErr = msg
			delete(pending, i)
		}
		if time.Since(began) > 120*time.Second {
			_, out := getRecording(b, recsB[firstKey(pending)].ID)
			t.Fatalf("%d of B's %d recordings not blocked 120 s after A's stop (%v with the endpoint hanging %v); one of them: state %v, lastError %q",
				len(pending), bRecordings, time.Since(stopped).Round(time.Second), proxy.Stats(), out["state"], out["lastError"])
		}
		time.Sleep(100 * time.Millisecond) // polling a condition under a deadline
	}
	blockedIn := time.Since(began)
	t.Logf("B: all %d recordings blocked %v after A's stop: %q", bRecordings, blockedIn.Round(10*time.Millisecond), lastErr)

	// The endpoint answers again (for new connections: the hung ones stay
	// hung until recsink cuts them); B's recordings all complete.
	proxy.SetMode(faultproxy.Pass)
	passed := time.Now()
	for _, r := range recsB {
		b.MustDo(t, 200, "POST", "/v1/recordings/"+r.ID+"/stop", nil)
	}
	for i, r := range recsB {
		WaitState(t, b, r.ID, recsink.RecordingUploaded, 90*time.Second-time.Since(passed))
		checkObject(t, s3, bucketB, r.ObjectKey, dataB[i])
	}
	st := proxy.Stats()
	t.Logf("B: all %d recordings uploaded byte-identical %v after the endpoint answered again; hung connections: %d accepted, %d cut by recsink, %d still open",
		bRecordings, time.Since(passed).Round(10*time.Millisecond), st.Hung, st.HangCut, st.HangOpen)
	chaosRow(t, "one organization's S3 endpoint accepts connections and never answers (20 recordings)",
		fmt.Sprintf("another organization's 12 MiB uploaded %.1f s after its stop; the 20 recordings blocked: %q; all complete once it answers", aTook.Seconds(), lastErr), 0)
}

// ingestPut is the request of Started.Put, for use off the test goroutine.
func ingestPut(s Started, data []byte) *http.Request {
	req, _ := http.NewRequest("PUT", s.IngestURL, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	return req
}

func firstKey(m map[int]bool) int {
	for k := range m {
		return k
	}
	return -1
}

// logTail returns the end of a log.
func logTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
