// Package s3spy is an S3 reverse proxy for tests that records every request
// it passes on, with the local process that sent it, and can hold chosen
// requests back until the test releases them.
//
// Several recsink nodes of one organization share one storage endpoint (it
// is saved per organization, not per node), so a proxy per node cannot tell
// them apart. Instead the proxy names the sender of each connection: on
// Linux, the kernel's socket table (/proc/net/tcp) gives the inode of the
// client's end of the connection, and the process whose file descriptors
// hold that inode is the sender. Only the processes the test tracks are
// searched.
package s3spy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one S3 request that went through the proxy.
type Request struct {
	// PID is the process that opened the connection; 0 when unknown.
	PID int
	// Op is the S3 operation, from the method, the query and the headers:
	// CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
	// AbortMultipartUpload, CopyObject, PutObject, HeadObject, GetObject,
	// ListParts, or Other.
	Op          string
	Method      string
	Bucket, Key string
	UploadID    string
	AccessKeyID string
	// Start is when the request reached the proxy, End when its answer was
	// passed back (after any hold).
	Start, End time.Time
	// Held is how long the proxy held the request back.
	Held time.Duration
	// Status is the HTTP status of the answer, 0 when the upstream call
	// failed; Code the S3 error code in the answer's body, if any (S3 may
	// answer CompleteMultipartUpload and CopyObject 200 with an error).
	Status int
	Code   string
}

// OK reports whether S3 accepted the request.
func (r Request) OK() bool { return r.Status/100 == 2 && r.Code == "" }

// Proxy is a running S3 reverse proxy.
type Proxy struct {
	// Endpoint is the proxy's URL, HostPort its address for an allowlist.
	Endpoint, HostPort string

	srv      *http.Server
	ln       net.Listener
	rp       *httputil.ReverseProxy
	mu       sync.Mutex
	pids     map[int]bool
	requests []Request
	holds    []*Hold
	changed  chan struct{} // closed and replaced on every change
}

type ctxKey struct{}

// MustStart starts a proxy in front of the S3 endpoint target
// (http://host:port) and closes it when tb ends.
func MustStart(tb testing.TB, target string) *Proxy {
	tb.Helper()
	return mustStart(tb, target, nil, nil)
}

// MustStartTLS starts a proxy that serves https with cert, in front of the
// S3 endpoint target (https://host:port) whose certificate roots verify,
// and closes it when tb ends. Its clients speak TLS to it as they would to
// S3 (a cert for 127.0.0.1, such as the server's own, serves any port), so
// that they send what they send over TLS; the proxy sees the requests in
// between, and passes them on over TLS.
func MustStartTLS(tb testing.TB, target string, cert tls.Certificate, roots *x509.CertPool) *Proxy {
	tb.Helper()
	return mustStart(tb, target, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, roots)
}

// mustStart starts a proxy that serves TLS with serve, when set, and
// verifies target's certificate with roots.
func mustStart(tb testing.TB, target string, serve *tls.Config, roots *x509.CertPool) *Proxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatalf("s3spy: target %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	scheme := "http"
	if serve != nil {
		// HTTP/1.1 only (no NextProtos), as versitygw speaks.
		ln, scheme = tls.NewListener(ln, serve), "https"
	}
	p := &Proxy{
		Endpoint: scheme + "://" + ln.Addr().String(),
		HostPort: ln.Addr().String(),
		ln:       ln,
		pids:     map[int]bool{},
		changed:  make(chan struct{}),
	}
	// The Host header is passed on unchanged: the client signed it, and the
	// server checks the signature against it.
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			DisableCompression:  true,
			MaxIdleConnsPerHost: 64,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		},
		// A connection the server dropped is dropped for the client too,
		// as it would be with no proxy in between: a 502 in its place
		// would be an answer that S3 never gave.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			if sw, ok := w.(*sniffer); ok {
				sw.lost = true
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(p.serve),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, ctxKey{}, p.peer(c))
		},
	}
	go p.srv.Serve(ln)
	tb.Cleanup(func() {
		p.ReleaseAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.srv.Shutdown(ctx)
		p.srv.Close()
	})
	return p
}

// Track adds a process whose requests the proxy should name.
func (p *Proxy) Track(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pids[pid] = true
}

func (p *Proxy) peer(c net.Conn) int {
	p.mu.Lock()
	pids := make([]int, 0, len(p.pids))
	for pid := range p.pids {
		pids = append(pids, pid)
	}
	p.mu.Unlock()
	return peerPID(c, pids)
}

// Requests returns a copy of the requests answered so far, in the order
// their answers went back.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

// Count returns how many answered requests match.
func (p *Proxy) Count(match func(Request) bool) int {
	n := 0
	for _, r := range p.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

// Hold holds back the requests that match, from now until Release.
type Hold struct {
	p        *Proxy
	match    func(Request) bool
	released chan struct{}
	once     sync.Once
	mu       sync.Mutex
	caught   []Request
	// reject, when set before released is closed, is the S3 error that
	// the held requests get instead of going on to the server.
	reject *rejection
}

type rejection struct {
	status        int
	code, message string
}

// Hold starts holding back every request for which match holds (it sees
// PID, Op, Method, Bucket, Key, UploadID and AccessKeyID) until Release.
func (p *Proxy) Hold(match func(Request) bool) *Hold {
	h := &Hold{p: p, match: match, released: make(chan struct{})}
	p.mu.Lock()
	p.holds = append(p.holds, h)
	p.mu.Unlock()
	return h
}

// Release lets the held requests go on to the server, and stops holding.
func (h *Hold) Release() {
	h.once.Do(func() {
		close(h.released)
		h.p.mu.Lock()
		for i, o := range h.p.holds {
			if o == h {
				h.p.holds = append(h.p.holds[:i], h.p.holds[i+1:]...)
				break
			}
		}
		h.p.mu.Unlock()
	})
}

// Reject answers the held requests with an S3 error instead of passing
// them on (as S3 answers NoSuchUpload to the completion of an upload that
// another client has completed), and stops holding.
func (h *Hold) Reject(status int, code, message string) {
	h.mu.Lock()
	if h.reject == nil {
		h.reject = &rejection{status, code, message}
	}
	h.mu.Unlock()
	h.Release()
}

// ReleaseAll releases every hold.
func (p *Proxy) ReleaseAll() {
	p.mu.Lock()
	hs := append([]*Hold(nil), p.holds...)
	p.mu.Unlock()
	for _, h := range hs {
		h.Release()
	}
}

// Caught returns the requests the hold has caught so far.
func (h *Hold) Caught() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Request(nil), h.caught...)
}

