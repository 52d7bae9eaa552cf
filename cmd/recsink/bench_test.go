package main_test

// Benchmarks of the whole service (HTTP ingest, spool, uploader) against a
// real versitygw, each printing its figures beside a baseline measured in the
// same run on the same server, as a ratio. Each figure is the median of
// RECSINK_BENCH_RUNS runs (default 5) in one invocation, printed with its
// min and max so that a reader sees the noise. Run them with
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./cmd/recsink/
//
// versitygw keeps its data on a tmpfs (/dev/shm, when there is one),
// standing in for a remote S3 whose disk is not ours, while recsink's spool
// stays on the disk of the default temporary folder, or under
// RECSINK_BENCH_SPOOL=dir: the spool's disk is recsink's alone.
//
// RECSINK_BENCH_BYTES scales the streams (default 1GiB for the stop
// benchmark, a quarter of it for the throughput one). RECSINK_BENCH_MAX caps
// the stepped search for the number of concurrent recordings (default 1500),
// RECSINK_BENCH_STEP sets how long each number is held (default 25s: longer
// than a recording takes to fill a 5 MiB part at 2 Mbit/s, 21 s, so that
// every window sees the parts complete and go up). RECSINK_BENCH_AT=n skips
// the search and measures the windows at n, to compare builds or settings.
// RECSINK_BENCH_HEAPPROFILE=dir writes a heap profile at the last number
// measured (1,000, where the heap target is set, unless RECSINK_BENCH_MAX is
// lower).
//
// versitygw serves https with a certificate of its own CA (s3test.MustStartTLS),
// which recsink trusts through --s3-ca-file and the baseline through its
// client's roots, since production S3 is always https and both clients
// send parts differently over TLS (no payload SHA-256); RECSINK_BENCH_TLS=0
// runs them over plain HTTP. Each benchmark logs the transport it used.
//
// Beside its figures each prints where the machine's CPU went: the cores
// busy (/proc/stat), versitygw's share (its /proc/pid/stat) and this
// process's. versitygw runs on the same cores as recsink, so a figure that
// is bound by the CPU shows it there.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
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
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3spy"
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

// The concurrency target: p99 acknowledgement latency and the worst one.
const (
	targetRecordings = 1000 // the heap per recording is measured here
	targetP99        = 250 * time.Millisecond
	targetMax        = time.Second
)

// benchEnv is a recording Env with the baseline, the SDK's transfer manager,
// uploading into the same bucket of the same versitygw. When spy is set,
// recsink and the baseline both reach versitygw through it, and it gives
// the time of each S3 request.
type benchEnv struct {
	*Env
	meeting string
	tm      *transfermanager.Client
	sameTM  *transfermanager.Client // with recsink's checksum (see baseline)
	s3      *awss3.Client
	spy     *s3spy.Proxy
	// transport is "https" or "http", for the logs.
	transport string
	sent      *sentFile // what record sends: see sendFile
}

// mustBenchS3 starts the benchmarks' versitygw: over TLS unless
// RECSINK_BENCH_TLS=0, with recsink's option that trusts its certificate
// (--s3-ca-file, a file in the server's folder); over plain HTTP, with an
// option that does nothing. It logs the transport.
func mustBenchS3(b *testing.B) (srv *s3test.Server, trust func(*main.Config)) {
	b.Helper()
	if os.Getenv("RECSINK_BENCH_TLS") == "0" {
		b.Logf("S3 transport: http (RECSINK_BENCH_TLS=0)")
		return s3test.MustStart(b), func(*main.Config) {}
	}
	srv = s3test.MustStartTLS(b)
	caFile := filepath.Join(b.TempDir(), "s3-ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("S3 transport: https, versitygw's certificate trusted with --s3-ca-file (RECSINK_BENCH_TLS=0 for plain HTTP)")
	return srv, func(c *main.Config) { c.S3CAFile = caFile }
}

// benchTransport returns the scheme of srv's endpoint, for the logs.
func benchTransport(srv *s3test.Server) string {
	scheme, _, _ := strings.Cut(srv.Endpoint, "://")
	return scheme
}

// benchTmpfs makes the test servers started after it (versitygw, whose
// data folder is a TempDir) keep their data on /dev/shm, and returns the
// folder that recsink's spool goes under: RECSINK_BENCH_SPOOL, or the
// temporary folder of before, on a disk.
func benchTmpfs(b *testing.B) string {
	b.Helper()
	spool := os.Getenv("RECSINK_BENCH_SPOOL")
	if spool == "" {
		spool = os.TempDir()
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		b.Setenv("TMPDIR", "/dev/shm")
	} else {
		b.Logf("no /dev/shm: versitygw shares the spool's disk")
	}
	return spool
}

// benchConfig puts recsink's data folder (and so the spool) under parent.
func benchConfig(b *testing.B, parent string, allow ...string) func(*main.Config) {
	return func(c *main.Config) {
		c.LogLevel = "warn"
		c.Data = benchDir(b, parent)
		// RECSINK_BENCH_SYNC_EACH=1 measures per-file fsync instead of
		// group commit, for comparison.
		c.SpoolSyncEachFile = os.Getenv("RECSINK_BENCH_SYNC_EACH") == "1"
		c.AllowEndpoints = append(c.AllowEndpoints, allow...)
	}
}

// benchSpool puts recsink's data folder (and so the spool) under
// RECSINK_BENCH_SPOOL when it is set, and logs only warnings.
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

// mustBenchEnv starts versitygw on a tmpfs (over TLS unless
// RECSINK_BENCH_TLS=0), recsink with its spool on a disk, and the
// baseline's client; with spy, both talk to versitygw through an s3spy
// proxy that times each request, itself over TLS when versitygw is: it
// serves versitygw's certificate, so that recsink and the baseline send
// what they send over TLS.
func mustBenchEnv(b *testing.B, spy bool) *benchEnv {
	b.Helper()
	if testing.Short() {
		b.Skip("end-to-end benchmark against versitygw; skipped under -short")
	}
	spoolDir := benchTmpfs(b)
	srv, trust := mustBenchS3(b)
	endpoint := srv.Endpoint
	var proxy *s3spy.Proxy
	var allow []string
	if spy {
		if srv.CA != nil {
			cert, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
			if err != nil {
				b.Fatal(err)
			}
			proxy = s3spy.MustStartTLS(b, srv.Endpoint, cert, srv.CA)
		} else {
			proxy = s3spy.MustStart(b, srv.Endpoint)
		}
		endpoint, allow = proxy.Endpoint, []string{proxy.HostPort}
	}
	e := &Env{S3: srv, Main: MustRunMain(b, srv, benchConfig(b, spoolDir, allow...), trust)}
	e.Org = e.Main.MustCreateOrg(b)
	e.Key = srv.CreateUser(b, "user")
	e.Bucket = srv.CreateBucket(b, e.Key.ID)
	storage := e.Storage(e.Bucket+"/recordings", e.Key)
	storage["endpoint"] = endpoint
	e.Org.MustDo(b, 200, "PUT", "/v1/storage", storage)
	meeting := e.MustMeeting(b, e.Org)

	// Configured like recsink's own client (s3/s3.go): the same retryer,
	// enough idle connections, the same trust and TLS settings, and a
	// checksum mode that does per part what recsink does on the transport.
	// Over TLS the SDK's default, RequestChecksumCalculationWhenSupported:
	// each part goes up as an unsigned streaming payload
	// (STREAMING-UNSIGNED-PAYLOAD-TRAILER) with a CRC32 trailer, as recsink
	// sends UNSIGNED-PAYLOAD with the part's CRC64NVME: both read each part
	// once for its CRC and skip the payload's SHA-256. Over plain HTTP,
	// WhenRequired, recsink's own mode: the SDK then hashes each part once
	// for SigV4 and sends no CRC, as recsink hashes it once (with its CRC,
	// sent as a header in the same read).
	transport := &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	checksums := aws.RequestChecksumCalculationWhenRequired
	if srv.CA != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: srv.CA, MinVersion: tls.VersionTLS12}
		transport.ForceAttemptHTTP2 = true
		checksums = aws.RequestChecksumCalculationWhenSupported
	}
	client := awss3.New(awss3.Options{
		Region:       s3test.Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(e.Key.ID, e.Key.Secret, ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.RateLimiter = ratelimit.None
		}),
		HTTPClient:                                &http.Client{Transport: transport},
		RequestChecksumCalculation:                checksums,
		ResponseChecksumValidation:                aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
	})
	tmOptions := func(o *transfermanager.Options) {
		o.PartSizeBytes = benchPartSize
		o.Concurrency = benchConcurrency
		o.RequestChecksumCalculation = checksums
	}
	tm := transfermanager.New(client, tmOptions)
	sameTM := transfermanager.New(&crc64Parts{Client: client, sums: map[string]string{}}, tmOptions)
	return &benchEnv{Env: e, meeting: meeting, tm: tm, sameTM: sameTM, s3: client, spy: proxy, transport: benchTransport(srv)}
}

