// Package http serves recsink's REST API: JSON over HTTP for organizations
// (authenticated by their API key) and the ingest endpoints that recorders
// stream media to (authenticated by a recording's ingest token).
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/recsink/recsink"
)

// maxBodySize limits JSON request bodies (413 above it). Ingest bodies are
// not limited.
const maxBodySize = 64 << 10

// codes maps each domain error code to its HTTP status: the one table.
var codes = map[string]int{
	recsink.EINVALID:      http.StatusBadRequest,
	recsink.EUNAUTHORIZED: http.StatusUnauthorized,
	recsink.EFORBIDDEN:    http.StatusForbidden,
	recsink.ENOTFOUND:     http.StatusNotFound,
	recsink.ECONFLICT:     http.StatusConflict,
	recsink.EDESTINATION:  http.StatusUnprocessableEntity,
	recsink.EUNAVAILABLE:  http.StatusServiceUnavailable,
	recsink.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	recsink.EINTERNAL:     http.StatusInternalServerError,
}

// ErrorStatusCode returns the HTTP status for a recsink error code; unknown
// codes are internal errors.
func ErrorStatusCode(code string) int {
	if s, ok := codes[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrorResponse is the JSON body of every error response.
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Field names the input at fault, in the API's spelling.
	Field string `json:"field,omitempty"`
	// Region and Checks carry the report of a failed storage check.
	Region string          `json:"region,omitempty"`
	Checks []recsink.Check `json:"checks,omitempty"`
}

// statusError gives a domain error a more precise status than its code's,
// such as 413 or 415 for an EINVALID request.
type statusError struct {
	status int
	err    error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// withStatus returns err answered with status instead of its code's.
func withStatus(status int, err error) error {
	return &statusError{status: status, err: err}
}

// statusOf returns the HTTP status that answers err.
func statusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return ErrorStatusCode(recsink.ErrorCode(err))
}

// clientGone reports whether err is the client's own doing at the transport
// level (it went away or broke the body off), which is neither our error nor
// worth an error log.
func clientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil || errors.Is(err, io.ErrUnexpectedEOF)
}

// Error writes err as a JSON error response. Internal errors are logged with
// their detail and shown as "internal error"; errors caused by the client
// going away are not logged as errors.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := asElsewhere(err); ok {
		s.forward(w, r, e)
		return
	}
	if clientGone(r, err) && recsink.ErrorCode(err) == recsink.EINTERNAL {
		s.logger().DebugContext(r.Context(), "http: client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		// Nginx's "client closed request": nobody reads it, but the access
		// log shows what happened.
		w.WriteHeader(499)
		return
	}

	code := recsink.ErrorCode(err)
	status := statusOf(err)
	if code == recsink.EINTERNAL {
		s.logger().ErrorContext(r.Context(), "http: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}

	resp := ErrorResponse{Error: recsink.ErrorMessage(err), Code: code, Field: recsink.ErrorField(err)}
	var ce *recsink.CheckError
	if errors.As(err, &ce) && ce.Report != nil {
		resp.Region, resp.Checks = ce.Report.Region, ce.Report.Checks
	}
	switch code {
	case recsink.EUNAUTHORIZED:
		w.Header().Set("WWW-Authenticate", "Bearer")
	case recsink.EUNAVAILABLE:
		retry := 1
		var e *recsink.Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			retry = e.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	writeJSON(w, status, resp)
}

// writeJSON writes v as the JSON response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// An error here means the client went away; there is nobody to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// decodeJSON reads the request body strictly into v: application/json, at
// most maxBodySize bytes, exactly one JSON value, no unknown fields, at most
// maxDepth levels deep, every string valid UTF-8 without NUL. When optional
// is true an empty body is allowed and reported by ok == false. Every error
// is a client error (400, 413 or 415) that names the field or the limit.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) (ok bool, err error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		return false, bodyError(err)
	}
	return decodeJSONBytes(body, r.Header.Get("Content-Type"), v, optional)
}

// decodeJSONBytes is decodeJSON on a body already read: the part that the
// fuzz target drives.
func decodeJSONBytes(body []byte, contentType string, v any, optional bool) (ok bool, err error) {
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		if optional {
			return false, nil
		}
		return false, recsink.Errorf(recsink.EINVALID, "request body is required: a JSON object")
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/json" {
		return false, withStatus(http.StatusUnsupportedMediaType,
			recsink.Errorf(recsink.EINVALID, "Content-Type must be application/json"))
	}
	// The shape and the text first: encoding/json would turn invalid UTF-8
	// into U+FFFD without a word, and pass NUL on to a store that cannot
	// keep it.
	if err := checkJSON(body); err != nil {
		return false, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, bodyError(err)
	}
	// Exactly one value: anything but trailing space is refused.
	if _, err := dec.Token(); err != io.EOF {
		return false, recsink.Errorf(recsink.EINVALID, "request body must be a single JSON value without trailing data")
	}
	return true, nil
}

// maxDepth is how deeply a JSON body may nest objects and arrays; the
// API's deepest input has three levels.
const maxDepth = 16

