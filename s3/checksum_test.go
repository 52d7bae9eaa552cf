package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/s3"
)

// object returns the bytes of a 3-part test object: two 5 MiB parts and a
// short last one, and the parts' bounds.
func object(seed uint64) ([]byte, [][2]int64) {
	r := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, 10<<20+1234)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data, [][2]int64{{0, 5 << 20}, {5 << 20, 5 << 20}, {10 << 20, 1234}}
}

// uploadParts uploads the parts of data in the order given (numbers from 1).
func uploadParts(t *testing.T, c recsink.StorageClient, key string, up recsink.Upload, data []byte, bounds [][2]int64, order ...int32) map[int32]recsink.Part {
	t.Helper()
	parts := map[int32]recsink.Part{}
	for _, n := range order {
		b := bounds[n-1]
		p, err := c.UploadPart(context.Background(), key, up, n, io.NewSectionReader(bytes.NewReader(data), b[0], b[1]), b[1])
		if err != nil {
			t.Fatalf("UploadPart %d: %v", n, err)
		}
		if p.Number != n || p.Size != b[1] || p.ETag == "" || (up.Checksum != "" && p.Checksum == "") {
			t.Fatalf("UploadPart %d = %+v", n, p)
		}
		p.Offset = b[0]
		parts[n] = p
	}
	return parts
}

func values(m map[int32]recsink.Part) []recsink.Part {
	var ps []recsink.Part
	for _, p := range m {
		ps = append(ps, p)
	}
	return ps
}

