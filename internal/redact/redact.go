// Package redact removes secret material from text before it is logged:
// access secrets, bearer tokens, request signatures, Authorization values,
// recsink's API keys and webhook secrets, and passwords in URLs. It works on
// the text, so a secret that reached an error message by any route (a
// driver that quotes a query, an SDK that quotes a request) is caught at the
// one place every log line passes: the slog handler that NewHandler returns.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
)

// Mask replaces what is removed.
const Mask = "[REDACTED]"

// patterns match secret material; each keeps its first group (the name
// that introduces the secret) and its second group, if any, and masks the
// rest of the match.
var patterns = []*regexp.Regexp{
	// Authorization: Bearer x, AWS4-HMAC-SHA256 Credential=..., Basic x;
	// up to the end of the line or the quote that closes it.
	regexp.MustCompile(`(?i)(authorization["']?\s*[:=]\s*\[?["']?)[^"'\]\r\n]+`),
	regexp.MustCompile(`(?i)(\bbearer\s+)[^\s"',;]+`),
	// Presigned URLs and signed headers.
	regexp.MustCompile(`(?i)(x-amz-(?:signature|credential|security-token)["']?\s*[=:]\s*["']?)[^\s&"',;]+`),
	regexp.MustCompile(`(?i)(\bsignature=)[^\s&"',;]+`),
	// key=value and "key": "value" forms of anything named like a secret.
	regexp.MustCompile(`(?i)((?:secret|password|passwd|token|api[_-]?key|session)[\w-]*["']?\s*[:=]\s*["']?)[^\s"'&,;}]+`),
	// recsink's API keys and webhook secrets.
	regexp.MustCompile(`()\b(?:rsk|whsec)_[A-Za-z0-9_-]+`),
	// A password in a URL or DSN: scheme://user:password@host.
	regexp.MustCompile(`(://[^/:@\s]*:)[^@\s/]+(@)`),
}

// tokenRE matches a run of base64 or URL-safe base64 characters long enough
// to be a key: AWS secret access keys are 40, recsink's tokens 43.
var tokenRE = regexp.MustCompile(`[A-Za-z0-9+/_=-]{32,}`)

// String returns s with secret material replaced by Mask.
func String(s string) string {
	for _, re := range patterns {
		if !re.MatchString(s) {
			continue
		}
		s = re.ReplaceAllString(s, "${1}"+Mask+"${2}")
	}
	return tokenRE.ReplaceAllStringFunc(s, func(m string) string {
		if looksRandom(m) {
			return Mask
		}
		return m
	})
}

// looksRandom reports whether a long run of base64 characters mixes upper
// and lower case as random keys do (a 40-character key has about 16 of
// each), and hex digests, dates in object keys and words do not. A run of
// six digits or more (a timestamp, Go's temp folders) is not random either:
// a random key holds one by chance once in 1,500.
func looksRandom(s string) bool {
	var upper, lower, digits int
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= 'a' && c <= 'z':
			lower++
		}
		if c >= '0' && c <= '9' {
			if digits++; digits >= 6 {
				return false
			}
		} else {
			digits = 0
		}
	}
	return upper >= 3 && lower >= 3
}

// Handler is a slog.Handler that redacts the message and every attribute
// before passing the record on.
type Handler struct {
	next slog.Handler
}

// NewHandler returns next wrapped so that nothing it writes carries secret
// material. Wrapping a Handler again returns it unchanged.
func NewHandler(next slog.Handler) slog.Handler {
	if h, ok := next.(*Handler); ok {
		return h
	}
	return &Handler{next: next}
}

// Logger returns l with its handler wrapped by NewHandler.
func Logger(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(*Handler); ok {
		return l
	}
	return slog.New(NewHandler(l.Handler()))
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(Attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = Attr(a)
	}
	return &Handler{next: h.next.WithAttrs(clean)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

// Attr returns a with its value redacted: strings, errors, Stringers and
// anything else that prints with a secret in it.
func Attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, String(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = Attr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, String(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, String(x.String()))
		default:
			// Keep the value as it is unless its text carries a secret.
			s := fmt.Sprint(x)
			if r := String(s); r != s {
				return slog.String(a.Key, r)
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
