package main_test

import (
	"bytes"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// trickleBody sends data in 16 KiB pieces with a short pause between them,
// so that a PATCH is on the wire for a while, and calls at (once) when the
// given number of bytes has been read.
type trickleBody struct {
	data   []byte
	read   int
	killAt int // -1: never
	kill   func()
}

func (b *trickleBody) Read(p []byte) (int, error) {
	if b.read >= len(b.data) {
		return 0, io.EOF
	}
	if b.killAt >= 0 && b.read >= b.killAt {
		b.killAt = -1
		b.kill()
	}
	n := min(len(p), 16<<10, len(b.data)-b.read)
	if b.killAt > b.read {
		n = min(n, b.killAt-b.read)
	}
	copy(p, b.data[b.read:b.read+n])
	b.read += n
	time.Sleep(time.Millisecond) // a recorder's pace: the body is on the wire for a while
	return n, nil
}

// TestChaos_CrashConsistency (issue 10, fault 6): the server (the real
// binary) is killed with SIGKILL 10 times at random moments in the middle
// of a PATCH body, and started again on the same data folder each time. The
// recorder records every offset a 2xx acknowledged: HEAD after a restart
// never reports less than the highest of them (nor more than was sent), the
// recorder goes on from HEAD's offset, and the final object is
// byte-identical.
func TestChaos_CrashConsistency(t *testing.T) {
	t.Parallel()
	const (
		kills = 10
		chunk = 1 * mib
		size  = 40*mib + 333
	)
	seed := uint64(time.Now().UnixNano())
	rnd := mrand.New(mrand.NewPCG(seed, 10))
	t.Logf("random seed %d", seed)
	data := t.TempDir()
	e, p := mustProcessEnv(t, data)
	s3, org, bucket, apiKey := e.S3, e.Org, e.Bucket, e.Org.Key
	rec := MustStartRecording(t, org, e.MustMeeting(t, org))
	sent := randomBytes(t, size)

	var maxAcked, maxSent, offset int64
	hc := &http.Client{Timeout: 30 * time.Second}
	patch := func(body io.Reader) (*http.Response, error) {
		req, _ := http.NewRequest("PATCH", ingestVia(rec, p).IngestURL, body)
		req.Header.Set("Authorization", "Bearer "+rec.Token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		return hc.Do(req)
	}
	// ack takes a 2xx answer's Upload-Offset.
	ack := func(resp *http.Response) {
		n, ok := headerOffset(resp)
		if !ok {
			t.Fatalf("PATCH answered %d without Upload-Offset", resp.StatusCode)
		}
		if n < maxAcked {
			t.Fatalf("PATCH acknowledged offset %d, below the %d acknowledged before", n, maxAcked)
		}
		maxAcked, offset = n, n
	}

	var heads []string
	var restarts []time.Duration
	for k := range kills {
		// One to three PATCHes of 1 MiB; the server dies partway through
		// the body of the last one, at a random byte.
		patches := 1 + rnd.IntN(3)
		killed := false
		for i := 0; i < patches && offset < int64(len(sent)); i++ {
			end := min(offset+chunk, int64(len(sent)))
			body := &trickleBody{data: sent[offset:end], killAt: -1}
			if i == patches-1 {
				body.killAt = 1 + rnd.IntN(int(end-offset)-1)
				body.kill = func() { p.Kill(); killed = true }
			}
			maxSent = max(maxSent, end)
			resp, err := patch(body)
			if err != nil {
				break // the server died under this request
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				if !killed {
					t.Fatalf("PATCH at %d before the kill: %d", offset, resp.StatusCode)
				}
				break
			}
			ack(resp)
		}
		if !killed {
			p.Kill()
		}
		began := time.Now()
		p = MustStartProcess(t, s3, data)
		restarts = append(restarts, time.Since(began))
		head := ingestVia(rec, p).Offset(t)
		heads = append(heads, fmt.Sprintf("%d:%d≥%d", k+1, head, maxAcked))
		if head < maxAcked {
			t.Fatalf("kill %d: HEAD reports offset %d after the restart, below the %d bytes a 2xx acknowledged", k+1, head, maxAcked)
		}
		if head > maxSent {
			t.Fatalf("kill %d: HEAD reports offset %d, more than the %d bytes ever sent", k+1, head, maxSent)
		}
		offset = head
	}
	t.Logf("%d SIGKILLs mid-body; HEAD after each restart vs. the highest acknowledged offset: %s", kills, strings.Join(heads, " "))
	t.Logf("restart until /healthz answers: %v", restarts)

	// The rest, at once; then the stop.
	for offset < int64(len(sent)) {
		end := min(offset+4*mib, int64(len(sent)))
		resp, err := patch(bytes.NewReader(sent[offset:end]))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("PATCH at %d after the kills: %d", offset, resp.StatusCode)
		}
		ack(resp)
	}
	org = processClient(p, apiKey)
	org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	got := s3.GetObject(t, bucket, rec.ObjectKey)
	var lost int64
	if !bytes.Equal(got, sent) {
		lost = int64(len(sent) - firstDiff(got, sent))
	}
	chaosRow(t, "10 SIGKILLs of the server mid-body",
		fmt.Sprintf("the recorder resumed from HEAD each time, never below what was acknowledged; object %s", map[bool]string{true: "byte-identical", false: "differs"}[lost == 0]), lost)
	checkObject(t, s3, bucket, rec.ObjectKey, sent)
}