// TestClient_FullObjectChecksum uploads three parts with part 1 last, then
// replaces part 1 (as a finalized header would), completes with the
// full-object checksum, and compares S3's checksum with internal/crc's
// over the whole object, for each algorithm versitygw takes.
func TestClient_FullObjectChecksum(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	st := newStorage(srv.HostPort)
	ctx := context.Background()
	dest := recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true}
	c, err := st.Client(ctx, dest, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range recsink.FullObjectChecksums {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			a := crc.ByName(string(alg))
			key := "rec/" + string(alg) + ".mkv"
			data, bounds := object(1)
			up, err := c.CreateMultipartUpload(ctx, key, "video/x-matroska", nil, alg)
			if err != nil {
				t.Fatal(err)
			}
			if up.Checksum != alg {
				t.Fatalf("upload checksum = %q, want %q", up.Checksum, alg)
			}
			parts := uploadParts(t, c, key, up, data, bounds, 2, 3, 1)

			// Part 1 replaced at the end, with a rewritten header.
			final := bytes.Clone(data)
			copy(final[64:], "Duration and Cues, written at the stop")
			parts[1] = uploadParts(t, c, key, up, final, bounds, 1)[1]

			// What the service would compute: the new part 1's CRC combined
			// with the CRC of the rest, which it kept as the rest went up.
			rest := a.Checksum(data[bounds[1][0]:])
			want := a.Encode(a.Combine(a.Checksum(final[:bounds[1][0]]), rest, int64(len(data))-bounds[1][0]))
			if direct := a.Encode(a.Checksum(final)); direct != want {
				t.Fatalf("combined %s, direct %s", want, direct)
			}

			listed, err := c.ListParts(ctx, key, up.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range listed {
				if p.Checksum != parts[p.Number].Checksum {
					t.Errorf("ListParts part %d checksum %s, UploadPart said %s", p.Number, p.Checksum, parts[p.Number].Checksum)
				}
			}

			got, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), want)
			if err != nil {
				t.Fatal(err)
			}
			wantSum := recsink.Checksum{Algorithm: alg, Type: "FULL_OBJECT", Value: want}
			if got != wantSum {
				t.Errorf("Complete checksum = %+v, want %+v", got, wantSum)
			}
			info, err := c.StatObject(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Checksum != wantSum || info.Size != int64(len(final)) {
				t.Errorf("StatObject = %+v, want size %d and checksum %+v", info, len(final), wantSum)
			}
			if obj := srv.GetObject(t, bucket, key); !bytes.Equal(obj, final) {
				t.Error("object differs from the parts sent")
			}
			t.Logf("%s: head-object checksum %s", alg, info.Checksum)
		})
	}

	t.Run("CombinedByClient", func(t *testing.T) {
		t.Parallel()
		// No checksum from the caller: the client combines the parts'; and
		// a part whose checksum the caller lost gets S3's from ListParts.
		const key = "rec/combined.mkv"
		data, bounds := object(2)
		up, err := c.CreateMultipartUpload(ctx, key, "", nil, recsink.FullObjectChecksums...)
		if err != nil {
			t.Fatal(err)
		}
		parts := uploadParts(t, c, key, up, data, bounds, 1, 3, 2)
		p := parts[2]
		p.Checksum = ""
		parts[2] = p
		got, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), "")
		if err != nil {
			t.Fatal(err)
		}
		a := crc.ByName(string(up.Checksum))
		if want := a.Encode(a.Checksum(data)); got.Value != want || got.Algorithm != recsink.ChecksumCRC64NVME {
			t.Errorf("checksum = %+v, want CRC64NVME %s", got, want)
		}
	})

	t.Run("ErrBadDigest", func(t *testing.T) {
		t.Parallel()
		const key = "rec/wrong.mkv"
		data, bounds := object(3)
		up, err := c.CreateMultipartUpload(ctx, key, "", nil, recsink.ChecksumCRC64NVME)
		if err != nil {
			t.Fatal(err)
		}
		parts := uploadParts(t, c, key, up, data, bounds, 1, 2, 3)
		a := crc.CRC64NVME
		wrong := a.Encode(a.Checksum(data) ^ 1<<40)
		_, err = c.CompleteMultipartUpload(ctx, key, up, values(parts), wrong)
		var se *recsink.StorageError
		if !errors.As(err, &se) || se.Code != "BadDigest" || se.Op != "CompleteMultipartUpload" || !se.ChecksumMismatch() || se.Retryable() {
			t.Fatalf("Complete with a wrong checksum: %v, want a BadDigest StorageError, not retryable", err)
		}
		if msg := recsink.ErrorMessage(err); !strings.Contains(msg, "did not match the checksum of the bytes recsink sent") || !strings.Contains(msg, "no wrong object") {
			t.Errorf("message = %q", msg)
		}
		if ok, err := c.ObjectExists(ctx, key); err != nil || ok {
			t.Fatalf("ObjectExists after BadDigest = %v, %v; want no object", ok, err)
		}
		// The upload is still there: the right checksum completes it.
		got, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), a.Encode(a.Checksum(data)))
		if err != nil {
			t.Fatalf("Complete after BadDigest: %v", err)
		}
		if got.Value != a.Encode(a.Checksum(data)) {
			t.Errorf("checksum = %+v", got)
		}
	})

	t.Run("NoChecksum", func(t *testing.T) {
		t.Parallel()
		// Asked for none, the upload is as before: no checksum headers.
		const key = "rec/plain.mkv"
		data, bounds := object(4)
		up, err := c.CreateMultipartUpload(ctx, key, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if up.Checksum != recsink.ChecksumNone {
			t.Fatalf("upload checksum = %q", up.Checksum)
		}
		parts := uploadParts(t, c, key, up, data, bounds, 3, 2, 1)
		got, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), "")
		if err != nil {
			t.Fatal(err)
		}
		// versitygw, like AWS since 2025, gives every object a CRC64NVME of
		// its own; recsink sent none.
		if a := crc.CRC64NVME; !got.IsZero() && got.Value != a.Encode(a.Checksum(data)) {
			t.Errorf("S3's own checksum = %+v, want none or the CRC64NVME of the bytes", got)
		}
		if _, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), "AAAAAA=="); err == nil {
			t.Error("a full-object checksum for an upload without one was accepted")
		}
	})
}

// faultProxy stands between recsink and versitygw: it can flip a byte of
// an UploadPart body on its way, and refuse checksum algorithms at
// CreateMultipartUpload as a server without them would.
type faultProxy struct {
	*httptest.Server
	flipPart atomic.Int32 // flip a byte of the next UploadPart of this number; 0 for none
	flipped  atomic.Int32 // bodies flipped
	refuse   map[string]bool
	mu       sync.Mutex
	creates  []string // x-amz-checksum-algorithm of every CreateMultipartUpload
}

