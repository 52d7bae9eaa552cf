package s3_test

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/s3"
)

// testFloor is the ResponseHeaderTimeout of the hanging-endpoint tests.
const testFloor = 500 * time.Millisecond

// hangServer accepts TCP connections and never answers. With drain it reads
// everything it is sent; without, it reads nothing.
type hangServer struct {
	t     *testing.T
	l     net.Listener
	drain bool

	mu     sync.Mutex
	conns  []net.Conn
	closed []chan struct{} // closed when the peer closed that connection (drain only)
}

// MustHang starts a hangServer for t.
func MustHang(t *testing.T, drain bool) *hangServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangServer{t: t, l: l, drain: drain}
	t.Cleanup(func() {
		l.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			done := make(chan struct{})
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.closed = append(h.closed, done)
			h.mu.Unlock()
			if drain {
				go func() {
					io.Copy(io.Discard, c)
					close(done)
				}()
			}
		}
	}()
	return h
}

func (h *hangServer) HostPort() string { return h.l.Addr().String() }

// MustAllClosed checks that the client closed every connection it opened,
// within wait, and that there was exactly want of them.
func (h *hangServer) MustAllClosed(t *testing.T, want int, wait time.Duration) {
	t.Helper()
	h.mu.Lock()
	conns, closed := append([]net.Conn(nil), h.conns...), append([]chan struct{}(nil), h.closed...)
	h.mu.Unlock()
	if len(conns) != want {
		t.Errorf("server accepted %d connections, want %d", len(conns), want)
	}
	deadline := time.Now().Add(wait)
	for i, c := range conns {
		if h.drain {
			select {
			case <-closed[i]:
			case <-time.After(time.Until(deadline)):
				t.Errorf("connection %d still open %v after the call failed", i+1, wait)
			}
			continue
		}
		// Reading what the client left in the socket ends with EOF or a
		// reset once the client closed it; a timeout means it is open.
		c.SetReadDeadline(deadline)
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("connection %d still open %v after the call failed", i+1, wait)
		}
	}
}

// mustTimeout checks that err is the Timeout StorageError of op after
// deadline, and that it came in time.
func mustTimeout(t *testing.T, err error, op string, deadline, took time.Duration) {
	t.Helper()
	var se *recsink.StorageError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *recsink.StorageError", err)
	}
	if se.Code != "Timeout" || se.StatusCode != 0 || se.Op != op || se.Deadline != deadline {
		t.Errorf("StorageError = %+v, want Op %s, Code Timeout, StatusCode 0, Deadline %v", se, op, deadline)
	}
	want := "the storage endpoint accepted the connection but did not answer within 1 s"
	if got := se.Explain(); got != want {
		t.Errorf("Explain() = %q, want %q", got, want)
	}
	if got := recsink.ErrorMessage(err); got != want {
		t.Errorf("ErrorMessage = %q, want %q", got, want)
	}
	if !se.Retryable() || se.KeyRefused() || recsink.ErrorCode(err) != recsink.EDESTINATION {
		t.Errorf("Retryable %v, KeyRefused %v, code %s; want retryable, not the key, EDESTINATION", se.Retryable(), se.KeyRefused(), recsink.ErrorCode(err))
	}
	// One attempt of the deadline, plus dialing and scheduling slack on a
	// loaded machine: the SDK does not retry a timeout.
	if took < deadline || took > deadline+3*time.Second {
		t.Errorf("the call took %v, want about %v", took, deadline)
	}
	t.Logf("%s failed after %v (deadline %v): %v", op, took.Round(time.Millisecond), deadline, err)
}