// checkJSON walks the tokens of one JSON value and refuses deep nesting and
// strings (keys or values) that are not valid UTF-8 or hold NUL, naming the
// field at fault as "a.b[2].c". Syntax errors are left to the decoder.
func checkJSON(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// path[i] is the key or index at depth i; isArray[i] says which.
	var path []string
	var isArray []bool
	var index []int
	expectKey := false
	field := func() string {
		var b strings.Builder
		for i, p := range path {
			switch {
			case isArray[i]:
				b.WriteString("[" + strconv.Itoa(index[i]) + "]")
			case p == "":
			default:
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(p)
			}
		}
		return b.String()
	}
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		} else if err != nil {
			return bodyError(err)
		}
		after := dec.InputOffset()
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(path) >= maxDepth {
					return recsink.FieldErrorf(field(), "request body nests deeper than %d levels", maxDepth)
				}
				if n := len(isArray); n > 0 && isArray[n-1] {
					index[n-1]++
				}
				path, isArray, index = append(path, ""), append(isArray, t == '['), append(index, -1)
				expectKey = t == '{'
				continue
			case '}', ']':
				path, isArray, index = path[:len(path)-1], isArray[:len(isArray)-1], index[:len(index)-1]
				// What follows the closed value in its parent: a key in an
				// object; nothing to name at the top level, where a second
				// value ({}"" say) is refused by the decoder afterwards.
				expectKey = len(isArray) > 0 && !isArray[len(isArray)-1]
			}
		case string:
			name := field()
			if expectKey {
				path[len(path)-1] = t
				if name == "" {
					name = t
				} else {
					name += "." + t
				}
			} else if n := len(isArray); n > 0 && isArray[n-1] {
				index[n-1]++
				name = field()
			}
			if !utf8.Valid(body[before:after]) {
				return recsink.FieldErrorf(name, "%s must be valid UTF-8", fieldLabel(name))
			}
			if strings.IndexByte(t, 0) >= 0 {
				return recsink.FieldErrorf(name, "%s must not contain NUL characters", fieldLabel(name))
			}
			if expectKey {
				expectKey = false
				continue
			}
		default:
			if n := len(isArray); n > 0 && isArray[n-1] {
				index[n-1]++
			}
		}
		// After a value inside an object, the next string is a key.
		if n := len(isArray); n > 0 && !isArray[n-1] {
			expectKey = true
		}
	}
}

// fieldLabel names a field in a message; the body as a whole when empty.
func fieldLabel(name string) string {
	if name == "" {
		return "the request body"
	}
	return name
}

// quoteShort quotes a value from the request for a message, cut to its
// first 64 bytes: a message names what is wrong, it does not echo a
// 60 KB input.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// checkText refuses a path or query parameter that a store cannot keep or
// that no ID is: invalid UTF-8, NUL, or longer than maxParamLen.
func checkText(name, v string) error {
	switch {
	case !utf8.ValidString(v):
		return recsink.FieldErrorf(name, "%s must be valid UTF-8", name)
	case strings.IndexByte(v, 0) >= 0:
		return recsink.FieldErrorf(name, "%s must not contain NUL characters", name)
	case len(v) > maxParamLen:
		return recsink.FieldErrorf(name, "%s must be at most %d bytes", name, maxParamLen)
	}
	return nil
}

// maxParamLen bounds path and query parameters: IDs, cursors, filters.
const maxParamLen = 1024

// checkQuery applies checkText to every query parameter, named by its key.
func checkQuery(r *http.Request) error {
	if r.URL.RawQuery == "" {
		return nil
	}
	for key, values := range r.URL.Query() {
		name := key
		if !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0 {
			name = strconv.QuoteToASCII(key)
			return recsink.FieldErrorf(name, "query parameter %s must be valid UTF-8 without NUL", name)
		}
		for _, v := range values {
			if err := checkText(key, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// bodyError translates an error from reading or decoding a JSON body into
// a client error that names the field at fault. It never quotes a value
// from the body, which may hold a secret.
func bodyError(err error) error {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var netErr net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return withStatus(http.StatusRequestTimeout,
			recsink.Errorf(recsink.EINVALID, "request body did not arrive within the server's read deadline"))
	case errors.As(err, &maxErr):
		return withStatus(http.StatusRequestEntityTooLarge,
			recsink.Errorf(recsink.EINVALID, "request body must be at most %d bytes", maxBodySize))
	case errors.As(err, &syntaxErr):
		return recsink.Errorf(recsink.EINVALID, "request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return recsink.Errorf(recsink.EINVALID, "request body is not valid JSON: it ends too early")
	case errors.As(err, &typeErr):
		// Value may be "number -5": keep the kind, drop the value.
		kind, _, _ := strings.Cut(typeErr.Value, " ")
		if typeErr.Field == "" {
			return recsink.Errorf(recsink.EINVALID, "request body must be a JSON object, not %s", kind)
		}
		return recsink.FieldErrorf(typeErr.Field, "%s must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.String()), kind)
	}
	// encoding/json reports unknown fields only by message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if n, uerr := strconv.Unquote(name); uerr == nil {
			name = n
		}
		return recsink.FieldErrorf(name, "unknown field %q", name)
	}
	return recsink.Errorf(recsink.EINVALID, "cannot read request body: %s", err)
}

// jsonKind names a Go type the way the API's users know it.
func jsonKind(goType string) string {
	switch goType {
	case "string", "time.Time":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "float64":
		return "a number"
	}
	if strings.HasPrefix(goType, "[]") {
		return "an array"
	}
	return "an object"
}

// ctxKey is the type of this package's context keys.
type ctxKey int

const requestInfoKey ctxKey = iota

// requestInfo is filled in by the handlers of a request for its log line.
type requestInfo struct {
	org *recsink.Organization
}

// orgFrom returns the organization that authenticated the request; the
// authentication middleware guarantees one on the routes that need it.
func orgFrom(ctx context.Context) *recsink.Organization {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok && info.org != nil {
		return info.org
	}
	panic("http: no organization in context") // a route table bug
}
