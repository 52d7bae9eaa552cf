package main_test

// Benchmarks of the whole service (HTTP ingest, spool, uploader) against a
// real versitygw, each printing its figure beside a baseline measured in the
// same run on the same server and disk. Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./cmd/recsink/
//
// RECSINK_BENCH_BYTES scales the streams (default 1GiB for the stop
// benchmark, a quarter of it for the throughput one), RECSINK_BENCH_MAX caps
// the number of concurrent recordings (default 500) and RECSINK_BENCH_STEP
// sets how long each number is held (default 20s), RECSINK_BENCH_SPOOL=dir
// puts recsink's spool there (see benchSpool). RECSINK_BENCH_HEAPPROFILE=dir
// writes a heap profile at each number of recordings.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// The baseline uploads as recsink does: 5 MiB parts (spool.MinPartSize,
// recsink's first parts) and 4 parts in flight (the service's default
// PartConcurrency for one recording).
const (
	benchPartSize    = 5 << 20
	benchConcurrency = 4
)

// A real-time recording of 2 Mbit/s: 250 KB/s in 4 writes of 62.5 KB.
const (
	rtWriteBytes = 62_500
	rtInterval   = 250 * time.Millisecond
)

// benchEnv is a recording Env with the baseline, the SDK's transfer manager,
// uploading into the same bucket of the same versitygw.
type benchEnv struct {
	*Env
	meeting string
	tm      *transfermanager.Client
	s3      *timedS3
}

// timedS3 times the baseline's CompleteMultipartUpload: the server's own
// work of assembling the object, which recsink's stop waits for too.
type timedS3 struct {
	*awss3.Client
	complete time.Duration
}

func (c *timedS3) CompleteMultipartUpload(ctx context.Context, in *awss3.CompleteMultipartUploadInput, opts ...func(*awss3.Options)) (*awss3.CompleteMultipartUploadOutput, error) {
	start := time.Now()
	out, err := c.Client.CompleteMultipartUpload(ctx, in, opts...)
	c.complete += time.Since(start)
	return out, err
}

// benchSpool puts recsink's data folder (and so the spool) under
// RECSINK_BENCH_SPOOL when it is set: with TMPDIR on a tmpfs, versitygw then
// keeps its objects in memory, like a remote S3 whose disk is not ours, while
// the spool stays on a real disk.
func benchSpool(b *testing.B) func(*main.Config) {
	return func(c *main.Config) {
		c.LogLevel = "warn"
		if dir := os.Getenv("RECSINK_BENCH_SPOOL"); dir != "" {
			c.Data = benchDir(b, dir)
		}
	}
}

// benchDir returns a new directory under parent, removed when b ends.
func benchDir(b *testing.B, parent string) string {
	b.Helper()
	dir, err := os.MkdirTemp(parent, "recsink-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func mustBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	if testing.Short() {
		b.Skip("end-to-end benchmark against versitygw; skipped under -short")
	}
	e, meeting := mustRecordingEnv(b, benchSpool(b))
	// Configured like recsink's own client (s3/s3.go): the same checksum
	// mode, so that both hash each part once for SigV4 and send no CRC
	// trailer, the same retryer, and enough idle connections.
	client := &timedS3{Client: awss3.New(awss3.Options{
		Region:       s3test.Region,
		BaseEndpoint: aws.String(e.S3.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(e.Key.ID, e.Key.Secret, ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.RateLimiter = ratelimit.None
		}),
		HTTPClient: &http.Client{Transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		}},
		RequestChecksumCalculation:                aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	})}
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = benchPartSize
		o.Concurrency = benchConcurrency
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	return &benchEnv{Env: e, meeting: meeting, tm: tm, s3: client}
}

// baseline uploads data with the transfer manager and returns how long it
// took, from CreateMultipartUpload to CompleteMultipartUpload.
func (e *benchEnv) baseline(b *testing.B, data []byte) time.Duration {
	b.Helper()
	key := "baseline/" + recsink.RandomToken(6)
	start := time.Now()
	_, err := e.tm.UploadObject(context.Background(), &transfermanager.UploadObjectInput{
		Bucket: aws.String(e.Bucket),
		Key:    aws.String(key),
		Body:   bytes.NewReader(data),
	})
	d := time.Since(start)
	if err != nil {
		b.Fatalf("baseline upload: %v", err)
	}
	return d
}

