package admin

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/humanize"
)

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // the active section: "storage", "keys", "recordings", "rooms"
	Session *recsink.AdminSession
	CSRF    string // the token the page's forms carry
	Now     time.Time
	Data    any
}

// message is the data of the plain message page.
type message struct {
	Heading string
	Text    string
}

// pageNames are the templates that are whole pages; each is parsed with the
// layout.
var pageNames = []string{"signin", "message", "streamkey", "storage", "keys", "recordings", "recording", "rooms", "activity"}

func parsePages(funcs template.FuncMap) map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).
			ParseFS(templatesFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
	}
	return pages
}

// render writes a page, or only its "live" block when a script asks for the
// fragment it refreshes.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	if p.Session != nil && p.CSRF == "" {
		p.CSRF = p.Session.CSRFToken
	}
	p.Now = h.now()
	tmpl := "layout.html"
	if isFragment(r) && h.pages[name].Lookup("live") != nil {
		tmpl = "live"
	}
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		h.log.ErrorContext(r.Context(), "admin: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError shows an error from a service: its message for the user's
// errors, "internal error" (and a log line) for ours.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession, err error) {
	status := http.StatusBadRequest
	switch recsink.ErrorCode(err) {
	case recsink.ENOTFOUND:
		status = http.StatusNotFound
	case recsink.EFORBIDDEN:
		status = http.StatusForbidden
	case recsink.EDESTINATION, recsink.EINVALID:
		status = http.StatusUnprocessableEntity
	case recsink.ECONFLICT:
		status = http.StatusConflict
	case recsink.EUNAVAILABLE:
		// The database or the spool is down for a while: try again, the
		// session still holds.
		status = http.StatusServiceUnavailable
		retry := 1
		var e *recsink.Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			retry = e.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		h.log.WarnContext(r.Context(), "admin: unavailable", "path", r.URL.Path, "err", err)
	case recsink.EINTERNAL:
		status = http.StatusInternalServerError
		h.log.ErrorContext(r.Context(), "admin: internal error", "path", r.URL.Path, "err", err)
	}
	h.render(w, r, status, "message", &page{
		Title: "Error", Session: s,
		Data: message{Heading: "Something went wrong", Text: recsink.ErrorMessage(err)},
	})
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"time": fmtTime,
		"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"rel":  func(t time.Time) string { return relTime(t, h.now()) },
		"dur":  fmtDuration,
		"bytes": func(n int64) string {
			return humanize.Bytes(n)
		},
		"maxDuration": func() string { return fmtDuration(h.cfg.MaxDuration) },
		"latestEnd":   func(start time.Time) string { return fmtTime(start.Add(h.cfg.MaxDuration)) },
		"trimSlash":   func(s string) string { return strings.TrimPrefix(s, "/") },
		"add1":        func(i int) int { return i + 1 },
		"add":         add,
		"ingest":      ingestName,
		"isRole":      recsink.IsRoleARN,
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// relTime says when t is from now: "in 23 h 59 min", "5 min ago", "now".
func relTime(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d > -time.Minute && d < time.Minute:
		return "now"
	case d > 0:
		return "in " + fmtDuration(d)
	}
	return fmtDuration(-d) + " ago"
}

// fmtDuration rounds a duration to what a person reads: "45 s",
// "12 min", "3 h 05 min", "2 d 4 h".
func fmtDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		m := int(d.Minutes()) - 60*h
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %02d min", h, m)
	}
	days := int(d.Hours()) / 24
	return fmt.Sprintf("%d d %d h", days, int(d.Hours())-24*days)
}

// scopeLabel names a credential's scope for people.
func scopeLabel(scope string, rooms map[string]string) string {
	if scope == recsink.ScopeOrganization {
		return "Organization"
	}
	if name, ok := rooms[scope]; ok {
		return "Room " + strings.TrimPrefix(name, "/")
	}
	return "Room " + scope
}

// add adds two numbers of the same kind, int or float64, for templates.
func add(a, b any) (any, error) {
	switch x := a.(type) {
	case int:
		if y, ok := b.(int); ok {
			return x + y, nil
		}
	case float64:
		switch y := b.(type) {
		case float64:
			return x + y, nil
		case int:
			return x + float64(y), nil
		}
	}
	return nil, fmt.Errorf("add: cannot add %T and %T", a, b)
}