// crc64Parts is the S3 client of the baseline with recsink's checksum. The
// transfer manager (v0.5.7 to v0.5.9) drops each part's CRC64NVME from its
// CompleteMultipartUpload, which S3 then refuses; this puts them back, as
// UploadPart returned them.
type crc64Parts struct {
	*awss3.Client
	mu   sync.Mutex
	sums map[string]string // partKey → the part's CRC64NVME
}

// partKey names part n of upload id in crc64Parts.sums.
func partKey(id *string, n *int32) string {
	return aws.ToString(id) + "/" + strconv.Itoa(int(aws.ToInt32(n)))
}

func (c *crc64Parts) UploadPart(ctx context.Context, in *awss3.UploadPartInput, optFns ...func(*awss3.Options)) (*awss3.UploadPartOutput, error) {
	out, err := c.Client.UploadPart(ctx, in, optFns...)
	if err == nil && out.ChecksumCRC64NVME != nil {
		c.mu.Lock()
		c.sums[partKey(in.UploadId, in.PartNumber)] = *out.ChecksumCRC64NVME
		c.mu.Unlock()
	}
	return out, err
}

func (c *crc64Parts) CompleteMultipartUpload(ctx context.Context, in *awss3.CompleteMultipartUploadInput, optFns ...func(*awss3.Options)) (*awss3.CompleteMultipartUploadOutput, error) {
	if in.MultipartUpload != nil {
		c.mu.Lock()
		for i, p := range in.MultipartUpload.Parts {
			key := partKey(in.UploadId, p.PartNumber)
			if sum, ok := c.sums[key]; ok && p.ChecksumCRC64NVME == nil {
				in.MultipartUpload.Parts[i].ChecksumCRC64NVME = aws.String(sum)
			}
			delete(c.sums, key)
		}
		c.mu.Unlock()
	}
	return c.Client.CompleteMultipartUpload(ctx, in, optFns...)
}

// emptyBucket deletes every object of the bucket, so that the tmpfs holds
// one run's objects at a time.
func (e *benchEnv) emptyBucket(b *testing.B) { emptyBucket(b, e.s3, e.Bucket) }

// emptyBucket waits, for at most two minutes, until no multipart upload is
// open in bucket (recordings just stopped are completing), then deletes
// every object in it.
func emptyBucket(b *testing.B, client *awss3.Client, bucket string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		out, err := client.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket), MaxUploads: aws.Int32(1)})
		if err != nil {
			b.Fatalf("list the bucket's uploads: %v", err)
		}
		if len(out.Uploads) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			b.Fatalf("uploads still open in the bucket after 2 minutes")
		case <-time.After(100 * time.Millisecond): // polling S3
		}
	}
	p := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			b.Fatalf("list the bucket: %v", err)
		}
		for _, o := range page.Contents {
			if _, err := client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
				b.Fatalf("delete %s: %v", aws.ToString(o.Key), err)
			}
		}
	}
}

