package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/internal/s3test"
)

// headChecksum asks srv for the object's checksum as
// `aws s3api head-object --checksum-mode ENABLED` does, and returns it as
// "ALGORITHM:value", or "" when the server names none.
func headChecksum(tb testing.TB, srv s3test.Backend, key recsink.AccessKey, bucket, object string) string {
	tb.Helper()
	out, err := srv.S3Client(tb, key).HeadObject(context.Background(), &awss3.HeadObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(object), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		tb.Fatalf("head-object --checksum-mode ENABLED %s: %v", object, err)
	}
	for alg, v := range map[string]*string{"CRC64NVME": out.ChecksumCRC64NVME, "CRC32C": out.ChecksumCRC32C, "CRC32": out.ChecksumCRC32} {
		if v != nil {
			return alg + ":" + *v
		}
	}
	return ""
}

// checkChecksums checks that the recording reports the checksum that S3
// reports for the object, that it is the CRC of data, and that sha256 is
// data's.
func checkChecksums(tb testing.TB, e *Env, rec map[string]any, data []byte) string {
	tb.Helper()
	got, _ := rec["checksum"].(string)
	if _, _, ok := strings.Cut(got, ":"); !ok {
		tb.Fatalf("recording reports checksum %q, want ALGORITHM:value", got)
	}
	if head := headChecksum(tb, e.S3, e.Key, e.Bucket, rec["objectKey"].(string)); head != got {
		tb.Errorf("head-object --checksum-mode ENABLED says %q; the recording reports %q", head, got)
	}
	checkCRC(tb, got, data)
	sum := sha256.Sum256(data)
	if rec["sha256"] != hex.EncodeToString(sum[:]) {
		tb.Errorf("sha256 %v, want %x", rec["sha256"], sum)
	}
	return got
}

// checkCRC checks that checksum, "ALGORITHM:value", is the CRC of data.
func checkCRC(tb testing.TB, checksum string, data []byte) {
	tb.Helper()
	alg, value, _ := strings.Cut(checksum, ":")
	a := crc.ByName(alg)
	if a == nil || a.Encode(a.Checksum(data)) != value {
		tb.Errorf("checksum %q is not the %s of the object's %d bytes", checksum, alg, len(data))
	}
}

// TestRecording_FullObjectChecksum: a recording of three parts is completed
// with a full-object checksum that S3 verified; the recording reports
// exactly what head-object --checksum-mode ENABLED returns, and
// recording.finished carries it.
func TestRecording_FullObjectChecksum(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 13*mib+5)
	rec.MustPut(t, data)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
	sum := checkChecksums(t, e, out, data)
	t.Logf("recording and head-object report %s", sum)
	// No copy of the object onto itself any more: one ObjectCreated, one
	// ETag, and no s3:GetObject needed.
	if strings.Contains(e.Main.Logs.String(), "CopyObject") {
		t.Error("the object was copied onto itself")
	}
}

// corruptProxy stands between recsink and versitygw and flips one byte in
// the body of the first upload of part 2: S3 refuses it (BadDigest, or the
// payload hash over plain HTTP), recsink sends it again.
type corruptProxy struct {
	*httptest.Server
	mu      sync.Mutex
	flipped int
	sent    map[string]int // partNumber → uploads seen
}

func newCorruptProxy(tb testing.TB, target string) *corruptProxy {
	u, _ := url.Parse(target)
	p := &corruptProxy{sent: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host // signed by SigV4
		},
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := r.URL.Query().Get("partNumber"); r.Method == "PUT" && n != "" {
			p.mu.Lock()
			p.sent[n]++
			flip := n == "2" && p.flipped == 0
			if flip {
				p.flipped++
			}
			p.mu.Unlock()
			if flip {
				r.Body = &flipReader{r: r.Body, at: 1000}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	tb.Cleanup(p.Close)
	return p
}

// flipReader inverts the byte at offset at.
type flipReader struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		p[i] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// TestRecording_PartCorruptedInTransit: one byte of part 2 is flipped on
// the way to S3. S3 refuses the part, recsink sends it again from the
// spool, and the object completes byte-identical with the checksum S3
// verified.
func TestRecording_PartCorruptedInTransit(t *testing.T) {
	t.Parallel()
	s3 := MustStartS3(t)
	proxy := newCorruptProxy(t, s3.Endpoint)
	e := mustEnvThrough(t, s3, proxy.URL)
	rec := MustStartRecording(t, e.Org, e.MustMeeting(t, e.Org))
	data := randomBytes(t, 12*mib+3)
	rec.MustPut(t, data)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, s3, e.Bucket, rec.ObjectKey, data)
	sum := checkChecksums(t, e, out, data)
	proxy.mu.Lock()
	flipped, sent := proxy.flipped, proxy.sent["2"]
	proxy.mu.Unlock()
	if flipped != 1 || sent < 2 {
		t.Fatalf("part 2: %d bytes flipped, sent %d times; want one flip and the part sent again", flipped, sent)
	}
	t.Logf("part 2 corrupted once in transit, sent %d times; object byte-identical, checksum %s", sent, sum)
}