// WaitCaught waits until the hold has caught at least n requests, and
// fails tb after within.
func (h *Hold) WaitCaught(tb testing.TB, n int, within time.Duration) []Request {
	tb.Helper()
	deadline := time.After(within)
	for {
		h.p.mu.Lock()
		ch := h.p.changed
		h.p.mu.Unlock()
		if c := h.Caught(); len(c) >= n {
			return c
		}
		select {
		case <-ch:
		case <-deadline:
			tb.Fatalf("s3spy: %d requests held after %s, want %d", len(h.Caught()), within, n)
			return nil
		}
	}
}

func (p *Proxy) notify() {
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, req *http.Request) {
	rec := describe(req)
	rec.Start = time.Now()
	rec.PID, _ = req.Context().Value(ctxKey{}).(int)

	p.mu.Lock()
	var hold *Hold
	for _, h := range p.holds {
		if h.match(rec) {
			hold = h
			break
		}
	}
	p.mu.Unlock()
	if hold != nil {
		hold.mu.Lock()
		hold.caught = append(hold.caught, rec)
		hold.mu.Unlock()
		p.notify()
		select {
		case <-hold.released:
		case <-req.Context().Done():
			rec.End = time.Now()
			rec.Held = rec.End.Sub(rec.Start)
			rec.Code = "ClientGone"
			p.record(rec)
			return
		}
		rec.Held = time.Since(rec.Start)
		hold.mu.Lock()
		rej := hold.reject
		hold.mu.Unlock()
		if rej != nil {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(rej.status)
			fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource></Error>", escape(rej.code), escape(rej.message), escape(req.URL.Path))
			rec.End = time.Now()
			rec.Status, rec.Code = rej.status, rej.code
			p.record(rec)
			return
		}
	}

	sw := &sniffer{ResponseWriter: w}
	p.rp.ServeHTTP(sw, req)
	rec.End = time.Now()
	if sw.lost {
		p.record(rec) // Status 0: no answer
		panic(http.ErrAbortHandler)
	}
	rec.Status = sw.status
	rec.Code = errorCode(sw.body.Bytes())
	p.record(rec)
}

func (p *Proxy) record(r Request) {
	p.mu.Lock()
	p.requests = append(p.requests, r)
	p.mu.Unlock()
	p.notify()
}

// sniffer keeps the status and the first bytes of an answer's body, enough
// to find an S3 error code.
type sniffer struct {
	http.ResponseWriter
	lost   bool // the server dropped the connection; nothing was written
	status int
	body   bytes.Buffer
}

func (s *sniffer) WriteHeader(code int) {
	// 1xx answers (100 Continue to an UploadPart) come before the final one.
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *sniffer) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if n := 4096 - s.body.Len(); n > 0 {
		s.body.Write(b[:min(n, len(b))])
	}
	return s.ResponseWriter.Write(b)
}

func (s *sniffer) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func errorCode(body []byte) string {
	if !bytes.Contains(body, []byte("<Error")) {
		return ""
	}
	var e struct {
		Code string `xml:"Code"`
	}
	if err := xml.Unmarshal(body, &e); err != nil || e.Code == "" {
		return "Error"
	}
	return e.Code
}

func escape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// describe names the S3 operation of a path-style request.
func describe(req *http.Request) Request {
	r := Request{Method: req.Method}
	path := strings.TrimPrefix(req.URL.Path, "/")
	r.Bucket, r.Key, _ = strings.Cut(path, "/")
	q := req.URL.Query()
	r.UploadID = q.Get("uploadId")
	if auth := req.Header.Get("Authorization"); auth != "" {
		if _, rest, ok := strings.Cut(auth, "Credential="); ok {
			r.AccessKeyID, _, _ = strings.Cut(rest, "/")
		}
	}
	switch {
	case req.Method == "POST" && q.Has("uploads"):
		r.Op = "CreateMultipartUpload"
	case req.Method == "POST" && q.Has("uploadId"):
		r.Op = "CompleteMultipartUpload"
	case req.Method == "PUT" && q.Has("partNumber") && q.Has("uploadId"):
		r.Op = "UploadPart"
	case req.Method == "DELETE" && q.Has("uploadId"):
		r.Op = "AbortMultipartUpload"
	case req.Method == "GET" && q.Has("uploadId"):
		r.Op = "ListParts"
	case req.Method == "PUT" && r.Key != "" && req.Header.Get("X-Amz-Copy-Source") != "":
		r.Op = "CopyObject"
	case req.Method == "PUT" && r.Key != "":
		r.Op = "PutObject"
	case req.Method == "HEAD" && r.Key != "":
		r.Op = "HeadObject"
	case req.Method == "GET" && r.Key != "":
		r.Op = "GetObject"
	default:
		r.Op = "Other"
	}
	return r
}

var _ http.Flusher = (*sniffer)(nil)