// baseline uploads data with the transfer manager and returns the key, how
// long it took from CreateMultipartUpload to CompleteMultipartUpload, and
// the CPU time used meanwhile. With sameChecksum the upload carries
// recsink's own checksum, a full-object CRC64NVME (see
// recsink.FullObjectChecksums), instead of the SDK's default, a composite
// CRC32: the same integrity, and the same work for versitygw, which takes
// CRC64NVME with Go's table-driven hash/crc64 and CRC32 with the
// processor's carry-less multiplication.
func (e *benchEnv) baseline(b *testing.B, data []byte, sameChecksum bool) (key string, d time.Duration, cpu cpuUse) {
	b.Helper()
	key = "baseline/" + recsink.RandomToken(6)
	in := &transfermanager.UploadObjectInput{
		Bucket: aws.String(e.Bucket),
		Key:    aws.String(key),
		Body:   bytes.NewReader(data),
	}
	tm := e.tm
	if sameChecksum {
		tm = e.sameTM
		in.ChecksumAlgorithm = tmtypes.ChecksumAlgorithm(recsink.FullObjectChecksums[0])
		in.ChecksumType = tmtypes.ChecksumTypeFullObject
	}
	cpu0 := e.cpuNow()
	start := time.Now()
	_, err := tm.UploadObject(context.Background(), in)
	d = time.Since(start)
	cpu = cpu0.until(e.cpuNow())
	if err != nil {
		b.Fatalf("baseline upload: %v", err)
	}
	return key, d, cpu
}

// recorded is one recording streamed by record.
type recorded struct {
	key              string
	start, stop, end time.Time // the start request, the stop request, the state uploaded seen
	cpu              cpuUse    // from start to end
}

// record streams data into a new recording at full speed as one chunked
// PUT, stops it and waits for the object.
func (e *benchEnv) record(b *testing.B, data []byte) recorded {
	b.Helper()
	file := e.sendFile(b, data)
	cpu0 := e.cpuNow()
	start := time.Now()
	rec := MustStartRecording(b, e.Org, e.meeting)
	if file != "" {
		curlPut(b, rec, file)
	} else if resp := rec.Put(b, struct{ io.Reader }{bytes.NewReader(data)}); resp.StatusCode != 204 {
		// Hiding bytes.Reader's WriteTo makes the client send 32 KiB
		// chunks, as ffmpeg and curl send small ones.
		b.Fatalf("PUT ingest: status %d", resp.StatusCode)
	}
	stop := time.Now()
	e.Org.MustDo(b, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	deadline := stop.Add(5 * time.Minute)
	for {
		out := e.Org.MustDo(b, 200, "GET", "/v1/recordings/"+rec.ID, nil)
		now := time.Now()
		switch {
		case out["state"] == recsink.RecordingUploaded:
			cpu := cpu0.until(e.cpuNow())
			if out["sizeBytes"] != float64(len(data)) || out["sha256"] != benchSum(data) {
				b.Fatalf("recording %s: size %v sha256 %v, want %d %s", rec.ID, out["sizeBytes"], out["sha256"], len(data), benchSum(data))
			}
			return recorded{key: rec.ObjectKey, start: start, stop: stop, end: now, cpu: cpu}
		case out["state"] == recsink.RecordingFailed:
			b.Fatalf("recording %s failed: %v", rec.ID, out)
		case now.After(deadline):
			b.Fatalf("recording %s: state %v 5 min after the stop", rec.ID, out["state"])
		}
		time.Sleep(2 * time.Millisecond) // polling a condition under a deadline
	}
}

// sendFile returns a file on the tmpfs holding data, which curlPut sends as
// the recorder: curl is a process of its own, so that the CPU time counted
// is recsink's alone, as the transfer manager's baseline counts no sender.
// Without curl (or with RECSINK_BENCH_SENDER=go) it returns "" and the
// recording is sent from this process, its CPU time counted with recsink's.
func (e *benchEnv) sendFile(b *testing.B, data []byte) string {
	b.Helper()
	if e.sent != nil && e.sent.n == len(data) {
		return e.sent.path
	}
	if _, err := exec.LookPath("curl"); err != nil || os.Getenv("RECSINK_BENCH_SENDER") == "go" {
		b.Logf("the recorder is this process (no curl, or RECSINK_BENCH_SENDER=go): its CPU time counts as recsink's")
		e.sent = &sentFile{n: len(data)}
		return ""
	}
	path := filepath.Join(b.TempDir(), "recording.bin") // on the tmpfs: see benchTmpfs
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Logf("the recorder is curl, a process of its own: the CPU time per GiB is recsink's alone (RECSINK_BENCH_SENDER=go sends from this process)")
	e.sent = &sentFile{path: path, n: len(data)}
	return path
}

type sentFile struct {
	path string // "" when this process sends
	n    int
}

// curlPut streams file into the recording as one chunked PUT, as a recorder
// that does not know its length sends it.
func curlPut(b *testing.B, rec Started, file string) {
	b.Helper()
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
		"-T", "-", "-H", "Expect:", "-H", "Authorization: Bearer "+rec.Token, rec.IngestURL)
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil || string(out) != "204" {
		b.Fatalf("curl PUT ingest: status %q: %v", out, err)
	}
}

