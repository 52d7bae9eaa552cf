package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/s3"
)

// newStorage returns a Storage that allows the test server's endpoint.
func newStorage(allow ...string) *s3.Storage {
	return s3.New(s3.Config{AllowEndpoints: allow, Logger: slog.New(slog.DiscardHandler)})
}

func TestStorage_Check(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	other := srv.CreateUser(t, "user") // owns nothing, named by no policy
	deleted := srv.CreateUser(t, "user")
	srv.DeleteUser(t, deleted.ID)

	closed := closedPort(t)
	st := newStorage(srv.HostPort, closed)
	dest := recsink.Destination{Bucket: bucket, Prefix: "rec/room", Endpoint: srv.Endpoint, ForcePathStyle: true}

	// want is the first failed check, or "" for success.
	type want = checkWant
	for _, tt := range []struct {
		name string
		dest func(recsink.Destination) recsink.Destination
		key  recsink.AccessKey
		want want
	}{
		{name: "OK", key: owner},
		{name: "OKNoPrefix", key: owner, dest: func(d recsink.Destination) recsink.Destination { d.Prefix = ""; return d }},
		{
			name: "ErrSignatureDoesNotMatch",
			key:  recsink.AccessKey{ID: owner.ID, Secret: owner.Secret + "x"},
			want: want{"HeadBucket", "SignatureDoesNotMatch", "The access secret is wrong"},
		},
		{
			name: "ErrInvalidAccessKeyId",
			key:  deleted,
			want: want{"HeadBucket", "InvalidAccessKeyId", "S3 does not know this access key ID"},
		},
		{
			// HeadBucket's bare 403 is explained by PutObject's code; the
			// PutObject line names the permission it lacks.
			name: "ErrAccessDenied",
			key:  other,
			want: want{"HeadBucket", "AccessDenied", "s3:ListBucket"},
		},
		{
			name: "ErrNoSuchBucket",
			key:  owner,
			dest: func(d recsink.Destination) recsink.Destination { d.Bucket = "recsink-missing-bucket"; return d },
			want: want{"HeadBucket", "NoSuchBucket", "The bucket does not exist"},
		},
		{
			name: "ErrEndpointDown",
			key:  owner,
			dest: func(d recsink.Destination) recsink.Destination { d.Endpoint = "http://" + closed; return d },
			want: want{"HeadBucket", "", "The storage endpoint does not answer"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := dest
			if tt.dest != nil {
				d = tt.dest(d)
			}
			start := time.Now()
			report, err := st.Check(context.Background(), d, tt.key)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Check took %v, want an answer within 5s", took)
			}
			logReport(t, report)
			if report.Region != "us-east-1" {
				t.Errorf("Region = %q, want us-east-1", report.Region)
			}
			wantNames := []string{"Endpoint", "HeadBucket", "PutObject", "DeleteObject", "CreateMultipartUpload", "AbortMultipartUpload"}
			if got := checkNames(report); strings.Join(got, ",") != strings.Join(wantNames, ",") {
				t.Fatalf("checks = %v, want %v", got, wantNames)
			}
			if !mustReport(t, report, tt.want, func() []string { return srv.ListObjects(t, d.Bucket, "") }) {
				return
			}
			if strings.Contains(fmt.Sprintf("%+v", report), tt.key.Secret) {
				t.Error("report contains the secret")
			}
		})
	}

	t.Run("ErrAccessDeniedNamesPutObject", func(t *testing.T) {
		t.Parallel()
		report, err := st.Check(context.Background(), dest, other)
		if err != nil {
			t.Fatal(err)
		}
		put := find(report, "PutObject")
		if put.OK || put.Skipped || put.Code != "AccessDenied" || put.Permission != "s3:PutObject" || !strings.Contains(put.Message, "s3:PutObject") {
			t.Errorf("PutObject = %+v, want AccessDenied naming s3:PutObject", put)
		}
		if c := find(report, "DeleteObject"); !c.Skipped {
			t.Errorf("DeleteObject = %+v, want skipped", c)
		}
	})

	t.Run("ErrEndpointNotAllowed", func(t *testing.T) {
		t.Parallel()
		// A listener of our own stands for the endpoint: it must see no
		// connection at all.
		l := newStrayListener(t)
		d := dest
		d.Endpoint = "http://" + l.Addr().String()
		report, err := st.Check(context.Background(), d, owner)
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, report)
		wantMsg := "endpoint " + l.Addr().String() + " is not allowed on this recsink server; the operator allows custom endpoints with --allow-endpoint"
		if c := report.Checks[0]; c.Name != "Endpoint" || c.OK || c.Message != wantMsg {
			t.Errorf("first check = %+v, want Endpoint failed with %q", c, wantMsg)
		}
		for _, c := range report.Checks[1:] {
			if !c.Skipped {
				t.Errorf("%s not skipped", c.Name)
			}
		}
		if report.OK {
			t.Error("report OK")
		}
		_, err = st.Client(context.Background(), d, owner)
		var e *recsink.Error
		if !errors.As(err, &e) || e.Code != recsink.EFORBIDDEN || e.Field != "endpoint" || e.Message != wantMsg {
			t.Errorf("Client error = %v, want EFORBIDDEN on endpoint", err)
		}
		if n := l.strays(t); n != 0 {
			t.Errorf("the endpoint accepted %d connections, want none", n)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := st.Check(ctx, dest, owner)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestClient_MultipartRoundTrip(t *testing.T) {
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

	const key = "rec/room/recording.mkv"
	data := make([]byte, 5<<20+1234)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	// The spool file holds more than the parts, as it does while recording.
	spool := bytes.NewReader(append(bytes.Clone(data), "not part of the object"...))

	id, err := c.CreateMultipartUpload(ctx, key, dest.ContentType(), map[string]string{"recording-id": "rec_1"})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int64{5 << 20, 1234}
	var parts []recsink.Part
	var offset int64
	for i, size := range sizes {
		n := int32(i + 1)
		part, err := c.UploadPart(ctx, key, id, n, io.NewSectionReader(spool, offset, size), size)
		if err != nil {
			t.Fatalf("UploadPart %d: %v", n, err)
		}
		part.Offset = offset
		parts = append(parts, part)
		offset += size
	}
	listed, err := c.ListParts(ctx, key, id.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(parts) {
		t.Fatalf("ListParts = %+v, want %+v", listed, parts)
	}
	for i := range parts {
		if listed[i] != parts[i] {
			t.Errorf("part %d = %+v, want %+v", i+1, listed[i], parts[i])
		}
	}
	// Complete sorts the parts.
	if _, err := c.CompleteMultipartUpload(ctx, key, id, []recsink.Part{parts[1], parts[0]}, ""); err != nil {
		t.Fatal(err)
	}
	size, meta, err := c.HeadObject(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(data)) || meta["recording-id"] != "rec_1" {
		t.Errorf("HeadObject = %d, %v; want %d, recording-id rec_1", size, meta, len(data))
	}
	if got := srv.GetObject(t, bucket, key); !bytes.Equal(got, data) {
		t.Error("object differs from the parts uploaded")
	}
	if err := c.DeleteObject(ctx, key); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.HeadObject(ctx, key)
	var se *recsink.StorageError
	if !errors.As(err, &se) || se.StatusCode != 404 || se.Op != "HeadObject" {
		t.Errorf("HeadObject after delete: %v, want a 404 StorageError", err)
	}

	t.Run("AbortAndPutObject", func(t *testing.T) {
		id, err := c.CreateMultipartUpload(ctx, key, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AbortMultipartUpload(ctx, key, id.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.ListParts(ctx, key, id.ID)
		if !errors.As(err, &se) || se.Code != "NoSuchUpload" {
			t.Errorf("ListParts after abort: %v, want NoSuchUpload", err)
		}
		if err := c.PutObject(ctx, "small.txt", "text/plain", nil, strings.NewReader("hello, and more"), 5); err != nil {
			t.Fatal(err)
		}
		if got := srv.GetObject(t, bucket, "small.txt"); string(got) != "hello" {
			t.Errorf("object = %q, want hello", got)
		}
	})
}

// TestClient_UploadPartRetry proves that the SDK's retries of a part resend
// the same bytes, after a server error and after a dropped connection; in
// an upload with a checksum, with the part's CRC and, over plain HTTP, the
// payload hash computed in the same read, both right for the bytes.
func TestClient_UploadPartRetry(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		fault    string
		checksum recsink.ChecksumAlgorithm
	}{{"500", ""}, {"drop", ""}, {"500", recsink.ChecksumCRC64NVME}, {"drop", recsink.ChecksumCRC32C}} {
		fault := tt.fault
		t.Run(fault+string(tt.checksum), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var bodies [][]byte
			var headers []http.Header
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, body)
				headers = append(headers, r.Header.Clone())
				n := len(bodies)
				mu.Unlock()
				if r.Method != http.MethodPut || r.URL.Query().Get("partNumber") != "3" || r.URL.Query().Get("uploadId") != "up1" {
					http.Error(w, "unexpected request "+r.Method+" "+r.URL.String(), http.StatusBadRequest)
					return
				}
				if n == 1 {
					switch fault {
					case "500":
						w.WriteHeader(http.StatusInternalServerError)
						io.WriteString(w, `<Error><Code>InternalError</Code><Message>try again</Message></Error>`)
					case "drop":
						conn, _, err := w.(http.Hijacker).Hijack()
						if err == nil {
							conn.Close()
						}
					}
					return
				}
				w.Header().Set("ETag", `"etag-3"`)
			}))
			defer ts.Close()

			st := newStorage(strings.TrimPrefix(ts.URL, "http://"))
			c, err := st.Client(context.Background(), recsink.Destination{Bucket: "b", Endpoint: ts.URL, Region: "us-east-1", ForcePathStyle: true},
				recsink.AccessKey{ID: "AKID", Secret: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			spool := make([]byte, 1<<20)
			for i := range spool {
				spool[i] = byte(i % 253)
			}
			const off, size = 1000, 300000
			part, err := c.UploadPart(context.Background(), "k", recsink.Upload{ID: "up1", Checksum: tt.checksum}, 3, io.NewSectionReader(bytes.NewReader(spool), off, size), size)
			if err != nil {
				t.Fatalf("UploadPart: %v", err)
			}
			if part.ETag != `"etag-3"` {
				t.Errorf("etag = %s", part.ETag)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bodies) != 2 {
				t.Fatalf("server saw %d requests, want 2", len(bodies))
			}
			want := spool[off : off+size]
			sha := sha256.Sum256(want)
			for i, b := range bodies {
				if !bytes.Equal(b, want) {
					t.Errorf("attempt %d sent %d bytes, not the part's %d bytes", i+1, len(b), size)
				}
				if got := headers[i].Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sha[:]) {
					t.Errorf("attempt %d: payload hash %s, want the part's SHA-256", i+1, got)
				}
				if tt.checksum == "" {
					continue
				}
				a := crc.ByName(string(tt.checksum))
				if got := headers[i].Get("X-Amz-Checksum-" + string(tt.checksum)); got != a.Encode(a.Checksum(want)) || got != part.Checksum {
					t.Errorf("attempt %d: %s header %q, want %q (part says %q)", i+1, tt.checksum, got, a.Encode(a.Checksum(want)), part.Checksum)
				}
			}
		})
	}
}