// record streams data into a new recording at full speed as one chunked
// PUT, stops it and waits for the object. It returns the time from the start
// request to the object complete, from the stop request to it, and from the
// last part confirmed (bytesUploaded reaching the size) to it: the
// CompleteMultipartUpload and the checks after it.
func (e *benchEnv) record(b *testing.B, data []byte) (total, afterStop, completing time.Duration) {
	b.Helper()
	start := time.Now()
	rec := MustStartRecording(b, e.Org, e.meeting)
	// Hiding bytes.Reader's WriteTo makes the client send 32 KiB chunks, as
	// ffmpeg and curl send small ones, rather than one chunk of everything.
	if resp := rec.Put(b, struct{ io.Reader }{bytes.NewReader(data)}); resp.StatusCode != 204 {
		b.Fatalf("PUT ingest: status %d", resp.StatusCode)
	}
	stop := time.Now()
	e.Org.MustDo(b, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	var partsDone time.Time
	deadline := stop.Add(5 * time.Minute)
	for {
		out := e.Org.MustDo(b, 200, "GET", "/v1/recordings/"+rec.ID, nil)
		now := time.Now()
		if partsDone.IsZero() && out["bytesUploaded"] == float64(len(data)) {
			partsDone = now
		}
		switch {
		case out["state"] == recsink.RecordingUploaded:
			if out["sizeBytes"] != float64(len(data)) || out["sha256"] != benchSum(data) {
				b.Fatalf("recording %s: size %v sha256 %v, want %d %s", rec.ID, out["sizeBytes"], out["sha256"], len(data), benchSum(data))
			}
			return now.Sub(start), now.Sub(stop), now.Sub(partsDone)
		case out["state"] == recsink.RecordingFailed:
			b.Fatalf("recording %s failed: %v", rec.ID, out)
		case now.After(deadline):
			b.Fatalf("recording %s: state %v 5 min after the stop", rec.ID, out["state"])
		}
		time.Sleep(5 * time.Millisecond) // polling a condition under a deadline
	}
}

// BenchmarkStreamThroughput streams one recording at full speed into the
// bucket, from the start request to the object complete, beside the transfer
// manager uploading the same bytes from memory to the same versitygw.
func BenchmarkStreamThroughput(b *testing.B) {
	e := mustBenchEnv(b)
	n := max(benchBytes(b)/4, 1)
	data := benchData(n)
	benchSum(data)
	b.SetBytes(n)
	var recsinkTime, baseTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate the order, so that neither always runs on a disk busy
		// writing back the other's bytes.
		b.StopTimer()
		if i%2 == 1 {
			baseTime += e.baseline(b, cleanDisk(data))
		}
		cleanDisk(nil)
		b.StartTimer()
		d, _, _ := e.record(b, data)
		recsinkTime += d
		b.StopTimer()
		if i%2 == 0 {
			baseTime += e.baseline(b, cleanDisk(data))
		}
		b.StartTimer()
	}
	b.StopTimer()
	rate := float64(n) * float64(b.N) / 1e6 / recsinkTime.Seconds()
	baseRate := float64(n) * float64(b.N) / 1e6 / baseTime.Seconds()
	b.ReportMetric(rate, "recsink-MB/s")
	b.ReportMetric(baseRate, "baseline-MB/s")
	b.ReportMetric(rate/baseRate, "ratio")
	b.Logf("%d MiB: recsink %.1f MB/s, transfer manager %.1f MB/s, ratio %.2f (target >= 0.9)", n>>20, rate, baseRate, rate/baseRate)
}

// BenchmarkStopToComplete sends a recording (1 GiB by default) at full
// speed, then times the stop request to the object complete, beside the
// transfer manager uploading the same bytes: what a recorder that uploads
// after the stop would wait.
func BenchmarkStopToComplete(b *testing.B) {
	e := mustBenchEnv(b)
	n := benchBytes(b)
	data := benchData(n)
	benchSum(data)
	var total, afterStop, completing, baseTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cleanDisk(nil)
		b.StartTimer()
		t, s, c := e.record(b, data)
		total += t
		afterStop += s
		completing += c
		b.StopTimer()
		baseTime += e.baseline(b, cleanDisk(data))
		b.StartTimer()
	}
	b.StopTimer()
	stop := afterStop.Seconds() / float64(b.N)
	base := baseTime.Seconds() / float64(b.N)
	complete := completing.Seconds() / float64(b.N)
	baseComplete := e.s3.complete.Seconds() / float64(b.N)
	b.ReportMetric(stop, "stop-to-complete-s")
	b.ReportMetric(complete, "of-which-complete-s")
	b.ReportMetric(baseComplete, "baseline-complete-s")
	b.ReportMetric(base, "baseline-upload-after-stop-s")
	b.ReportMetric(stop/base, "ratio")
	b.ReportMetric(float64(n)*float64(b.N)/1e6/total.Seconds(), "recsink-MB/s")
	b.Logf("%d MiB: stop to complete %.3f s (target < 1 s), of which %.3f s from the last part confirmed to the object complete; upload after stop %.3f s, of which %.3f s in CompleteMultipartUpload; ratio %.3f",
		n>>20, stop, complete, base, baseComplete, stop/base)
}

