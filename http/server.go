package http

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/redact"
)

// Server serves the REST API. Set the services and options after NewServer
// and before serving requests.
type Server struct {
	OrganizationService recsink.OrganizationService
	StorageService      recsink.StorageService
	MeetingService      recsink.MeetingService
	RecordingService    recsink.RecordingService
	IngestService       recsink.IngestService
	// WebhookService serves /v1/webhooks; when nil those routes answer 501.
	WebhookService recsink.WebhookService
	// AuditService records every change made through the API and serves
	// GET /v1/audit; when nil nothing is recorded and that route answers 501.
	AuditService recsink.AuditService
	// StreamKeyService serves the rooms' stream keys; when nil those routes
	// answer 501. RTMPAddr and SRTAddr are the live listeners' addresses,
	// for the publish URLs ("" when off).
	StreamKeyService recsink.StreamKeyService
	RTMPAddr         string
	SRTAddr          string
	// WHIP, when set, adds the WHIP endpoint (POST /v1/whip, the stream key
	// as Bearer token) to the publish URLs.
	WHIP bool
	// Logger receives the request log and internal errors; nil means
	// slog.Default().
	Logger *slog.Logger

	// PublicURL is the base URL recorders use for ingest (for example
	// "http://127.0.0.1:8080"); when empty it is derived from the request's
	// Host.
	PublicURL string

	// OIDCIssuer and OIDCAudience are recsink's own identity provider's URL
	// and audience, for GET /v1/storage/role-setup; empty issuer: 501.
	OIDCIssuer, OIDCAudience string

	// MaxDuration is the longest a recording may run. Reported nowhere yet.
	MaxDuration time.Duration

	// ReadTimeout bounds reading a whole request, headers and body, on every
	// route but ingest; WriteTimeout bounds writing a response, from its
	// first byte. Zero means DefaultReadTimeout and DefaultWriteTimeout.
	// See HTTPServer.
	ReadTimeout, WriteTimeout time.Duration
	// IngestIdleTimeout is how long an ingest body may send nothing before
	// it is cut (the bytes before stay acknowledged); the deadline rolls on
	// with every read that returns bytes. Zero means
	// DefaultIngestIdleTimeout.
	IngestIdleTimeout time.Duration

	// APIRate limits each organization API key to this many requests per
	// second, with bursts of APIBurst: more answer 429 with Retry-After and
	// Whereby's body. Zero turns the limit off. Ingest is never limited.
	// Set before serving.
	APIRate  float64
	APIBurst int

	limiterOnce sync.Once
	limiter     *rateLimiter // nil when APIRate is zero

	mux      *http.ServeMux
	patterns map[string]bool // the API's own patterns, as registered
	logOnce  sync.Once
	log      *slog.Logger
}

// Server limits, for requests and connections.
const (
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIngestIdleTimeout = 30 * time.Second
	// ReadHeaderTimeout bounds reading a request's headers, before any
	// route or credential is known (or ReadTimeout, when shorter).
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes a kept-alive connection that sends no request.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
)

// HTTPServer returns a net/http server for Handler with the limits set:
// headers within ReadHeaderTimeout (or ReadTimeout if shorter), a whole
// request within ReadTimeout, and a response within WriteTimeout of its
// first byte (Handler sets that deadline when the response starts, so a
// slow storage check does not eat into it). The ingest routes replace the read deadline with their rolling
// idle deadline once the token is in hand, and a request whose body is
// refused unread (a wrong credential, a route that takes none) is answered
// at once and its connection closed, not drained.
func (s *Server) HTTPServer() *http.Server {
	readTimeout := cmp.Or(s.ReadTimeout, DefaultReadTimeout)
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: min(ReadHeaderTimeout, readTimeout),
		ReadTimeout:       readTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelWarn),
	}
}

// NewServer returns a Server with every API route registered.
func NewServer() *Server {
	s := &Server{mux: http.NewServeMux(), patterns: map[string]bool{}}
	for _, rt := range routes {
		pattern := rt.Method + " " + rt.Path
		s.mux.Handle(pattern, s.authenticate(rt))
		s.patterns[pattern] = true
	}
	return s
}