func TestClient_ListPartsPages(t *testing.T) {
	t.Parallel()
	// Three pages of two parts each, as S3 sends them with max-parts=2.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		marker := r.URL.Query().Get("part-number-marker")
		first := map[string]int{"": 1, "2": 3, "4": 5}[marker]
		if first == 0 {
			http.Error(w, "bad marker "+marker, http.StatusBadRequest)
			return
		}
		truncated := first < 5
		fmt.Fprintf(w, `<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>up</UploadId><IsTruncated>%t</IsTruncated><NextPartNumberMarker>%d</NextPartNumberMarker>`, truncated, first+1)
		for n := first; n <= first+1; n++ {
			fmt.Fprintf(w, `<Part><PartNumber>%d</PartNumber><ETag>"e%d"</ETag><Size>%d</Size></Part>`, n, n, 100*n)
		}
		io.WriteString(w, `</ListPartsResult>`)
	}))
	defer ts.Close()
	st := newStorage(strings.TrimPrefix(ts.URL, "http://"))
	c, err := st.Client(context.Background(), recsink.Destination{Bucket: "b", Endpoint: ts.URL, Region: "us-east-1", ForcePathStyle: true},
		recsink.AccessKey{ID: "AKID", Secret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	parts, err := c.ListParts(context.Background(), "k", "up")
	if err != nil {
		t.Fatal(err)
	}
	var offset int64
	for i, p := range parts {
		n := int32(i + 1)
		want := recsink.Part{Number: n, Offset: offset, Size: int64(100 * n), ETag: fmt.Sprintf(`"e%d"`, n)}
		if p != want {
			t.Errorf("part %d = %+v, want %+v", n, p, want)
		}
		offset += want.Size
	}
	if len(parts) != 6 {
		t.Errorf("got %d parts, want 6", len(parts))
	}
}

func TestClient_Canceled(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer ts.Close()
	defer close(release)
	st := newStorage(strings.TrimPrefix(ts.URL, "http://"))
	c, err := st.Client(context.Background(), recsink.Destination{Bucket: "b", Endpoint: ts.URL, Region: "us-east-1", ForcePathStyle: true},
		recsink.AccessKey{ID: "AKID", Secret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.UploadPart(ctx, "k", recsink.Upload{ID: "up"}, 1, strings.NewReader("data"), 4)
	var se *recsink.StorageError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
		t.Errorf("err = %v, want the context's error and no StorageError", err)
	}
}

// TestStorage_SecretNeverShown makes every kind of failure and looks for the
// secret in everything a user or a log could see.
func TestStorage_SecretNeverShown(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	st := newStorage(srv.HostPort)
	ctx := context.Background()
	dest := recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true}
	bad := recsink.AccessKey{ID: owner.ID, Secret: "SECRETdoNotPrint0123456789abcdefghijklmn"}

	c, err := st.Client(ctx, dest, bad)
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	_, err = c.CreateMultipartUpload(ctx, "k", "", nil)
	_, _, herr := c.HeadObject(ctx, "k")
	perr := c.PutObject(ctx, "k", "", nil, strings.NewReader("x"), 1)
	for _, err := range []error{err, herr, perr} {
		if err == nil {
			t.Fatal("a request with a wrong secret succeeded")
		}
		shown = append(shown, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), recsink.ErrorMessage(err))
	}
	var se *recsink.StorageError
	if !errors.As(perr, &se) || se.Code != "SignatureDoesNotMatch" || !se.KeyRefused() {
		t.Errorf("PutObject: %v, want SignatureDoesNotMatch", perr)
	}
	report, err := st.Check(ctx, dest, bad)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(report)
	shown = append(shown, string(js), (&recsink.CheckError{Report: report}).Error())
	for _, s := range shown {
		if strings.Contains(s, bad.Secret) {
			t.Errorf("shown text contains the secret: %s", s)
		}
	}
}

