package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/recsink/recsink"
)

const (
	// sessionCookie carries the session token; the store keeps its hash.
	sessionCookie = "recsink_admin"
	// signInCookie carries the CSRF token of the sign-in form, which has no
	// session yet to keep it (double-submit).
	signInCookie = "recsink_admin_signin"
	// SessionTTL is how long a session lasts after sign-in.
	SessionTTL = 12 * time.Hour
	// MinPasswordLength is the shortest password an admin may have.
	MinPasswordLength = 12
)

// dummyHash is compared against when no user has the email, so that a
// sign-in takes as long for an unknown email as for a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("recsink-dummy-password"), bcrypt.DefaultCost)

// HashPassword returns the bcrypt hash of an admin's password, after
// checking its length.
func HashPassword(password string) ([]byte, error) {
	if len(password) < MinPasswordLength {
		return nil, recsink.FieldErrorf("password", "the password must be at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		// bcrypt ignores what follows the 72nd byte; refuse rather than
		// pretend the rest counts.
		return nil, recsink.FieldErrorf("password", "the password must be at most 72 bytes")
	}
	return bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
}

type sessionKey struct{}

// session returns the signed-in admin's session, or nil when the request
// has none. An error means the store could not say (its database is down):
// the admin is not signed out by it, the page answers 503.
func (h *Handler) session(r *http.Request) (*recsink.AdminSession, error) {
	if s, ok := r.Context().Value(sessionKey{}).(*recsink.AdminSession); ok {
		return s, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	s, err := h.cfg.Store.FindAdminSession(r.Context(), recsink.HashToken(c.Value), h.now())
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("admin: find session: %w", err)
	}
	return s, nil
}

// auth wraps a handler that needs a signed-in admin. Unsigned requests are
// sent to the sign-in page (or get 401 when a script asks for a fragment);
// every POST must carry the session's CSRF token, else 403.
func (h *Handler) auth(next func(http.ResponseWriter, *http.Request, *recsink.AdminSession)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.session(r)
		if err != nil {
			h.renderError(w, r, nil, err)
			return
		}
		if s == nil {
			if isFragment(r) {
				http.Error(w, "signed out", http.StatusUnauthorized)
				return
			}
			target := "/admin/signin"
			if r.Method == http.MethodGet {
				target += "?next=" + url.QueryEscape(r.URL.RequestURI())
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
			if !h.sameOrigin(r) || !tokenEqual(r.PostFormValue("csrf"), s.CSRFToken) {
				h.forbidden(w, r, s)
				return
			}
			if err := checkForm(r); err != nil {
				h.renderError(w, r, s, err)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)), s)
	})
}

// formError answers a form body that could not be read: too large (413),
// too slow (408) or malformed (400). The connection is closed after it.
func (h *Handler) formError(w http.ResponseWriter, r *http.Request, err error) {
	status, text := http.StatusBadRequest, "The form could not be read. Reload the page and try again."
	var maxErr *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &maxErr):
		status, text = http.StatusRequestEntityTooLarge, fmt.Sprintf("The form is larger than %d bytes.", maxErr.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		status, text = http.StatusRequestTimeout, "The form did not arrive in time. Reload the page and try again."
	}
	w.Header().Set("Connection", "close")
	h.render(w, r, status, "message", &page{Title: "Form refused", Data: message{Heading: "This form was refused", Text: text}})
}

// checkForm refuses form values that a store cannot keep: invalid UTF-8
// or NUL, named by their field.
func checkForm(r *http.Request) error {
	for name, values := range r.PostForm {
		for _, v := range values {
			if !utf8.ValidString(name) || !utf8.ValidString(v) || strings.IndexByte(name+v, 0) >= 0 {
				field := strconv.QuoteToASCII(name)
				return recsink.FieldErrorf(field, "the field %s must be valid UTF-8 without NUL characters", field)
			}
		}
	}
	return nil
}

