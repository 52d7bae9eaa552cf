package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	main "github.com/recsink/recsink/cmd/recsink"
)

// mustMountDataDisk mounts a tmpfs of size (such as "48m") on a new temporary
// folder and unmounts it when tb ends. It skips tb when mounting is
// impossible (not root, no CAP_SYS_ADMIN), or fails it when
// RECSINK_REQUIRE_TOOLS=1.
func mustMountDataDisk(tb testing.TB, size string) string {
	tb.Helper()
	dir := tb.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a %s tmpfs for the full-disk test (needs root or CAP_SYS_ADMIN): %v: %s", size, err, strings.TrimSpace(string(out)))
		if os.Getenv("RECSINK_REQUIRE_TOOLS") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	tb.Cleanup(func() {
		// Lazy: a process killed a moment ago may still hold a file.
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			tb.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// gatedReader yields r's first n bytes, then waits until open is closed.
type gatedReader struct {
	r    io.Reader
	n    int64
	read int64
	open chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.read >= g.n {
		<-g.open
	} else if rest := g.n - g.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	k, err := g.r.Read(p)
	g.read += int64(k)
	return k, err
}

// TestChaos_FullDisk (issue 10, fault 2): the data folder (spool and SQLite)
// is a real 48 MiB filesystem and S3 is down, and a recorder streams 60 MiB
// with the resumable ingest (`recsink record`, which honours 503,
// Retry-After and Upload-Offset). The disk fills: recsink answers 503 with
// Retry-After, never another 5xx; once S3 is back the spool drains, the
// stream goes on, and the object holds every byte, identical.
func TestChaos_FullDisk(t *testing.T) {
	t.Parallel()
	const total = 60 * mib
	data := mustMountDataDisk(t, "48m")
	e, p := mustProcessEnv(t, data)
	s3, org, bucket, apiKey := e.S3, e.Org, e.Bucket, e.Org.Key
	meeting := e.MustMeeting(t, org)

	// Every answer the recorder gets is counted; PATCH answers apart.
	var acked atomic.Int64
	patches := &statusCounts{}
	first503 := make(chan struct{})
	var once503 sync.Once
	tr := &countingTransport{base: &http.Transport{}, onAnswer: func(req *http.Request, resp *http.Response) {
		if req.Method != "PATCH" {
			return
		}
		patches.add(resp.StatusCode)
		if resp.StatusCode/100 == 2 {
			var n int64
			fmt.Sscan(resp.Header.Get("Upload-Offset"), &n)
			acked.Store(max(acked.Load(), n))
		}
		if resp.StatusCode >= 500 {
			once503.Do(func() { close(first503) })
		}
	}}
	hc := &http.Client{Transport: tr}

	sent := randomBytes(t, total)
	gate := &gatedReader{r: bytes.NewReader(sent), n: 2 * mib, open: make(chan struct{})}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- main.RunRecordClient(ctx, []string{"--url", p.URL(), "--api-key", apiKey, "--meeting", meeting},
			gate, &stdout, &stderr, 1*mib, hc, 60*time.Second, 60*time.Second)
	}()

	// S3 goes down once the first 2 MiB are acknowledged, then the rest of
	// the media comes.
	deadline := time.Now().Add(30 * time.Second)
	for acked.Load() < 2*mib {
		if time.Now().After(deadline) {
			t.Fatalf("the first 2 MiB were not acknowledged within 30 s: %s\n%s", tr.counts.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}
	s3.Stop(t)
	close(gate.open)
	s3Down := time.Now()

	// The disk fills: wait for the first error answer, then a few more
	// seconds of them, and bring S3 back.
	select {
	case <-first503:
	case err := <-done:
		t.Fatalf("recsink record ended before the disk filled (%d MiB acknowledged): %v\n%s", acked.Load()/mib, err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no 5xx within 60 s of S3 going down with 60 MiB to send to a 48 MiB disk (%d MiB acknowledged; answers %s)", acked.Load()/mib, tr.counts.String())
	}
	fullAt := acked.Load()
	t.Logf("disk full after %d bytes acknowledged (%.1f MiB), %v after S3 went down; PATCH answers so far: %s",
		fullAt, float64(fullAt)/mib, time.Since(s3Down).Round(10*time.Millisecond), patches.String())
	// The outage goes on while the recorder retries: S3 comes back after
	// three error answers, or 20 s.
	for patches.count(func(s int) bool { return s >= 500 }) < 3 && time.Since(s3Down) < 20*time.Second {
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	s3.Start(t)
	t.Logf("S3 back after %v down", time.Since(s3Down).Round(100*time.Millisecond))

	err := <-done
	bad := tr.counts.count(is5xxFault)
	saw := fmt.Sprintf("%d×503 with Retry-After (%d without), %d other 5xx, of %d answers (%s)",
		tr.counts.get(503), tr.noRetry, bad, tr.counts.total(), tr.counts.String())
	t.Logf("answers to the recorder: %s; PATCH answers: %s", tr.counts.String(), patches.String())
	if err != nil {
		// What was acknowledged and is not in the bucket is lost to the
		// user for now (it may still sit in the spool).
		var list struct {
			Results []struct {
				BytesUploaded int64  `json:"bytesUploaded"`
				State         string `json:"state"`
			} `json:"results"`
		}
		doJSON(org, "GET", "/v1/recordings", &list)
		var uploaded int64
		state := "unknown"
		if len(list.Results) == 1 {
			uploaded, state = list.Results[0].BytesUploaded, list.Results[0].State
		}
		chaosRow(t, "data disk full (48 MiB tmpfs) while S3 is down, 60 MiB streamed",
			fmt.Sprintf("%s; the recording did not complete (%s, %d of %d acknowledged bytes in S3, %d bytes never accepted)", saw, state, uploaded, acked.Load(), total-acked.Load()),
			acked.Load()-uploaded)
		t.Fatalf("recsink record: %v (acknowledged %d of %d bytes)\n%s", err, acked.Load(), total, logTail(stderr.String(), 3000))
	}
	objKey := outputField(t, stdout.String(), "object key")
	got := s3.GetObject(t, bucket, objKey)
	lost := int64(0)
	if !bytes.Equal(got, sent) {
		lost = int64(len(sent) - firstDiff(got, sent))
		t.Errorf("object: %d bytes, want %d identical (first difference at %d)", len(got), len(sent), firstDiff(got, sent))
	}
	chaosRow(t, "data disk full (48 MiB tmpfs) while S3 is down, 60 MiB streamed", saw, lost)
	if bad > 0 {
		t.Errorf("%d answers were 5xx other than 503: %s", bad, tr.counts.String())
	}
	if tr.noRetry > 0 {
		t.Errorf("%d answers were 503 without Retry-After", tr.noRetry)
	}
	if tr.counts.get(503) == 0 {
		t.Errorf("no 503 at all: the disk never filled, so this run proves nothing")
	}
}