// BenchmarkConcurrentRecordings ramps up real-time 2 Mbit/s recordings
// (62.5 KB tus PATCHes every 250 ms, each answered after its fsync) and holds
// each number for RECSINK_BENCH_STEP, measuring each write's latency from
// its scheduled time to the acknowledgement, so that a recorder held up
// behind a slow write counts. The baseline is the same writers doing plain
// write+fsync of the same sizes to files on the same disk, run first so that
// recsink's uploads do not disturb it. Heap per recording is the growth of
// the live heap marked by a GC (runtime/metrics /gc/heap/live:bytes; the
// HeapInuse delta also counts spans that the running writers fill between
// the GC and the reading, and swung by a GiB from one run to the next),
// halfway through each step, divided by the number running; it includes the
// benchmark's own HTTP client connections.
func BenchmarkConcurrentRecordings(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark against versitygw; skipped under -short")
	}
	steps := benchSteps(b)
	stepDur := benchDuration(b, "RECSINK_BENCH_STEP", 20*time.Second)
	baseDur := max(stepDur/4, 2*time.Second)
	payload := benchData(rtWriteBytes)
	hist := &latencyHist{}

	// The cost floor: write+fsync, the same sizes, the same disk.
	dir := b.TempDir()
	if parent := os.Getenv("RECSINK_BENCH_SPOOL"); parent != "" {
		dir = benchDir(b, parent)
	}
	baseP99 := map[int]time.Duration{}
	baseMax := map[int]time.Duration{}
	for _, n := range steps {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var errs atomic.Int64
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				path := filepath.Join(dir, fmt.Sprintf("w%d-%d", n, i))
				if err := fileWriter(ctx, path, payload, hist); err != nil {
					errs.Add(1)
				}
			}()
		}
		time.Sleep(time.Second) // every writer has started its schedule
		hist.start()
		time.Sleep(baseDur)
		hist.stop()
		cancel()
		wg.Wait()
		if errs.Load() > 0 {
			b.Fatalf("baseline with %d writers: %d failed", n, errs.Load())
		}
		baseP99[n], baseMax[n] = hist.quantile(0.99), hist.max()
		for i := range n {
			os.Remove(filepath.Join(dir, fmt.Sprintf("w%d-%d", n, i)))
		}
	}

	e, meeting := mustRecordingEnv(b, benchSpool(b))
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var errs atomic.Int64
	var firstErr atomic.Value

	runtime.GC()
	base := liveHeap()

	type result struct {
		n          int
		writes     int64
		p99, max   time.Duration
		heapPerRec int64
		errors     int64
	}
	var results []result
	running := 0
	for _, n := range steps {
		// Start the new recordings a few at a time, as recorders would join.
		starts := make(chan struct{}, n-running)
		for range n - running {
			starts <- struct{}{}
		}
		close(starts)
		var sg sync.WaitGroup
		var startErr atomic.Value
		for range 8 {
			sg.Add(1)
			go func() {
				defer sg.Done()
				for range starts {
					rec, err := startRecording(ctx, client, e.Org, meeting)
					if err != nil {
						startErr.Store(err)
						return
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := recordingWriter(ctx, client, rec, payload, hist, &errs); err != nil {
							firstErr.CompareAndSwap(nil, err)
						}
					}()
				}
			}()
		}
		sg.Wait()
		if err, _ := startErr.Load().(error); err != nil {
			b.Fatalf("start recording %d: %v", running, err)
		}
		running = n
		// The new writers settle into their schedule, and writes held up by
		// the burst of starts catch up.
		time.Sleep(5 * time.Second)
		errsBefore := errs.Load()
		hist.start()
		time.Sleep(stepDur / 2)
		runtime.GC()
		during := liveHeap()
		if dir := os.Getenv("RECSINK_BENCH_HEAPPROFILE"); dir != "" {
			writeHeapProfile(b, filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", n)))
		}
		time.Sleep(stepDur - stepDur/2)
		hist.stop()
		r := result{
			n:          n,
			writes:     hist.count(),
			p99:        hist.quantile(0.99),
			max:        hist.max(),
			heapPerRec: (during - base) / int64(n),
			errors:     errs.Load() - errsBefore,
		}
		results = append(results, r)
		b.Logf("N=%d: %d writes, p99 %v, max %v, heap %d KiB/recording, %d failed writes; baseline write+fsync p99 %v, max %v",
			n, r.writes, r.p99, r.max, r.heapPerRec>>10, r.errors, baseP99[n], baseMax[n])
	}
	cancel()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Logf("first failed write: %v", err)
	}

	best := 0
	var bestHeap int64
	for _, r := range results {
		tag := fmt.Sprintf("N%d-", r.n)
		b.ReportMetric(ms(r.p99), tag+"p99-ms")
		b.ReportMetric(ms(r.max), tag+"max-ms")
		b.ReportMetric(ms(baseP99[r.n]), tag+"baseline-p99-ms")
		b.ReportMetric(float64(r.heapPerRec)/1024, tag+"heap-KiB/rec")
		if r.max <= time.Second && r.errors == 0 {
			best, bestHeap = r.n, r.heapPerRec
		}
	}
	b.ReportMetric(float64(best), "max-recordings")
	b.ReportMetric(float64(bestHeap)/1024, "heap-KiB/rec")
	b.Logf("carried %d real-time recordings with no write held up over 1 s (target 500), heap %d KiB each (target <= 256)", best, bestHeap>>10)
}