// sameOrigin refuses a POST whose Origin header names another site; the
// CSRF token is the main defense, this one costs nothing.
func (h *Handler) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return origin == ""
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// tokenEqual compares a submitted token with the expected one in constant
// time; an empty token never matches.
func tokenEqual(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	h.log.WarnContext(r.Context(), "admin: form refused: missing or wrong CSRF token", "path", r.URL.Path, "remote", clientIP(r))
	h.render(w, r, http.StatusForbidden, "message", &page{
		Title: "Form refused", Session: s,
		Data: message{Heading: "This form was refused", Text: "It did not carry this session's security token: it is outdated or came from another site. Reload the page and try again."},
	})
}

// secure reports whether cookies must be marked Secure.
func (h *Handler) secure(r *http.Request) bool {
	return h.cfg.SecureCookies || r.TLS != nil
}

func isFragment(r *http.Request) bool {
	return r.URL.Query().Get("fragment") != ""
}

type signInData struct {
	Email string
	Next  string
	Error string
}

func (h *Handler) handleSignInForm(w http.ResponseWriter, r *http.Request) {
	if s, err := h.session(r); err != nil {
		h.renderError(w, r, nil, err)
		return
	} else if s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	h.renderSignIn(w, r, http.StatusOK, signInData{Next: safeNext(r.URL.Query().Get("next"))})
}

// renderSignIn renders the sign-in form with a new double-submit token.
func (h *Handler) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	token := recsink.RandomToken(32)
	http.SetCookie(w, &http.Cookie{
		Name: signInCookie, Value: token, Path: "/admin/signin", MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: h.secure(r),
	})
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, status, "signin", &page{Title: "Sign in", CSRF: token, Data: d})
}

const (
	// signInMaxBytes bounds the sign-in form, the one body read before
	// anyone is authenticated (with Config.SignInReadTimeout).
	signInMaxBytes = 8 << 10
	// maxFormSize bounds the forms of signed-in admins.
	maxFormSize = 64 << 10
)

func (h *Handler) handleSignIn(w http.ResponseWriter, r *http.Request) {
	// The cookie is checked before the body is read: without it, the body
	// is not waited for.
	c, err := r.Cookie(signInCookie)
	if err != nil || c.Value == "" || !h.sameOrigin(r) {
		h.forbidden(w, r, nil)
		return
	}
	// ErrNotSupported only where there is no connection (tests); the
	// server's own read deadline still holds.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.SignInReadTimeout))
	r.Body = http.MaxBytesReader(w, r.Body, signInMaxBytes)
	if err := r.ParseForm(); err != nil {
		h.formError(w, r, err)
		return
	}
	if !tokenEqual(r.PostFormValue("csrf"), c.Value) {
		h.forbidden(w, r, nil)
		return
	}
	if err := checkForm(r); err != nil {
		h.renderSignIn(w, r, http.StatusBadRequest, signInData{Error: recsink.ErrorMessage(err)})
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	password := r.PostFormValue("password")
	d := signInData{Email: email, Next: safeNext(r.PostFormValue("next"))}
	ip := clientIP(r)
	now := h.now()

	if wait := h.limiter.wait(email, ip, now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		d.Error = "Too many failed sign-ins. Wait " + strconv.Itoa(secs) + " seconds, then try again."
		h.renderSignIn(w, r, http.StatusTooManyRequests, d)
		return
	}

	u, err := h.cfg.Store.FindAdminUserByEmail(r.Context(), email)
	hash := dummyHash
	if err == nil {
		hash = u.PasswordHash
	} else if recsink.ErrorCode(err) != recsink.ENOTFOUND {
		h.log.ErrorContext(r.Context(), "admin: find admin user", "err", err)
		h.renderError(w, r, nil, err)
		return
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || u == nil {
		// Counted from the end of the comparison, so a slow hash does not
		// eat into the delay.
		h.limiter.fail(email, ip, h.now())
		h.log.WarnContext(r.Context(), "admin: failed sign-in", "email", email, "remote", ip)
		d.Error = "The email or password is wrong."
		h.renderSignIn(w, r, http.StatusUnauthorized, d)
		return
	}
	h.limiter.succeed(email, ip)

	token := recsink.RandomToken(32)
	s := &recsink.AdminSession{
		TokenHash: recsink.HashToken(token),
		UserID:    u.ID,
		OrgID:     u.OrgID,
		CSRFToken: recsink.RandomToken(32),
		CreatedAt: now,
		ExpiresAt: now.Add(SessionTTL),
	}
	if err := h.cfg.Store.CreateAdminSession(r.Context(), s); err != nil {
		h.renderError(w, r, nil, err)
		return
	}
	h.log.InfoContext(r.Context(), "admin: signed in", "user", u.ID, "org", u.OrgID, "remote", ip)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/admin/", Expires: s.ExpiresAt, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: h.secure(r),
	})
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: "/admin/signin", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: h.secure(r)})
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

