package http

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/recsink/recsink"
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
	// Logger receives the request log and internal errors; nil means
	// slog.Default().
	Logger *slog.Logger

	// PublicURL is the base URL recorders use for ingest (for example
	// "http://127.0.0.1:8080"); when empty it is derived from the request's
	// Host.
	PublicURL string

	// MaxDuration is the longest a recording may run. Reported nowhere yet.
	MaxDuration time.Duration

	mux *http.ServeMux
}

// NewServer returns a Server with every API route registered.
func NewServer() *Server {
	s := &Server{mux: http.NewServeMux()}
	for _, rt := range routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.authenticate(rt))
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
// page. Such routes get the request log and panic recovery but no
// authentication, and are not part of the OpenAPI document. It panics when
// pattern conflicts with a registered one, like http.ServeMux.Handle.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
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
	{"GET", "/v1/credentials", authOrg, (*Server).handleListCredentials},

	{"PUT", "/v1/webhooks", authOrg, (*Server).handlePutWebhook},
	{"GET", "/v1/webhooks", authOrg, (*Server).handleGetWebhook},
	{"DELETE", "/v1/webhooks", authOrg, (*Server).handleDeleteWebhook},
	{"POST", "/v1/webhooks/rotate-secret", authOrg, (*Server).handleRotateWebhookSecret},
	{"GET", "/v1/webhooks/deliveries", authOrg, (*Server).handleListWebhookDeliveries},

	{"POST", "/v1/meetings", authOrg, (*Server).handleCreateMeeting},
	{"GET", "/v1/meetings", authOrg, (*Server).handleListMeetings},
	{"GET", "/v1/meetings/{meetingId}", authOrg, (*Server).handleGetMeeting},
	{"DELETE", "/v1/meetings/{meetingId}", authOrg, (*Server).handleDeleteMeeting},
	{"PUT", "/v1/meetings/{meetingId}/recording/destination", authOrg, (*Server).handlePutMeetingDestination},
	{"GET", "/v1/meetings/{meetingId}/recording/destination", authOrg, (*Server).handleGetMeetingDestination},
	{"DELETE", "/v1/meetings/{meetingId}/recording/destination", authOrg, (*Server).handleDeleteMeetingDestination},
	{"POST", "/v1/meetings/{meetingId}/recordings", authOrg, (*Server).handleStartRecording},

	{"GET", "/v1/recordings", authOrg, (*Server).handleListRecordings},
	{"GET", "/v1/recordings/{recordingId}", authOrg, (*Server).handleGetRecording},
	{"DELETE", "/v1/recordings/{recordingId}", authOrg, (*Server).handleDeleteRecording},
	{"POST", "/v1/recordings/{recordingId}/stop", authOrg, (*Server).handleStopRecording},

	{"PUT", "/v1/recordings/{recordingId}/ingest", authIngest, (*Server).handleIngestPut},
	{"PATCH", "/v1/recordings/{recordingId}/ingest", authIngest, (*Server).handleIngestPatch},
	{"HEAD", "/v1/recordings/{recordingId}/ingest", authIngest, (*Server).handleIngestHead},
	{"OPTIONS", "/v1/recordings/{recordingId}/ingest", authNone, (*Server).handleIngestOptions},
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
	sw := &statusWriter{ResponseWriter: w}

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
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start)}
		if info.org != nil {
			attrs = append(attrs, "org", info.org.ID)
		}
		s.logger().InfoContext(r.Context(), "http request", attrs...)
	}()

	if _, pattern := s.mux.Handler(r); pattern == "" {
		// No route: let the mux decide between 404, 405 (with Allow) and
		// a redirect to the clean path, and answer its errors in JSON.
		s.mux.ServeHTTP(&muxErrorWriter{ResponseWriter: sw, s: s, r: r}, r)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

// statusWriter records the status of a response for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
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