// writeHeapProfile writes the heap profile to path, for a look at what
// each recording holds (RECSINK_BENCH_HEAPPROFILE=dir).
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// cleanDisk writes back every dirty page, so that each measured upload
// starts with a disk not busy with the previous one's bytes. It returns data.
func cleanDisk(data []byte) []byte {
	syscall.Sync()
	return data
}

// liveHeap returns the heap bytes marked live by the last GC.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// recordingWriter sends payload every rtInterval as a tus PATCH until ctx is
// done, recording each write's latency from its scheduled time.
func recordingWriter(ctx context.Context, client *http.Client, rec Started, payload []byte, hist *latencyHist, errs *atomic.Int64) error {
	var offset int64
	var firstErr error
	return schedule(ctx, hist, func() error {
		n, err := patch(ctx, client, rec, offset, payload)
		if err != nil && ctx.Err() == nil {
			errs.Add(1)
			if firstErr == nil {
				firstErr = err
			}
		}
		if n >= 0 {
			offset = n
		}
		return nil
	}, func() error { return firstErr })
}

// fileWriter writes and fsyncs payload every rtInterval until ctx is done.
func fileWriter(ctx context.Context, path string, payload []byte, hist *latencyHist) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return schedule(ctx, hist, func() error {
		if _, err := f.Write(payload); err != nil {
			return err
		}
		return f.Sync()
	}, func() error { return nil })
}

// schedule calls write every rtInterval from a random phase, as a real-time
// recorder produces media, and adds each call's latency from its scheduled
// time: a write that starts late behind a slow one counts its wait.
func schedule(ctx context.Context, hist *latencyHist, write func() error, result func() error) error {
	next := time.Now().Add(rand.N(rtInterval))
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return result()
		case <-t.C:
		}
		if err := write(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return result()
		}
		hist.add(time.Since(next))
		next = next.Add(rtInterval)
		t.Reset(time.Until(next))
	}
}

// patch appends body at offset with a tus PATCH and returns the offset the
// server acknowledges (-1 when it does not say).
func patch(ctx context.Context, client *http.Client, rec Started, offset int64, body []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "PATCH", rec.IngestURL, bytes.NewReader(body))
	if err != nil {
		return -1, err
	}
	req.Header.Set("Authorization", "Bearer "+rec.Token)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := client.Do(req)
	if err != nil {
		return -1, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	n, perr := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if perr != nil {
		n = -1
	}
	if resp.StatusCode != 204 {
		return n, fmt.Errorf("PATCH %s at %d: status %d", rec.ID, offset, resp.StatusCode)
	}
	return n, nil
}