func (h *Handler) handleSignOut(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	if err := h.cfg.Store.DeleteAdminSession(r.Context(), s.TokenHash); err != nil {
		h.renderError(w, r, s, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/admin/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: h.secure(r)})
	http.Redirect(w, r, "/admin/signin", http.StatusSeeOther)
}

// safeNext returns next when it is a page of the admin site, else the
// storage page: the sign-in must not redirect anywhere else.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/admin/") || strings.HasPrefix(next, "/admin/signin") ||
		strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") || isFragmentURL(next) {
		return "/admin/storage"
	}
	return next
}

func isFragmentURL(s string) bool {
	u, err := url.Parse(s)
	return err != nil || u.Query().Get("fragment") != ""
}

// clientIP returns the address the request came from. X-Forwarded-For is
// not trusted: anyone can set it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limiter slows down password guessing: after each failed sign-in for an
// email from an address, the next attempt for that pair must wait twice as
// long as the one before (1 s, 2 s, 4 s ... up to maxDelay). An address also
// has a budget across emails, so spraying many emails is slowed too. State
// is in memory: a restart forgets it, which costs an attacker a restart.
type limiter struct {
	mu      sync.Mutex
	entries map[string]*attempts
}

type attempts struct {
	failures int
	last     time.Time
}

const (
	baseDelay     = time.Second
	maxDelay      = 5 * time.Minute
	ipFreeFailure = 10            // failures an address may have across emails before it is slowed
	forgetAfter   = 1 * time.Hour // quiet time after which failures are forgotten
	maxEntries    = 10_000
)

func newLimiter() *limiter {
	return &limiter{entries: map[string]*attempts{}}
}

func delayAfter(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := baseDelay
	for i := 1; i < failures && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// wait returns how long the caller must still wait before trying email
// from ip again.
func (l *limiter) wait(email, ip string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	if a := l.entries["e\x00"+email+"\x00"+ip]; a != nil {
		wait = max(wait, a.last.Add(delayAfter(a.failures)).Sub(now))
	}
	if a := l.entries["i\x00"+ip]; a != nil {
		wait = max(wait, a.last.Add(delayAfter(a.failures-ipFreeFailure)).Sub(now))
	}
	return wait
}

// fail records a failed sign-in.
func (l *limiter) fail(email, ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= maxEntries {
		for k, a := range l.entries {
			if now.Sub(a.last) > forgetAfter {
				delete(l.entries, k)
			}
		}
	}
	for _, k := range []string{"e\x00" + email + "\x00" + ip, "i\x00" + ip} {
		a := l.entries[k]
		if a == nil || now.Sub(a.last) > forgetAfter {
			a = &attempts{}
			l.entries[k] = a
		}
		a.failures++
		a.last = now
	}
}

// succeed forgets the failures of email from ip.
func (l *limiter) succeed(email, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, "e\x00"+email+"\x00"+ip)
}