// complete returns the spy's CompleteMultipartUpload of key.
func (e *benchEnv) complete(b *testing.B, key string) s3spy.Request {
	b.Helper()
	var found []s3spy.Request
	for _, r := range e.spy.Requests() {
		if r.Op == "CompleteMultipartUpload" && strings.HasSuffix(r.Key, key) && r.OK() {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		b.Fatalf("%d successful CompleteMultipartUpload of %s through the spy, want 1", len(found), key)
	}
	return found[0]
}

// tail returns the spy's last UploadPart of key to start, the tail part
// that waits for the stop.
func (e *benchEnv) tail(b *testing.B, key string) s3spy.Request {
	b.Helper()
	var last s3spy.Request
	for _, r := range e.spy.Requests() {
		if r.Op == "UploadPart" && strings.HasSuffix(r.Key, key) && r.OK() && r.Start.After(last.Start) {
			last = r
		}
	}
	if last.Start.IsZero() {
		b.Fatalf("no UploadPart of %s through the spy", key)
	}
	return last
}

// BenchmarkStreamThroughput streams one recording at full speed into the
// bucket, from the start request to the object complete, beside the transfer
// manager uploading the same bytes from memory to the same versitygw, and
// the process's CPU time per GiB of each. The recorder is curl, a process of
// its own (see sendFile), so that recsink's CPU time is its own. It also
// prints versitygw's CPU time per GiB received from each, and the cores of
// the machine busy during each.
func BenchmarkStreamThroughput(b *testing.B) {
	e := mustBenchEnv(b, false)
	n := max(benchBytes(b)/4, 1)
	data := benchData(n)
	benchSum(data)
	gib := float64(n) / (1 << 30)
	var rate, baseRate, ratio, cpu, baseCPU, cpuRatio samples
	var sameRate, sameRatio, sameCPU, sameS3CPU samples
	var s3CPU, baseS3CPU, cores, baseCores samples
	for i := range benchRuns(b) {
		// Alternate the order, so that neither always runs on a disk busy
		// writing back the other's bytes.
		var base, same time.Duration
		var bcpu, scpu cpuUse
		baselines := func() {
			cleanDisk()
			_, base, bcpu = e.baseline(b, data, false)
			cleanDisk()
			_, same, scpu = e.baseline(b, data, true)
		}
		if i%2 == 1 {
			baselines()
		}
		cleanDisk()
		r := e.record(b, data)
		if i%2 == 0 {
			baselines()
		}
		e.emptyBucket(b)
		rr := float64(n) / 1e6 / r.end.Sub(r.start).Seconds()
		br, sr := float64(n)/1e6/base.Seconds(), float64(n)/1e6/same.Seconds()
		rate, baseRate, ratio = append(rate, rr), append(baseRate, br), append(ratio, rr/br)
		sameRate, sameRatio = append(sameRate, sr), append(sameRatio, rr/sr)
		c, bc := r.cpu.self.Seconds()/gib, bcpu.self.Seconds()/gib
		cpu, baseCPU, cpuRatio = append(cpu, c), append(baseCPU, bc), append(cpuRatio, c/bc)
		sameCPU, sameS3CPU = append(sameCPU, scpu.self.Seconds()/gib), append(sameS3CPU, scpu.s3.Seconds()/gib)
		s3CPU, baseS3CPU = append(s3CPU, r.cpu.s3.Seconds()/gib), append(baseS3CPU, bcpu.s3.Seconds()/gib)
		cores, baseCores = append(cores, r.cpu.machine), append(baseCores, bcpu.machine)
		b.Logf("run %d: recsink %.1f MB/s %.2f CPU-s/GiB (its PUT took %v, the stop to uploaded %v), transfer manager %.1f MB/s %.2f CPU-s/GiB, with recsink's checksum %.1f MB/s %.2f CPU-s/GiB; versitygw %.2f, %.2f and %.2f CPU-s/GiB; the machine's %d cores %.2f and %.2f busy",
			i+1, rr, c, r.stop.Sub(r.start).Round(time.Millisecond), r.end.Sub(r.stop).Round(time.Millisecond), br, bc, sr, sameCPU[i],
			s3CPU[i], baseS3CPU[i], sameS3CPU[i], runtime.NumCPU(), cores[i], baseCores[i])
	}
	report(b, "recsink-MB/s", rate)
	report(b, "baseline-MB/s", baseRate)
	report(b, "ratio", ratio)
	report(b, "same-checksum-MB/s", sameRate)
	report(b, "same-checksum-ratio", sameRatio)
	report(b, "recsink-CPU-s/GiB", cpu)
	report(b, "baseline-CPU-s/GiB", baseCPU)
	report(b, "CPU-ratio", cpuRatio)
	report(b, "same-checksum-CPU-s/GiB", sameCPU)
	report(b, "s3-CPU-s/GiB", s3CPU)
	report(b, "baseline-s3-CPU-s/GiB", baseS3CPU)
	report(b, "same-checksum-s3-CPU-s/GiB", sameS3CPU)
	report(b, "busy-cores", cores)
	report(b, "baseline-busy-cores", baseCores)
	b.Logf("%d MiB over %s, %d runs (median [min, max]): recsink %s MB/s, transfer manager %s MB/s, ratio %s (target >= 1.0); the transfer manager with recsink's checksum (full-object CRC64NVME) %s MB/s, ratio %s; CPU-s/GiB recsink %s, transfer manager %s, ratio %s, with recsink's checksum %s; versitygw's CPU-s/GiB receiving from recsink %s, from the transfer manager %s, with recsink's checksum %s; busy cores of the machine's %d: %s with recsink, %s with the transfer manager",
		n>>20, e.transport, len(rate), rate, baseRate, ratio, sameRate, sameRatio, cpu, baseCPU, cpuRatio, sameCPU, s3CPU, baseS3CPU, sameS3CPU, runtime.NumCPU(), cores, baseCores)
}

// BenchmarkStopToComplete sends a recording (1 GiB by default) at full
// speed, then splits the time from the stop request to the object complete:
// recsink's own, from the stop to sending CompleteMultipartUpload, S3's
// CompleteMultipartUpload, and recsink's after it (its checks and the state
// change, seen by polling). Both recsink and the baseline reach versitygw
// through an s3spy proxy, which times the S3 requests. The baseline is the
// transfer manager uploading the whole recording after the stop, what a
// recorder that uploads after the stop would wait, and its own
// CompleteMultipartUpload.
func BenchmarkStopToComplete(b *testing.B) {
	e := mustBenchEnv(b, true)
	n := benchBytes(b)
	data := benchData(n)
	benchSum(data)
	var own, s3c, after, total, base, baseS3, ratio samples
	for i := range benchRuns(b) {
		cleanDisk()
		r := e.record(b, data)
		cmu := e.complete(b, r.key)
		last := e.tail(b, r.key)
		cleanDisk()
		key, d, _ := e.baseline(b, data, false)
		bcmu := e.complete(b, key)
		e.emptyBucket(b)
		o, c, a, t := cmu.Start.Sub(r.stop).Seconds(), cmu.End.Sub(cmu.Start).Seconds(), r.end.Sub(cmu.End).Seconds(), r.end.Sub(r.stop).Seconds()
		own, s3c, after, total = append(own, o), append(s3c, c), append(after, a), append(total, t)
		base, baseS3, ratio = append(base, d.Seconds()), append(baseS3, bcmu.End.Sub(bcmu.Start).Seconds()), append(ratio, t/d.Seconds())
		b.Logf("run %d: stop to object %.3f s = recsink %.3f s (the last part sent %.3f s after the stop, in %.3f s, Complete sent %.3f s after its answer) + S3's Complete %.3f s + after %.3f s; upload after stop %.3f s (its Complete %.3f s)",
			i+1, t, o, last.Start.Sub(r.stop).Seconds(), last.End.Sub(last.Start).Seconds(), cmu.Start.Sub(last.End).Seconds(), c, a, d.Seconds(), baseS3[len(baseS3)-1])
	}
	report(b, "recsink-own-s", own)
	report(b, "s3-complete-s", s3c)
	report(b, "after-complete-s", after)
	report(b, "stop-to-object-s", total)
	report(b, "baseline-upload-after-stop-s", base)
	report(b, "baseline-complete-s", baseS3)
	report(b, "ratio", ratio)
	b.Logf("%d MiB over %s (through the spy), %d runs (median [min, max]): stop to sending CompleteMultipartUpload %s s (target <= 0.05), S3's Complete %s s, after it %s s; stop to object %s s; upload after stop %s s (its Complete %s s); ratio %s",
		n>>20, e.transport, len(own), own, s3c, after, total, base, baseS3, ratio)
}

// BenchmarkConcurrentRecordings looks for the most real-time 2 Mbit/s
// recordings (62.5 KB tus PATCHes every 250 ms, each answered once its
// bytes are durable) that one node carries with p99 acknowledgement latency <= 250 ms
// and none over 1 s: it steps up the number (100, 250, 500, 750, 1000, 1250,
// 1500, ... up to RECSINK_BENCH_MAX), holding each for RECSINK_BENCH_STEP
// with new recordings into an emptied bucket (versitygw's tmpfs is memory),
// until one fails, then halves the interval between the last number carried
// and the first one missed twice. Each write's latency runs from its
// scheduled time to the acknowledgement, so that a recorder held up behind
// a slow write counts.
// At the largest number carried it then measures RECSINK_BENCH_RUNS windows
// of RECSINK_BENCH_STEP: p99 and max latency, the aggregate ingest rate,
// and the live heap per recording (the growth of the heap marked live by a
// GC, runtime/metrics /gc/heap/live:bytes, divided by the number running).
// The recorders run in a process of their own (bench_recorders_test.go), so
// that the heap, the GC and the process's CPU time are recsink's; the
// recorders' CPU time is reported beside them.
// The baselines, on the same disk in the same run after recsink's writers
// stop: the same number of writers doing plain write+fsync of the same
// sizes on the same schedule, and the disk's write+fsync ceiling (32 writers
// writing and fsyncing 62.5 KB as fast as they can).
func BenchmarkConcurrentRecordings(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark against versitygw; skipped under -short")
	}
	steps := benchSteps(b)
	limit := steps[len(steps)-1]
	// Recordings started together at the same rate complete their parts
	// together, every 21 s: a shorter window may see none of it.
	stepDur := benchDuration(b, "RECSINK_BENCH_STEP", 25*time.Second)
	runs := benchRuns(b)
	payload := benchData(rtWriteBytes)

	spoolDir := benchTmpfs(b)
	srv, trust := mustBenchS3(b)
	e := &Env{S3: srv, Main: MustRunMain(b, srv, benchConfig(b, spoolDir), trust)}
	e.Org = e.Main.MustCreateOrg(b)
	e.Key = srv.CreateUser(b, "user")
	e.Bucket = srv.CreateBucket(b, e.Key.ID)
	e.Org.MustDo(b, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", e.Key))
	meeting := e.MustMeeting(b, e.Org)

	// The recorders run in a process of their own (bench_recorders_test.go);
	// this process only starts and stops their recordings.
	recs := startRecorders(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	runtime.GC()
	heapBase := liveHeap()

	var writers []string // the recordings' IDs, in the order started
	// grow starts recordings up to n, a few at a time, as recorders would
	// join; shrink stops the newest ones down to n, so that the heap per
	// recording counts only the ones running.
	grow := func(n int) {
		b.Helper()
		starts := make(chan struct{}, n-len(writers))
		for range n - len(writers) {
			starts <- struct{}{}
		}
		close(starts)
		var sg sync.WaitGroup
		var mu sync.Mutex
		var startErr atomic.Value
		for range 8 {
			sg.Add(1)
			go func() {
				defer sg.Done()
				var batch []Started
				add := func() {
					mu.Lock()
					defer mu.Unlock()
					reply, err := recs.send(recordersCmd{Op: "add", Recs: batch})
					if err != nil {
						startErr.Store(err)
					}
					for _, r := range batch {
						writers = append(writers, r.ID)
					}
					if reply.Running != len(writers) {
						startErr.Store(fmt.Errorf("%d recorders running for %d recordings", reply.Running, len(writers)))
					}
					batch = batch[:0]
				}
				defer func() {
					if len(batch) > 0 {
						add()
					}
				}()
				for range starts {
					rec, err := startRecording(ctx, client, e.Org, meeting)
					if err != nil {
						startErr.Store(err)
						return
					}
					if batch = append(batch, rec); len(batch) == 10 {
						add()
					}
				}
			}()
		}
		sg.Wait()
		if err, _ := startErr.Load().(error); err != nil {
			b.Fatalf("start recording %d: %v", len(writers), err)
		}
	}
	shrink := func(n int) {
		recs.do(b, recordersCmd{Op: "keep", Keep: n})
		failed := 0
		for _, id := range writers[n:] {
			if err := stopRecording(ctx, client, e.Org, id); err != nil {
				if failed++; failed == 1 {
					b.Logf("stop %s: %v", id, err)
				}
			}
		}
		if failed > 0 {
			b.Logf("%d of %d stops failed (their recordings stay open, counted in the heap)", failed, len(writers)-n)
		}
		writers = writers[:n]
	}
	type window struct {
		writes         int64
		p99, max       time.Duration
		errors         int64
		rate           float64 // MB/s acknowledged
		heapPerRec     int64
		durationActual time.Duration
		schedP99       time.Duration // goroutines' wait to run once runnable
		gcCPU          float64       // the share of the process's CPU time the GC took
		cpu            cpuUse
	}
	// measure holds the writers running for d and measures a window.
	measure := func(d time.Duration, heap bool) window {
		// Writes held up by the burst of starts catch up first.
		time.Sleep(5 * time.Second)
		sched := schedLatencies()
		cpu0 := cpuNowWith(srv, recs)
		start := time.Now()
		recs.do(b, recordersCmd{Op: "start"})
		time.Sleep(d)
		counts := recs.do(b, recordersCmd{Op: "stop"})
		var w window
		w.durationActual = time.Since(start)
		w.cpu = cpu0.until(cpuNowWith(srv, recs))
		w.schedP99, w.gcCPU = schedLatencies().p99Since(sched)
		w.writes, w.p99, w.max, w.errors = counts.Writes, counts.P99, counts.Max, counts.Failed
		w.rate = float64(counts.Acked) / 1e6 / w.durationActual.Seconds()
		if heap {
			// After the window, the writers still running: a forced GC
			// in it would add its pause to the latencies.
			runtime.GC()
			w.heapPerRec = (liveHeap() - heapBase) / int64(len(writers))
		}
		return w
	}
	meets := func(w window) bool { return w.p99 <= targetP99 && w.max <= targetMax && w.errors == 0 }

	// The stepped search, then two halvings of the interval between the
	// last number carried and the first one missed.
	// recycle stops every recording and empties the bucket: versitygw's
	// tmpfs is memory, and 1,000 recordings send it 7.5 GB in a step.
	s3c := srv.S3Client(b, e.Key)
	recycle := func() {
		shrink(0)
		// The stopped recorders' connections go too: the heap per
		// recording counts the connections of the ones running.
		recs.do(b, recordersCmd{Op: "closeIdle"})
		client.CloseIdleConnections()
		emptyBucket(b, s3c, e.Bucket)
	}
	try := func(n int) bool {
		recycle()
		grow(n)
		w := measure(stepDur, false)
		b.Logf("N=%d: %d writes, p99 %v, max %v, %d failed writes, %.1f MB/s acknowledged; goroutines' scheduling latency p99 %v, GC %.0f%% of the CPU time; %s",
			n, w.writes, w.p99, w.max, w.errors, w.rate, w.schedP99, 100*w.gcCPU, w.cpu)
		return meets(w)
	}
	best, missed := 0, 0
	if v := os.Getenv("RECSINK_BENCH_AT"); v != "" {
		// No search: the windows at one number, for comparing builds or
		// settings there.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RECSINK_BENCH_AT=%q: want a positive number of recordings", v)
		}
		b.Logf("RECSINK_BENCH_AT=%d: no search, the windows at %d", n, n)
		steps, best, limit = nil, n, n
	}
	for _, n := range steps {
		if !try(n) {
			missed = n
			break
		}
		best = n
	}
	for range 2 {
		mid := (best + missed) / 2 / 10 * 10
		if missed == 0 || mid <= best || mid >= missed {
			break
		}
		if try(mid) {
			best = mid
		} else {
			missed = mid
		}
	}
	carried := best
	if best == 0 {
		best = missed
		b.Logf("even %d recordings miss the target: measuring there", best)
	}
	// The windows at the largest number carried, each with new recordings
	// into an empty bucket.
	// perRec is recsink's CPU time per second of each recording (ms), what
	// sizes a node: the cores that n recordings need are n times it.
	var p99s, maxs, rates, heaps, busy, s3Cores, selfCores, recCores, perRec samples
	met := 0
	for i := range runs {
		recycle()
		grow(best)
		w := measure(stepDur, true)
		if meets(w) {
			met++
		}
		p99s, maxs = append(p99s, ms(w.p99)), append(maxs, ms(w.max))
		rates, heaps = append(rates, w.rate), append(heaps, float64(w.heapPerRec)/1024)
		busy, s3Cores, selfCores = append(busy, w.cpu.machine), append(s3Cores, w.cpu.s3Cores), append(selfCores, w.cpu.selfCores)
		recCores, perRec = append(recCores, w.cpu.recCores), append(perRec, 1000*w.cpu.selfCores/float64(best))
		b.Logf("N=%d window %d: %d writes, p99 %v, max %v, %d failed writes, %.1f MB/s acknowledged, heap %d KiB/recording; goroutines' scheduling latency p99 %v, GC %.0f%% of the CPU time; %s",
			best, i+1, w.writes, w.p99, w.max, w.errors, w.rate, w.heapPerRec>>10, w.schedP99, 100*w.gcCPU, w.cpu)
	}
	// The heap target is set at 1,000 recordings, whether or not the node
	// carries them within the latency target: measured there too, with the
	// latency it had.
	var heapsAt, p99sAt samples
	target := min(targetRecordings, limit)
	if target > best {
		for i := range runs {
			recycle()
			grow(target)
			w := measure(stepDur, true)
			heapsAt, p99sAt = append(heapsAt, float64(w.heapPerRec)/1024), append(p99sAt, ms(w.p99))
			b.Logf("N=%d window %d (the heap target's count, or RECSINK_BENCH_MAX below it): p99 %v, max %v, %d failed writes, heap %d KiB/recording; %s",
				target, i+1, w.p99, w.max, w.errors, w.heapPerRec>>10, w.cpu)
		}
		b.Logf("at %d recordings: heap %s KiB per recording (target <= 64), write p99 %s ms", target, heapsAt, p99sAt)
	}
	if dir := os.Getenv("RECSINK_BENCH_HEAPPROFILE"); dir != "" {
		runtime.GC()
		writeHeapProfile(b, filepath.Join(dir, fmt.Sprintf("heap-%d.pprof", len(writers))))
	}
	// The recorders end; their recordings stay open until recsink stops.
	// FirstErr is the first since the recorders' process started.
	if firstErr := recs.do(b, recordersCmd{Op: "keep"}).FirstErr; firstErr != "" {
		b.Logf("first failed write: %s", firstErr)
	}

	// The baselines on the same disk, recsink idle.
	dir := benchDir(b, spoolDir)
	var baseP99s, baseMaxs, ceilings, rateRatios samples
	for i := range runs {
		p99, mx := fileWriters(b, dir, best, payload, max(stepDur/4, 2*time.Second))
		ceil := diskCeiling(b, dir, 32, payload, 2*time.Second)
		baseP99s, baseMaxs, ceilings = append(baseP99s, ms(p99)), append(baseMaxs, ms(mx)), append(ceilings, ceil)
		rateRatios = append(rateRatios, rates[i]/ceil)
	}
	if steps != nil {
		b.ReportMetric(float64(carried), "max-recordings")
	}
	b.ReportMetric(float64(met), "windows-meeting-target")
	report(b, "p99-ms", p99s)
	report(b, "max-ms", maxs)
	report(b, "baseline-p99-ms", baseP99s)
	report(b, "baseline-max-ms", baseMaxs)
	report(b, "ingest-MB/s", rates)
	report(b, "disk-ceiling-MB/s", ceilings)
	report(b, "ingest/ceiling", rateRatios)
	report(b, "heap-KiB/rec", heaps)
	report(b, "busy-cores", busy)
	report(b, "s3-cores", s3Cores)
	report(b, "process-cores", selfCores)
	report(b, "CPU-ms/recording-s", perRec)
	report(b, "recorders-cores", recCores)
	if len(heapsAt) > 0 {
		report(b, fmt.Sprintf("heap-KiB/rec-at-%d", target), heapsAt)
		report(b, fmt.Sprintf("p99-ms-at-%d", target), p99sAt)
	}
	found := fmt.Sprintf("carried %d real-time recordings", carried)
	if steps == nil {
		found = "no search (RECSINK_BENCH_AT)"
	}
	b.Logf("S3 over %s: %s (target >= 1000 with p99 <= 250 ms, max <= 1 s); measured at %d (%d of %d windows there met the target); median [min, max] of %d windows: p99 %s ms, max %s ms (plain write+fsync: p99 %s ms, max %s ms); ingest %s MB/s beside the disk's write+fsync ceiling %s MB/s (%s of it); heap %s KiB per recording (target <= 64); cores busy of the machine's %d: %s, of which versitygw %s, recsink's process %s and the recorders' process %s; recsink's CPU per recording %s ms a second",
		benchTransport(srv), found, best, met, runs, runs, p99s, maxs, baseP99s, baseMaxs, rates, ceilings, rateRatios, heaps, runtime.NumCPU(), busy, s3Cores, selfCores, recCores, perRec)
}

// fileWriters runs n writers doing write+fsync of payload on the real-time
// schedule for d, each to its own file in dir, and returns their p99 and
// max latency.
func fileWriters(b *testing.B, dir string, n int, payload []byte, d time.Duration) (p99, mx time.Duration) {
	b.Helper()
	hist := &latencyHist{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg, started sync.WaitGroup
	var errs atomic.Int64
	for i := range n {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, fmt.Sprintf("w%d", i))
			defer os.Remove(path)
			if err := fileWriter(ctx, path, payload, hist, started.Done); err != nil {
				errs.Add(1)
			}
		}()
	}
	started.Wait() // every writer has its file and has started its schedule
	hist.start()
	time.Sleep(d)
	hist.stop()
	cancel()
	wg.Wait()
	if errs.Load() > 0 {
		b.Fatalf("baseline with %d writers: %d failed", n, errs.Load())
	}
	return hist.quantile(0.99), hist.max()
}

