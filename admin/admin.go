// Package admin serves the organization admin page under /admin/: sign-in,
// storage settings with a connection test, the key rotation view, and the
// organization's recordings and rooms. Pages are rendered on the server with
// html/template and work without JavaScript; the small script and the styles
// are embedded and served by recsink itself.
//
// Everything an admin sees is read through the domain services with the
// organization of the admin's session, so one organization's admin never
// sees another's data.
package admin

import (
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

//go:embed templates/*.html
var templatesFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the admin page needs. Store keeps admin users and sessions;
// the services give it every organization's data, scoped by the session.
type Config struct {
	Store      recsink.Store
	Storage    recsink.StorageService
	Recordings recsink.RecordingService
	Meetings   recsink.MeetingService
	// Audit records the changes admins make and serves the Activity page;
	// nil records nothing and hides the page.
	Audit  recsink.AuditService
	Logger *slog.Logger
	// AllowCustomEndpoints shows the endpoint and path-style fields: set it
	// when the operator allows custom S3 endpoints (--allow-endpoint).
	AllowCustomEndpoints bool
	// MaxDuration is the longest a recording may run (the service's
	// setting): a recording's latest possible end is its start plus this.
	MaxDuration time.Duration
	// SecureCookies marks cookies Secure even when the request did not come
	// over TLS: set it behind a TLS-terminating proxy.
	SecureCookies bool
	// SignInReadTimeout bounds reading the sign-in form, the one body read
	// before anyone is signed in; zero means DefaultSignInReadTimeout. Keep
	// it within the server's own read timeout, which it replaces.
	SignInReadTimeout time.Duration
	// OIDCIssuer and OIDCAudience are recsink's own OIDC identity (its
	// public URL and the tokens' aud), which a customer's IAM role trusts
	// for role-based access: set, the Storage page offers "Role (no key)"
	// and shows what to create in IAM; empty, it offers access keys only.
	OIDCIssuer, OIDCAudience string
	// Live shows each room's stream key on the Rooms page and lets the
	// admin replace or revoke it; nil hides both (live ingest is off).
	Live LiveConfig
}

// LiveConfig is what the Rooms page needs for the rooms' stream keys.
type LiveConfig struct {
	StreamKeys recsink.StreamKeyService
	// RTMPAddr and SRTAddr are the live listeners' addresses ("" when off)
	// and PublicURL the server's public base URL: the publish URLs are
	// built from them as the API builds them.
	RTMPAddr, SRTAddr, PublicURL string
	// WHIP is on: the WHIP endpoint rides on the HTTP listener.
	WHIP bool
}

// DefaultSignInReadTimeout is how long the sign-in form may take to arrive.
const DefaultSignInReadTimeout = 10 * time.Second

// Handler serves the admin page. Create it with New.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	pages   map[string]*template.Template
	limiter *limiter
	now     func() time.Time
}

var _ http.Handler = (*Handler)(nil)

// New returns the admin page's handler, to be mounted at "/admin/".
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 24 * time.Hour
	}
	if cfg.SignInReadTimeout <= 0 {
		cfg.SignInReadTimeout = DefaultSignInReadTimeout
	}
	h := &Handler{
		cfg:     cfg,
		log:     cfg.Logger,
		mux:     http.NewServeMux(),
		limiter: newLimiter(),
		now:     recsink.Now,
	}
	h.pages = parsePages(h.funcs())

	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	files := http.StripPrefix("/admin/static/", http.FileServer(http.FS(static)))
	h.mux.Handle("GET /admin/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	}))

	h.mux.HandleFunc("GET /admin/{$}", h.handleIndex)
	h.mux.HandleFunc("GET /admin/signin", h.handleSignInForm)
	h.mux.HandleFunc("POST /admin/signin", h.handleSignIn)
	h.mux.Handle("POST /admin/signout", h.auth(h.handleSignOut))
	h.mux.Handle("GET /admin/storage", h.auth(h.handleStorage))
	h.mux.Handle("POST /admin/storage", h.auth(h.handleStoragePost))
	h.mux.Handle("GET /admin/storage/iam-policy", h.auth(h.handleIAMPolicy))
	h.mux.Handle("GET /admin/keys", h.auth(h.handleKeys))
	h.mux.Handle("GET /admin/recordings", h.auth(h.handleRecordings))
	h.mux.Handle("GET /admin/recordings/{id}", h.auth(h.handleRecording))
	h.mux.Handle("POST /admin/recordings/{id}/delete", h.auth(h.handleRecordingDelete))
	h.mux.Handle("GET /admin/rooms", h.auth(h.handleRooms))
	h.mux.Handle("POST /admin/rooms/{id}/stream-key", h.auth(h.handleStreamKeyReplace))
	h.mux.Handle("POST /admin/rooms/{id}/stream-key/revoke", h.auth(h.handleStreamKeyRevoke))
	h.mux.Handle("GET /admin/activity", h.auth(h.handleActivity))
	h.mux.HandleFunc("/admin/", h.handleNotFound)
	return h
}

// pageCSP is every page's Content-Security-Policy. A recording's page adds
// media-src with the origin of its object's bucket, and nothing else.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves everything under /admin/ and redirects /admin there.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Scripts and styles come from recsink only; nothing inline, no CDN.
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	if r.URL.Path == "/admin" {
		http.Redirect(w, r, "/admin/", http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/admin/") {
		h.handleNotFound(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) handleIndex(w http.ResponseWriter, r *http.Request) {
	if s, err := h.session(r); err != nil {
		h.renderError(w, r, nil, err)
		return
	} else if s == nil {
		http.Redirect(w, r, "/admin/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/admin/storage", http.StatusSeeOther)
}

func (h *Handler) handleNotFound(w http.ResponseWriter, r *http.Request) {
	sess, _ := h.session(r) // a store error leaves the page without the session
	h.render(w, r, http.StatusNotFound, "message", &page{
		Title: "Not found", Session: sess,
		Data: message{Heading: "Page not found", Text: "There is no admin page at this address."},
	})
}