// TestClient_HangingEndpoint makes calls to endpoints that accept the
// connection and never answer, in every phase of a request, and checks
// that each fails within its deadline as a Timeout and that its connection
// was closed.
func TestClient_HangingEndpoint(t *testing.T) {
	t.Parallel()
	opts := s3.Options{ResponseHeaderTimeout: testFloor, TLSHandshakeTimeout: testFloor}
	part := bytes.Repeat([]byte("recsink "), 512<<10) // 4 MiB

	// The calls' own context ends after 10 s, so that a call that the
	// watchdog fails to cut fails the test quickly (with the context's
	// error, not a StorageError) instead of hanging it.
	type call func(ctx context.Context, c recsink.StorageClient) (string, error)
	head := func(ctx context.Context, c recsink.StorageClient) (string, error) {
		_, _, err := c.HeadObject(ctx, "k")
		return "HeadObject", err
	}
	upload := func(ctx context.Context, c recsink.StorageClient) (string, error) {
		_, err := c.UploadPart(ctx, "k", recsink.Upload{ID: "up"}, 1, bytes.NewReader(part), int64(len(part)))
		return "UploadPart", err
	}
	for _, tt := range []struct {
		name   string
		drain  bool
		scheme string
		call   call
	}{
		{"HeadSilent", false, "http", head},
		{"HeadDrained", true, "http", head},
		{"UploadPartSilent", false, "http", upload},    // the body fills the socket buffers, then stalls
		{"UploadPartDrained", true, "http", upload},    // the body is all sent, no answer
		{"TLSHandshakeSilent", false, "https", head},   // TCP accepted, no TLS
		{"TLSHandshakeDrained", true, "https", upload}, // the ClientHello is read, no answer
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := MustHang(t, tt.drain)
			st := s3.New(s3.Config{AllowEndpoints: []string{h.HostPort()}, Logger: slog.New(slog.DiscardHandler), Options: opts})
			c, err := st.Client(context.Background(), recsink.Destination{Bucket: "b", Endpoint: tt.scheme + "://" + h.HostPort(), Region: "us-east-1", ForcePathStyle: true},
				recsink.AccessKey{ID: "AKID", Secret: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			op, err := tt.call(ctx, c)
			mustTimeout(t, err, op, testFloor, time.Since(start))
			h.MustAllClosed(t, 1, 2*time.Second)
		})
	}
}

// TestClient_StalledResponse answers with headers and part of a body, then
// stalls: the read of the body is cut and the connection closed.
func TestClient_StalledResponse(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, `<ListPartsResult><Bucket>b</Bucket>`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done(): // the client closed the connection
			closed <- struct{}{}
		case <-time.After(30 * time.Second):
		}
	}))
	defer ts.Close()
	st := s3.New(s3.Config{AllowEndpoints: []string{strings.TrimPrefix(ts.URL, "http://")}, Logger: slog.New(slog.DiscardHandler),
		Options: s3.Options{ResponseHeaderTimeout: testFloor}})
	c, err := st.Client(context.Background(), recsink.Destination{Bucket: "b", Endpoint: ts.URL, Region: "us-east-1", ForcePathStyle: true},
		recsink.AccessKey{ID: "AKID", Secret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.ListParts(ctx, "k", "up")
	mustTimeout(t, err, "ListParts", testFloor, time.Since(start))
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Error("the server did not see the connection closed within 2s of the failure")
	}
}

// TestDeadlineTransport_Trickle sends a body that moves often enough for the
// idle clock but far below the minimum rate: the attempt's deadline, scaled
// to the body, cuts it.
func TestDeadlineTransport_Trickle(t *testing.T) {
	t.Parallel()
	closed := make(chan error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		closed <- err
	}))
	defer ts.Close()
	const size = 64 << 10
	o := s3.Options{ResponseHeaderTimeout: 200 * time.Millisecond, MinTransferRate: 256 << 10}
	deadline := o.AttemptTimeout(size, 0) // 200ms + 250ms
	if deadline != 450*time.Millisecond {
		t.Fatalf("AttemptTimeout = %v, want 450ms", deadline)
	}
	hc := &http.Client{Transport: s3.NewDeadlineTransport(&http.Transport{}, o)}
	req, err := http.NewRequest(http.MethodPut, ts.URL, &trickle{left: size, every: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	start := time.Now()
	resp, err := hc.Do(req)
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a trickled body of 64 KiB at 50 KiB/s went through; want it cut after 450ms")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), "within 450ms") {
		t.Errorf("err = %v, want the attempt's timeout after 450ms", err)
	}
	if took < deadline || took > deadline+2*time.Second {
		t.Errorf("cut after %v, want about %v", took, deadline)
	}
	select {
	case err := <-closed:
		if err == nil {
			t.Error("the server read the whole body")
		}
	case <-time.After(2 * time.Second):
		t.Error("the server did not see the connection closed")
	}
	t.Logf("trickle cut after %v (deadline %v): %v", took.Round(time.Millisecond), deadline, err)
}