// diskCeiling returns the rate (MB/s) at which n writers writing and
// fsyncing payload back to back, each to its own file in dir, fill the
// disk for d.
func diskCeiling(b *testing.B, dir string, n int, payload []byte, d time.Duration) float64 {
	b.Helper()
	var total atomic.Int64
	var errs atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, fmt.Sprintf("c%d", i))
			defer os.Remove(path)
			f, err := os.Create(path)
			if err != nil {
				errs.Add(1)
				return
			}
			defer f.Close()
			for written := 0; time.Now().Before(deadline); {
				if written >= 64<<20 { // stay small on the disk
					if err := f.Truncate(0); err != nil {
						errs.Add(1)
						return
					}
					f.Seek(0, io.SeekStart)
					written = 0
				}
				if _, err := f.Write(payload); err != nil {
					errs.Add(1)
					return
				}
				if err := f.Sync(); err != nil {
					errs.Add(1)
					return
				}
				written += len(payload)
				total.Add(int64(len(payload)))
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if errs.Load() > 0 {
		b.Fatalf("disk ceiling: %d writers failed", errs.Load())
	}
	return float64(total.Load()) / 1e6 / time.Since(start).Seconds()
}

// samples are one figure's values over the runs.
type samples []float64

// stats returns the median, min and max.
func (s samples) stats() (med, lo, hi float64) {
	if len(s) == 0 {
		return 0, 0, 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	if len(c)%2 == 1 {
		med = c[len(c)/2]
	} else {
		med = (c[len(c)/2-1] + c[len(c)/2]) / 2
	}
	return med, c[0], c[len(c)-1]
}

func (s samples) String() string {
	med, lo, hi := s.stats()
	return fmt.Sprintf("%s [%s, %s]", sig3(med), sig3(lo), sig3(hi))
}

// sig3 formats v with three significant digits, without an exponent.
func sig3(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', max(0, 2-int(math.Floor(math.Log10(math.Abs(v))))), 64)
}

// report reports the median of s as unit, and its min and max as unit-min
// and unit-max.
func report(b *testing.B, unit string, s samples) {
	med, lo, hi := s.stats()
	b.ReportMetric(med, unit)
	b.ReportMetric(lo, unit+"-min")
	b.ReportMetric(hi, unit+"-max")
}

// benchRuns returns RECSINK_BENCH_RUNS, 5 by default.
func benchRuns(b *testing.B) int {
	b.Helper()
	v := os.Getenv("RECSINK_BENCH_RUNS")
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("RECSINK_BENCH_RUNS=%q: want a positive number of runs", v)
	}
	return n
}