// startRecording is MustStartRecording for goroutines: it returns its error.
func startRecording(ctx context.Context, client *http.Client, c *Client, meetingID string) (Started, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.m.URL()+"/v1/meetings/"+meetingID+"/recordings", nil)
	if err != nil {
		return Started{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	resp, err := client.Do(req)
	if err != nil {
		return Started{}, err
	}
	defer resp.Body.Close()
	var out struct {
		RecordingID string `json:"recordingId"`
		ObjectKey   string `json:"objectKey"`
		Ingest      struct {
			URL   string `json:"url"`
			Token string `json:"token"`
		} `json:"ingest"`
	}
	if resp.StatusCode != 201 {
		raw, _ := io.ReadAll(resp.Body)
		return Started{}, fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Started{}, err
	}
	return Started{ID: out.RecordingID, ObjectKey: out.ObjectKey, IngestURL: out.Ingest.URL, Token: out.Ingest.Token}, nil
}

// latencyHist counts latencies in 100 µs buckets up to 10 s, without
// allocating, so that it does not weigh on the heap being measured.
type latencyHist struct {
	on      atomic.Bool
	buckets [100_001]atomic.Int64 // the last one holds everything longer
	maxNs   atomic.Int64
}

const histBucket = 100 * time.Microsecond

func (h *latencyHist) start() {
	for i := range h.buckets {
		h.buckets[i].Store(0)
	}
	h.maxNs.Store(0)
	h.on.Store(true)
}

func (h *latencyHist) stop() { h.on.Store(false) }

func (h *latencyHist) add(d time.Duration) {
	if !h.on.Load() {
		return
	}
	h.buckets[min(int(d/histBucket), len(h.buckets)-1)].Add(1)
	for {
		m := h.maxNs.Load()
		if int64(d) <= m || h.maxNs.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *latencyHist) count() int64 {
	var n int64
	for i := range h.buckets {
		n += h.buckets[i].Load()
	}
	return n
}

func (h *latencyHist) max() time.Duration { return time.Duration(h.maxNs.Load()) }

// quantile returns the upper bound of the bucket that holds quantile q.
func (h *latencyHist) quantile(q float64) time.Duration {
	total := h.count()
	if total == 0 {
		return 0
	}
	rank := int64(float64(total)*q + 0.5)
	var seen int64
	for i := range h.buckets {
		if seen += h.buckets[i].Load(); seen >= rank {
			return min(time.Duration(i+1)*histBucket, h.max())
		}
	}
	return h.max()
}

// benchSteps returns the numbers of recordings to hold: 50, 100, 200, 300,
// 500, capped by RECSINK_BENCH_MAX (which is held last when it is not one of
// them).
func benchSteps(b *testing.B) []int {
	b.Helper()
	limit := 500
	if v := os.Getenv("RECSINK_BENCH_MAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RECSINK_BENCH_MAX=%q: want a positive number of recordings", v)
		}
		limit = n
	}
	var steps []int
	for _, n := range []int{50, 100, 200, 300, 500} {
		if n <= limit {
			steps = append(steps, n)
		}
	}
	if !slices.Contains(steps, limit) && limit < 500 {
		steps = append(steps, limit)
	}
	return steps
}

func benchDuration(b *testing.B, env string, def time.Duration) time.Duration {
	b.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a duration such as 20s", env, v)
	}
	return d
}

// benchBytes returns RECSINK_BENCH_BYTES (a number of bytes with an
// optional KiB, MiB or GiB suffix), 1 GiB by default.
func benchBytes(b *testing.B) int64 {
	b.Helper()
	v := os.Getenv("RECSINK_BENCH_BYTES")
	if v == "" {
		return 1 << 30
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = s, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		b.Fatalf("RECSINK_BENCH_BYTES=%q: want a number of bytes, optionally with KiB, MiB or GiB", os.Getenv("RECSINK_BENCH_BYTES"))
	}
	return n * mult
}

// benchData returns n pseudo-random bytes, the same on every call, shared
// by the benchmarks of one run so that a large stream is made once.
func benchData(n int64) []byte {
	benchBuf.mu.Lock()
	defer benchBuf.mu.Unlock()
	if int64(len(benchBuf.b)) < n {
		benchBuf.b = make([]byte, n)
		rand.NewChaCha8([32]byte{'r', 'e', 'c', 's', 'i', 'n', 'k'}).Read(benchBuf.b)
	}
	return benchBuf.b[:n:n]
}

// benchSum returns the hex SHA-256 of data, computed once per length.
func benchSum(data []byte) string {
	benchBuf.mu.Lock()
	defer benchBuf.mu.Unlock()
	if s, ok := benchBuf.sums[len(data)]; ok {
		return s
	}
	sum := sha256.Sum256(data)
	s := hex.EncodeToString(sum[:])
	if benchBuf.sums == nil {
		benchBuf.sums = map[int]string{}
	}
	benchBuf.sums[len(data)] = s
	return s
}

var benchBuf struct {
	mu   sync.Mutex
	b    []byte
	sums map[int]string
}