// Handler returns the whole API, including GET /v1/openapi.json and
// GET /healthz, with request logging and panic recovery around it.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

// Handle registers h for pattern (a ServeMux pattern such as "GET /metrics")
// beside the API, for routes that other packages add: metrics, the admin
// page. Such routes get the request log, panic recovery, the check of the
// path and query for bytes no store can keep, and the server's limits, but
// no authentication, and are not part of the OpenAPI document. It panics when
// pattern conflicts with a registered one, like http.ServeMux.Handle.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// logger returns Logger (or slog.Default()) behind the redacting handler,
// so that no secret inside an error reaches the log. It is fixed at the
// first use: set Logger before serving.
func (s *Server) logger() *slog.Logger {
	s.logOnce.Do(func() {
		s.log = redact.Logger(cmp.Or(s.Logger, slog.Default()))
	})
	return s.log
}

// rateLimiter returns the per-key limiter, nil when APIRate is zero. It is
// fixed at the first use: set APIRate before serving.
func (s *Server) rateLimiter() *rateLimiter {
	s.limiterOnce.Do(func() {
		if s.APIRate > 0 {
			s.limiter = newRateLimiter(s.APIRate, cmp.Or(s.APIBurst, int(math.Ceil(s.APIRate))))
		}
	})
	return s.limiter
}

// authMode says how a route authenticates its caller.
type authMode int

const (
	authNone   authMode = iota // public
	authOrg                    // the organization's API key as Bearer token
	authIngest                 // the recording's ingest token, checked by IngestService
)

// Route is one API route: the single table that both the mux and the
// OpenAPI test use.
type Route struct {
	// Method is the HTTP method, such as "GET".
	Method string
	// Path is a ServeMux path with {wildcards}, spelled as in the OpenAPI
	// document.
	Path   string
	auth   authMode
	handle func(*Server, http.ResponseWriter, *http.Request)
}

// routes is every route of the API. Wildcard names match the OpenAPI
// document's path parameters.
var routes = []Route{
	{"GET", "/healthz", authNone, (*Server).handleHealth},
	{"GET", "/v1/openapi.json", authNone, (*Server).handleOpenAPI},

	{"PUT", "/v1/storage", authOrg, (*Server).handlePutStorage},
	{"GET", "/v1/storage", authOrg, (*Server).handleGetStorage},
	{"DELETE", "/v1/storage", authOrg, (*Server).handleDeleteStorage},
	{"POST", "/v1/storage/check", authOrg, (*Server).handleCheckStorage},
	{"GET", "/v1/storage/iam-policy", authOrg, (*Server).handleIAMPolicy},
	{"GET", "/v1/storage/role-setup", authOrg, (*Server).handleRoleSetup},
	{"GET", "/v1/credentials", authOrg, (*Server).handleListCredentials},

	{"PUT", "/v1/webhooks", authOrg, (*Server).handlePutWebhook},
	{"GET", "/v1/webhooks", authOrg, (*Server).handleGetWebhook},
	{"DELETE", "/v1/webhooks", authOrg, (*Server).handleDeleteWebhook},
	{"POST", "/v1/webhooks/rotate-secret", authOrg, (*Server).handleRotateWebhookSecret},
	{"GET", "/v1/webhooks/deliveries", authOrg, (*Server).handleListWebhookDeliveries},

	{"POST", "/v1/meetings", authOrg, (*Server).handleCreateMeetingStreamKey},
	{"GET", "/v1/meetings", authOrg, (*Server).handleListMeetings},
	{"GET", "/v1/meetings/{meetingId}", authOrg, (*Server).handleGetMeetingStreamKey},
	{"DELETE", "/v1/meetings/{meetingId}", authOrg, (*Server).handleDeleteMeeting},
	{"PUT", "/v1/meetings/{meetingId}/recording/destination", authOrg, (*Server).handlePutMeetingDestination},
	{"GET", "/v1/meetings/{meetingId}/recording/destination", authOrg, (*Server).handleGetMeetingDestination},
	{"DELETE", "/v1/meetings/{meetingId}/recording/destination", authOrg, (*Server).handleDeleteMeetingDestination},
	{"POST", "/v1/meetings/{meetingId}/recordings", authOrg, (*Server).handleStartRecording},
	{"POST", "/v1/meetings/{meetingId}/stream-key", authOrg, (*Server).handleCreateStreamKey},
	{"GET", "/v1/meetings/{meetingId}/stream-key", authOrg, (*Server).handleGetStreamKey},
	{"DELETE", "/v1/meetings/{meetingId}/stream-key", authOrg, (*Server).handleDeleteStreamKey},

	{"GET", "/v1/recordings", authOrg, (*Server).handleListRecordings},
	{"GET", "/v1/recordings/{recordingId}", authOrg, (*Server).handleGetRecording},
	{"DELETE", "/v1/recordings/{recordingId}", authOrg, (*Server).handleDeleteRecording},
	{"POST", "/v1/recordings/{recordingId}/stop", authOrg, (*Server).handleStopRecording},
	{"GET", "/v1/recordings/{recordingId}/access-link", authOrg, (*Server).handleAccessLink},
	{"POST", "/v1/recordings/bulk-delete", authOrg, (*Server).handleBulkDelete},
	{"GET", "/v1/audit", authOrg, (*Server).handleListAudit},

	{"PUT", "/v1/recordings/{recordingId}/ingest", authIngest, (*Server).handleIngestPut},
	{"PATCH", "/v1/recordings/{recordingId}/ingest", authIngest, (*Server).handleIngestPatch},
	{"HEAD", "/v1/recordings/{recordingId}/ingest", authIngest, (*Server).handleIngestHead},
	{"OPTIONS", "/v1/recordings/{recordingId}/ingest", authNone, (*Server).handleIngestOptions},
}