func newFaultProxy(t *testing.T, target string, tls bool, refuse ...string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{refuse: map[string]bool{}}
	for _, a := range refuse {
		p.refuse[a] = true
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // as signed
			q := r.In.URL.Query()
			if r.In.Method == http.MethodPut && q.Get("uploadId") != "" && q.Get("partNumber") != "" &&
				q.Get("partNumber") == strconv.Itoa(int(p.flipPart.Load())) && p.flipPart.CompareAndSwap(p.flipPart.Load(), 0) {
				r.Out.Body = &flipReader{rc: r.Out.Body, at: 4097}
				p.flipped.Add(1)
			}
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["uploads"]; ok && r.Method == http.MethodPost {
			alg := r.Header.Get("X-Amz-Checksum-Algorithm")
			p.mu.Lock()
			p.creates = append(p.creates, alg)
			p.mu.Unlock()
			if p.refuse[alg] {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `<Error><Code>InvalidRequest</Code><Message>Checksum algorithm not supported</Message></Error>`)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})
	if tls {
		p.Server = httptest.NewTLSServer(h)
	} else {
		p.Server = httptest.NewServer(h)
	}
	t.Cleanup(p.Close)
	return p
}

// flipReader flips the bits of the byte at offset at.
type flipReader struct {
	rc  io.ReadCloser
	at  int64
	pos int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	if f.at >= f.pos && f.at < f.pos+int64(n) {
		p[f.at-f.pos] ^= 0xff
	}
	f.pos += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.rc.Close() }

// TestClient_PartCorruptedInTransit flips one byte of a part's body between
// recsink and S3. Over TLS the payload is not signed and S3's check of the
// part's CRC refuses it (BadDigest); over plain HTTP the signed payload hash
// refuses it first. Either way the part is refused, the error says so and
// is retryable, and sending the part again completes a right object.
func TestClient_PartCorruptedInTransit(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	for _, tt := range []struct {
		name  string
		tls   bool
		codes []string
	}{
		{"TLS", true, []string{"BadDigest"}},
		{"HTTP", false, []string{"XAmzContentSHA256Mismatch", "BadDigest"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy := newFaultProxy(t, srv.Endpoint, tt.tls)
			hostPort := strings.TrimPrefix(strings.TrimPrefix(proxy.URL, "https://"), "http://")
			// One attempt per call: the refusal must reach the caller.
			st := s3.New(s3.Config{AllowEndpoints: []string{hostPort}, HTTPClient: proxy.Client(), MaxAttempts: 1, Logger: slog.New(slog.DiscardHandler)})
			ctx := context.Background()
			c, err := st.Client(ctx, recsink.Destination{Bucket: bucket, Endpoint: proxy.URL, Region: "us-east-1", ForcePathStyle: true}, owner)
			if err != nil {
				t.Fatal(err)
			}
			key := "rec/flipped-" + tt.name + ".mkv"
			data, bounds := object(5)
			up, err := c.CreateMultipartUpload(ctx, key, "", nil, recsink.FullObjectChecksums...)
			if err != nil {
				t.Fatal(err)
			}
			parts := uploadParts(t, c, key, up, data, bounds, 1, 3)

			proxy.flipPart.Store(2)
			b := bounds[1]
			body := io.NewSectionReader(bytes.NewReader(data), b[0], b[1])
			_, err = c.UploadPart(ctx, key, up, 2, body, b[1])
			var se *recsink.StorageError
			if !errors.As(err, &se) || se.Op != "UploadPart" || !se.ChecksumMismatch() || !se.Retryable() {
				t.Fatalf("UploadPart of a flipped body: %v, want a retryable checksum mismatch", err)
			}
			if !strings.Contains(strings.Join(tt.codes, " "), se.Code) {
				t.Errorf("code %s, want one of %v", se.Code, tt.codes)
			}
			if msg := recsink.ErrorMessage(err); !strings.Contains(msg, "did not match what recsink sent") || !strings.Contains(msg, "sends the part again") {
				t.Errorf("message = %q", msg)
			}
			t.Logf("%s: %s: %s", tt.name, se.Code, se.Explain())
			if proxy.flipped.Load() != 1 {
				t.Fatalf("proxy flipped %d bodies, want 1", proxy.flipped.Load())
			}
			// The caller's retry: the same section, the same bytes.
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			p, err := c.UploadPart(ctx, key, up, 2, body, b[1])
			if err != nil {
				t.Fatalf("UploadPart again: %v", err)
			}
			parts[2] = p
			got, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), "")
			if err != nil {
				t.Fatal(err)
			}
			a := crc.ByName(string(up.Checksum))
			if got.Value != a.Encode(a.Checksum(data)) {
				t.Errorf("checksum %+v, want %s", got, a.Encode(a.Checksum(data)))
			}
			if obj := srv.GetObject(t, bucket, key); !bytes.Equal(obj, data) {
				t.Error("object differs from the bytes sent")
			}
		})
	}
}