// closedPort returns a loopback host:port that refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func logReport(t *testing.T, r *recsink.CheckReport) {
	t.Helper()
	b, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("report: %s", b)
}

func checkNames(r *recsink.CheckReport) []string {
	var names []string
	for _, c := range r.Checks {
		names = append(names, c.Name)
	}
	return names
}

// checkWant is what a storage check should report: the name, S3 code and
// part of the message of its first failed check; all empty for a report
// that passes.
type checkWant struct{ name, code, message string }

// mustReport fails t unless report is what want says: a passing report
// with the CRC64NVME checksum (which both test servers take) that left no
// probe object behind (list lists the bucket), or a failing one whose
// first failure is want. It reports whether the report failed, for the
// caller's further checks of a failure.
func mustReport(t *testing.T, report *recsink.CheckReport, want checkWant, list func() []string) (failing bool) {
	t.Helper()
	failed := firstFailed(report)
	if want.name == "" {
		if !report.OK || failed != nil {
			t.Fatalf("report not OK: first failure %+v", failed)
		}
		if report.Checksum != recsink.ChecksumCRC64NVME {
			t.Errorf("Checksum = %q, want CRC64NVME", report.Checksum)
		}
		if keys := list(); len(keys) != 0 {
			t.Errorf("probe objects left behind: %v", keys)
		}
		return false
	}
	if report.OK || failed == nil {
		t.Fatal("report OK, want a failure")
	}
	if failed.Name != want.name || failed.Code != want.code || !strings.Contains(failed.Message, want.message) {
		t.Errorf("first failure = %+v, want %s %q containing %q", failed, want.name, want.code, want.message)
	}
	return true
}

func firstFailed(r *recsink.CheckReport) *recsink.Check {
	for i, c := range r.Checks {
		if !c.OK && !c.Skipped {
			return &r.Checks[i]
		}
	}
	return nil
}

func find(r *recsink.CheckReport, name string) recsink.Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return recsink.Check{}
}