// cpuTime returns the CPU time, user and system, the process has used.
// cpuSample is a reading of the CPU time used so far: by the whole machine
// (every core's busy time, /proc/stat), by this process (recsink, and the
// benchmark's own clients where they run in it), by versitygw and by the
// recorders' process where there is one.
type cpuSample struct {
	at                           time.Time
	machine, self, s3, recorders time.Duration
	machineOK, s3OK, recOK       bool
}

// cpuUse is the CPU time used between two samples.
type cpuUse struct {
	self, s3 time.Duration
	// machine, self, s3 and recorders' cores: the CPU time over the wall
	// time, 0 where it is not known.
	machine, selfCores, s3Cores, recCores float64
	recOK                                 bool // the recorders' process was measured
}

func (e *benchEnv) cpuNow() cpuSample {
	return cpuNow(e.S3)
}

func cpuNow(srv *s3test.Server) cpuSample {
	s := cpuSample{at: time.Now(), self: cpuTime()}
	s.machine, s.machineOK = machineBusy()
	s.s3, s.s3OK = srv.CPUTime()
	return s
}

// cpuNowWith is cpuNow with the recorders' process's CPU time.
func cpuNowWith(srv *s3test.Server, r *recorders) cpuSample {
	s := cpuNow(srv)
	s.recorders, s.recOK = r.cpu()
	return s
}