// trickle yields 1 KiB every tick.
type trickle struct {
	left  int
	every time.Duration
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	n := min(len(p), 1024, r.left)
	r.left -= n
	return n, nil
}

// TestClient_TightDeadlinesOnRealServer runs a multipart upload against
// versitygw with deadlines far tighter than the defaults: a server that
// answers is never cut.
func TestClient_TightDeadlinesOnRealServer(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	owner := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, owner.ID)
	st := s3.New(s3.Config{AllowEndpoints: []string{srv.HostPort}, Logger: slog.New(slog.DiscardHandler),
		Options: s3.Options{ResponseHeaderTimeout: 2 * time.Second, MinTransferRate: 1 << 20, MinCopyRate: 4 << 20}})
	ctx := context.Background()
	c, err := st.Client(ctx, recsink.Destination{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true}, owner)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7, 1, 2, 9}, 3<<20) // 12 MiB: parts of 6 MiB
	id, err := c.CreateMultipartUpload(ctx, "big.mkv", "video/x-matroska", nil)
	if err != nil {
		t.Fatal(err)
	}
	var parts []recsink.Part
	for i := range 2 {
		n, off, size := int32(i+1), int64(i)*6<<20, int64(6<<20)
		part, err := c.UploadPart(ctx, "big.mkv", id, n, bytes.NewReader(data[off:off+size]), size)
		if err != nil {
			t.Fatalf("UploadPart %d: %v", n, err)
		}
		parts = append(parts, part)
	}
	if _, err := c.CompleteMultipartUpload(ctx, "big.mkv", id, parts, ""); err != nil {
		t.Fatal(err)
	}
	if got := srv.GetObject(t, bucket, "big.mkv"); !bytes.Equal(got, data) {
		t.Error("object differs from the parts uploaded")
	}
}

// TestStorage_CheckHangingEndpoint checks a destination whose endpoint
// accepts connections and never answers: the user gets the plain reason on
// the first check within the deadline, not a hung request.
func TestStorage_CheckHangingEndpoint(t *testing.T) {
	t.Parallel()
	h := MustHang(t, true)
	st := s3.New(s3.Config{AllowEndpoints: []string{h.HostPort()}, Logger: slog.New(slog.DiscardHandler), Options: s3.Options{ResponseHeaderTimeout: testFloor}})
	start := time.Now()
	report, err := st.Check(context.Background(), recsink.Destination{Bucket: "b", Endpoint: "http://" + h.HostPort(), ForcePathStyle: true},
		recsink.AccessKey{ID: "AKID", Secret: "secret"})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	head := find(report, "HeadBucket")
	want := "the storage endpoint accepted the connection but did not answer within 1 s"
	if report.OK || head.OK || head.Code != "Timeout" || head.Message != want {
		t.Errorf("HeadBucket = %+v, want Timeout %q", head, want)
	}
	if c := find(report, "PutObject"); !c.Skipped {
		t.Errorf("PutObject = %+v, want skipped", c)
	}
	if took > testFloor+3*time.Second {
		t.Errorf("Check took %v, want about %v", took, testFloor)
	}
	h.MustAllClosed(t, 1, 2*time.Second)
}