// params returns the names of the route's path wildcards.
func (rt Route) params() []string {
	var names []string
	for _, seg := range strings.Split(rt.Path, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			names = append(names, strings.TrimSuffix(strings.TrimSuffix(name, "}"), "..."))
		}
	}
	return names
}

// Routes returns the API's routes (method and path), for documentation and
// tests. Routes added with Handle are not included.
func Routes() []Route {
	return append([]Route(nil), routes...)
}

// authenticate wraps a route's handler with its authentication.
func (s *Server) authenticate(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.auth == authOrg {
			key, ok := bearerToken(r)
			if !ok {
				s.Error(w, r, recsink.Errorf(recsink.EUNAUTHORIZED, "missing API key: send Authorization: Bearer <API key>"))
				return
			}
			org, err := s.OrganizationService.Authenticate(r.Context(), key)
			if err != nil {
				s.Error(w, r, err)
				return
			}
			if info, ok := r.Context().Value(requestInfoKey).(*requestInfo); ok {
				info.org = org
			} else {
				r = r.WithContext(context.WithValue(r.Context(), requestInfoKey, &requestInfo{org: org}))
			}
			if l := s.rateLimiter(); l != nil {
				if d := l.wait(string(recsink.HashToken(key)), time.Now()); d > 0 {
					l.writeRateLimited(w, d)
					return
				}
			}
		}
		// Before any service sees them: the stores cannot keep invalid
		// UTF-8 or NUL, and must not answer 500 for them.
		for _, name := range rt.params() {
			if err := checkText(name, r.PathValue(name)); err != nil {
				s.Error(w, r, err)
				return
			}
		}
		rt.handle(s, w, r)
	})
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// serveHTTP is the outermost handler: request log, panic recovery, and JSON
// answers for the mux's own 404 and 405.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &requestInfo{}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey, info))
	sw := &statusWriter{ResponseWriter: w, writeTimeout: cmp.Or(s.WriteTimeout, DefaultWriteTimeout)}
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		// A response written before the body was read to its end closes the
		// connection instead of draining the body: a client that sends a
		// body nobody asked for, or never sends it, is not waited for.
		body := &trackedBody{ReadCloser: r.Body}
		r.Body, sw.body = body, body
	}

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger().ErrorContext(r.Context(), "http: panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if sw.status == 0 {
				writeJSON(sw, http.StatusInternalServerError, ErrorResponse{Error: "internal error", Code: recsink.EINTERNAL})
			}
		}
		if sw.body != nil && !sw.body.done() {
			// net/http reads what is left of the body (up to 256 KiB) after
			// the handler, for as long as the read deadline allows, to keep
			// the connection: a body nobody read is not waited for; one
			// its authenticated sender was streaming gets a second, so that
			// the sender reads the answer before the connection closes.
			drain := time.Now()
			if sw.body.started() {
				drain = drain.Add(time.Second)
			}
			_ = http.NewResponseController(w).SetReadDeadline(drain)
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start)}
		if info.org != nil {
			attrs = append(attrs, "org", info.org.ID)
		}
		s.logger().InfoContext(r.Context(), "http request", attrs...)
	}()

	_, pattern := s.mux.Handler(r)
	if err := checkQuery(r); err != nil {
		s.Error(sw, r, err)
		return
	}
	if !s.patterns[pattern] {
		// The API's routes name the wildcard at fault; the others (and no
		// route) get the path named as a whole.
		if err := checkText("path", r.URL.Path); err != nil {
			s.Error(sw, r, err)
			return
		}
	}
	if pattern == "" {
		// No route: let the mux decide between 404, 405 (with Allow) and
		// a redirect to the clean path, and answer its errors in JSON.
		s.mux.ServeHTTP(&muxErrorWriter{ResponseWriter: sw, s: s, r: r}, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// statusWriter records the status of a response for the request log, and
// closes the connection after a response sent before the request's body was
// read to its end.
type statusWriter struct {
	http.ResponseWriter
	status       int
	body         *trackedBody // nil when the request has no body
	writeTimeout time.Duration
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		// The response must be written within writeTimeout of its start: a
		// client that does not read it is cut. ErrNotSupported only where
		// there is no connection (tests).
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.writeTimeout))
		if w.body != nil && !w.body.started() {
			// A body refused unread (no or a wrong credential, a route
			// that takes none) is not waited for: else net/http reads up
			// to 256 KiB of it, for as long as the read deadline allows,
			// to keep the connection. A body the handler began to read
			// (its sender authenticated) gets net/http's bounded drain, so
			// that a recorder still sending sees the answer (a 503 with
			// its Upload-Offset) before the connection closes.
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// trackedBody is a request body that knows whether it was read to its end.
type trackedBody struct {
	io.ReadCloser
	mu   sync.Mutex
	read bool // a Read was made
	eof  bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	b.read = true
	if err == io.EOF {
		b.eof = true
	}
	b.mu.Unlock()
	return n, err
}

// started reports whether the handler read the body, to its end or not.
func (b *trackedBody) started() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.read
}

func (b *trackedBody) done() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}

// Unwrap lets http.ResponseController reach the connection, for the ingest
// routes' deadlines and flushes.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// muxErrorWriter replaces the plain-text 404 and 405 bodies of http.ServeMux
// with JSON error bodies, keeping its status and Allow header.
type muxErrorWriter struct {
	http.ResponseWriter
	s        *Server
	r        *http.Request
	replaced bool
}

func (w *muxErrorWriter) WriteHeader(status int) {
	var err error
	switch status {
	case http.StatusNotFound:
		err = recsink.Errorf(recsink.ENOTFOUND, "no such route: %s %s", w.r.Method, w.r.URL.Path)
	case http.StatusMethodNotAllowed:
		err = withStatus(status, recsink.Errorf(recsink.EINVALID, "method %s is not allowed on %s; allowed: %s", w.r.Method, w.r.URL.Path, w.Header().Get("Allow")))
	default:
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.replaced = true
	w.Header().Del("X-Content-Type-Options")
	w.s.Error(w.ResponseWriter, w.r, err)
}

func (w *muxErrorWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *muxErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// handleHealth answers GET /healthz for load balancers: the process serves.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