// TestStorage_CheckFindsChecksum: the storage check's probe upload finds
// the checksum the endpoint takes, and recordings' uploads then ask for it
// at once.
func TestStorage_CheckFindsChecksum(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	proxy := newFaultProxy(t, srv.Endpoint, false, "CRC64NVME")
	st := newStorage(strings.TrimPrefix(proxy.URL, "http://"))
	ctx := context.Background()
	dest := recsink.Destination{Bucket: bucket, Endpoint: proxy.URL, Region: "us-east-1", ForcePathStyle: true}
	report, err := st.Check(ctx, dest, owner)
	if err != nil {
		t.Fatal(err)
	}
	if !report.OK || report.Checksum != recsink.ChecksumCRC32C {
		t.Fatalf("report OK %v, checksum %q; want OK and CRC32C", report.OK, report.Checksum)
	}
	c, err := st.Client(ctx, dest, owner)
	if err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateMultipartUpload(ctx, "rec/after-check.mkv", "", nil, recsink.FullObjectChecksums...)
	if err != nil || up.Checksum != recsink.ChecksumCRC32C {
		t.Fatalf("upload = %+v, %v; want CRC32C", up, err)
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if got := strings.Join(proxy.creates, ","); got != "CRC64NVME,CRC32C,CRC32C" {
		t.Errorf("creates asked %s, want CRC64NVME,CRC32C by the check and CRC32C by the upload", got)
	}
}

// TestClient_ChecksumFallback puts versitygw behind a proxy that refuses
// some algorithms at CreateMultipartUpload, as servers without them answer.
func TestClient_ChecksumFallback(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	for _, tt := range []struct {
		name   string
		refuse []string
		want   recsink.ChecksumAlgorithm
		asked  []string // algorithms asked by the first upload
	}{
		{"CRC32C", []string{"CRC64NVME"}, recsink.ChecksumCRC32C, []string{"CRC64NVME", "CRC32C"}},
		{"CRC32", []string{"CRC64NVME", "CRC32C"}, recsink.ChecksumCRC32, []string{"CRC64NVME", "CRC32C", "CRC32"}},
		{"None", []string{"CRC64NVME", "CRC32C", "CRC32"}, recsink.ChecksumNone, []string{"CRC64NVME", "CRC32C", "CRC32", ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy := newFaultProxy(t, srv.Endpoint, false, tt.refuse...)
			hostPort := strings.TrimPrefix(proxy.URL, "http://")
			st := newStorage(hostPort)
			ctx := context.Background()
			c, err := st.Client(ctx, recsink.Destination{Bucket: bucket, Endpoint: proxy.URL, Region: "us-east-1", ForcePathStyle: true}, owner)
			if err != nil {
				t.Fatal(err)
			}
			key := "rec/fallback-" + tt.name + ".mkv"
			up, err := c.CreateMultipartUpload(ctx, key, "", nil, recsink.FullObjectChecksums...)
			if err != nil {
				t.Fatal(err)
			}
			if up.Checksum != tt.want {
				t.Fatalf("upload checksum = %q, want %q", up.Checksum, tt.want)
			}
			proxy.mu.Lock()
			asked := strings.Join(proxy.creates, ",")
			proxy.mu.Unlock()
			if asked != strings.Join(tt.asked, ",") {
				t.Errorf("first upload asked %s, want %s", asked, strings.Join(tt.asked, ","))
			}
			// The next upload to the same endpoint asks the right one at once.
			up2, err := c.CreateMultipartUpload(ctx, key+"2", "", nil, recsink.FullObjectChecksums...)
			if err != nil || up2.Checksum != tt.want {
				t.Fatalf("second upload = %+v, %v", up2, err)
			}
			proxy.mu.Lock()
			if n := len(proxy.creates); n != len(tt.asked)+1 || proxy.creates[n-1] != string(tt.want) {
				t.Errorf("creates = %q, want one more asking %q", proxy.creates, tt.want)
			}
			proxy.mu.Unlock()
			data, bounds := object(6)
			parts := uploadParts(t, c, key, up, data, bounds, 2, 1, 3)
			got, err := c.CompleteMultipartUpload(ctx, key, up, values(parts), "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != recsink.ChecksumNone && got.Algorithm != tt.want {
				t.Errorf("object checksum = %+v, want %q", got, tt.want)
			}
			if obj := srv.GetObject(t, bucket, key); !bytes.Equal(obj, data) {
				t.Error("object differs")
			}
		})
	}
}

// knownCRC is a part body that knows its CRC, as a spool that took it at
// ingest would, and counts the bytes read from it.
type knownCRC struct {
	*io.SectionReader
	alg  recsink.ChecksumAlgorithm
	sum  string
	read atomic.Int64
}

func (k *knownCRC) PartChecksum(alg recsink.ChecksumAlgorithm) (string, bool) {
	return k.sum, alg == k.alg
}

func (k *knownCRC) Read(p []byte) (int, error) {
	n, err := k.SectionReader.Read(p)
	k.read.Add(int64(n))
	return n, err
}

// TestClient_PartChecksumKnown: a body that knows its CRC is sent with it.
// Over TLS the part is read once, to be sent, and S3 refuses bytes that do
// not match it; over plain HTTP the read for the payload hash checks the
// bytes first and nothing is sent when they differ.
func TestClient_PartChecksumKnown(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	data, bounds := object(7)
	a := crc.CRC64NVME
	b := bounds[1]
	right := a.Encode(a.Checksum(data[b[0] : b[0]+b[1]]))
	wrong := a.Encode(a.Checksum(data[b[0]:b[0]+b[1]]) ^ 1)
	for _, tt := range []struct {
		name      string
		tls       bool
		sum       string
		wantRead  int64  // bytes read from the body
		wantCode  string // S3's refusal; "" for none
		wantLocal bool   // refused before sending
	}{
		{"TLSRight", true, right, b[1], "", false},
		{"TLSWrong", true, wrong, b[1], "BadDigest", false},
		{"HTTPRight", false, right, 2 * b[1], "", false},
		{"HTTPWrong", false, wrong, b[1], "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy := newFaultProxy(t, srv.Endpoint, tt.tls)
			hostPort := strings.TrimPrefix(strings.TrimPrefix(proxy.URL, "https://"), "http://")
			st := s3.New(s3.Config{AllowEndpoints: []string{hostPort}, HTTPClient: proxy.Client(), MaxAttempts: 1, Logger: slog.New(slog.DiscardHandler)})
			ctx := context.Background()
			c, err := st.Client(ctx, recsink.Destination{Bucket: bucket, Endpoint: proxy.URL, Region: "us-east-1", ForcePathStyle: true}, owner)
			if err != nil {
				t.Fatal(err)
			}
			key := "rec/known-" + tt.name + ".mkv"
			up, err := c.CreateMultipartUpload(ctx, key, "", nil, recsink.ChecksumCRC64NVME)
			if err != nil {
				t.Fatal(err)
			}
			body := &knownCRC{SectionReader: io.NewSectionReader(bytes.NewReader(data), b[0], b[1]), alg: recsink.ChecksumCRC64NVME, sum: tt.sum}
			p, err := c.UploadPart(ctx, key, up, 2, body, b[1])
			if got := body.read.Load(); got != tt.wantRead {
				t.Errorf("read %d bytes of the body, want %d", got, tt.wantRead)
			}
			var se *recsink.StorageError
			switch {
			case tt.wantLocal:
				if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "as when they were received") {
					t.Fatalf("err = %v, want a local mismatch", err)
				}
				parts, lerr := c.ListParts(ctx, key, up.ID)
				if lerr != nil || len(parts) != 0 {
					t.Errorf("S3 holds %v (%v), want no part", parts, lerr)
				}
			case tt.wantCode != "":
				if !errors.As(err, &se) || se.Code != tt.wantCode {
					t.Fatalf("err = %v, want %s", err, tt.wantCode)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if p.Checksum != right {
					t.Errorf("part checksum %s, want %s", p.Checksum, right)
				}
			}
		})
	}
}