// String tells the cores busy: the machine's, versitygw's, this
// process's and the recorders' process's where there is one.
func (u cpuUse) String() string {
	if u.recOK {
		return fmt.Sprintf("cores busy: %.2f of the machine's %d, versitygw %.2f, recsink's process %.2f, the recorders' process %.2f",
			u.machine, runtime.NumCPU(), u.s3Cores, u.selfCores, u.recCores)
	}
	return fmt.Sprintf("cores busy: %.2f of the machine's %d, versitygw %.2f, this process (recsink and the benchmark's clients) %.2f",
		u.machine, runtime.NumCPU(), u.s3Cores, u.selfCores)
}

func (a cpuSample) until(b cpuSample) cpuUse {
	u := cpuUse{self: b.self - a.self}
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return u
	}
	u.selfCores = u.self.Seconds() / wall
	if a.s3OK && b.s3OK {
		u.s3 = b.s3 - a.s3
		u.s3Cores = u.s3.Seconds() / wall
	}
	if a.machineOK && b.machineOK {
		u.machine = (b.machine - a.machine).Seconds() / wall
	}
	if a.recOK && b.recOK {
		u.recOK, u.recCores = true, (b.recorders-a.recorders).Seconds()/wall
	}
	return u
}

// machineBusy returns the busy time of all the machine's cores so far:
// /proc/stat's first line less its idle and iowait times.
func machineBusy() (time.Duration, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	if len(f) > 8 { // steal: time the hypervisor gave elsewhere
		if n, err := strconv.ParseInt(f[8], 10, 64); err == nil {
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond, true // USER_HZ is 100
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
// starts with a disk not busy with the previous one's bytes.
func cleanDisk() { syscall.Sync() }

// liveHeap returns the heap bytes marked live by the last GC.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// schedSnapshot is the runtime's histogram of how long goroutines waited
// to run once runnable, and the CPU time spent: a latency that the
// scheduler adds shows there, one of recsink's own does not.
type schedSnapshot struct {
	hist         *metrics.Float64Histogram
	gcCPU, total float64
}

func schedLatencies() schedSnapshot {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}
	metrics.Read(s)
	return schedSnapshot{s[0].Value.Float64Histogram(), s[1].Value.Float64(), s[2].Value.Float64()}
}

// p99Since returns the 99th percentile of the scheduling latencies since
// before, and the GC's share of the CPU time since.
func (after schedSnapshot) p99Since(before schedSnapshot) (time.Duration, float64) {
	counts := make([]uint64, len(after.hist.Counts))
	var total uint64
	for i, c := range after.hist.Counts {
		counts[i] = c - before.hist.Counts[i]
		total += counts[i]
	}
	gc := 0.0
	if cpu := after.total - before.total; cpu > 0 {
		gc = (after.gcCPU - before.gcCPU) / cpu
	}
	if total == 0 {
		return 0, gc
	}
	var seen uint64
	for i, c := range counts {
		if seen += c; float64(seen) >= 0.99*float64(total) {
			return time.Duration(after.hist.Buckets[i+1] * float64(time.Second)), gc
		}
	}
	return 0, gc
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// recordingWriter sends payload every rtInterval as a tus PATCH until ctx is
// done, recording each write's latency from its scheduled time.
func recordingWriter(ctx context.Context, client *http.Client, rec Started, payload []byte, hist *latencyHist, errs *atomic.Int64) error {
	var acked atomic.Int64
	return ackedWriter(ctx, client, rec, payload, hist, errs, &acked)
}

// ackedWriter is recordingWriter that also adds the bytes acknowledged to
// acked.
func ackedWriter(ctx context.Context, client *http.Client, rec Started, payload []byte, hist *latencyHist, errs, acked *atomic.Int64) error {
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
		if n > offset {
			acked.Add(n - offset)
		}
		if n >= 0 {
			offset = n
		}
		return nil
	}, func() error { return firstErr })
}

// fileWriter writes and fsyncs payload every rtInterval until ctx is done,
// calling started once its file is created (or could not be).
func fileWriter(ctx context.Context, path string, payload []byte, hist *latencyHist, started func()) error {
	f, err := os.Create(path)
	started()
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

// stopRecording stops a recording, returning any failure.
func stopRecording(ctx context.Context, client *http.Client, c *Client, id string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", c.m.URL()+"/v1/recordings/"+id+"/stop", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	return nil
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

// benchSteps returns the numbers of recordings of the stepped search: 100,
// 250, 500, then every 250 up to RECSINK_BENCH_MAX (default 1500), which is
// held last when it is not one of them.
func benchSteps(b *testing.B) []int {
	b.Helper()
	limit := 1500
	if v := os.Getenv("RECSINK_BENCH_MAX"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("RECSINK_BENCH_MAX=%q: want a positive number of recordings", v)
		}
		limit = n
	}
	var steps []int
	for n := 100; n <= limit; {
		steps = append(steps, n)
		switch {
		case n < 250:
			n = 250
		case n < 500:
			n = 500
		default:
			n += 250
		}
	}
	if !slices.Contains(steps, limit) {
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
