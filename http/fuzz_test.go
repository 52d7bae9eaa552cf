package http_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/recsink/recsink"
	rshttp "github.com/recsink/recsink/http"
)

// checkClientError fails unless err is a client error with a 4xx status:
// bad input never answers 5xx.
func checkClientError(t *testing.T, err error) {
	t.Helper()
	var e *recsink.Error
	if !errors.As(err, &e) || e.Code != recsink.EINVALID {
		t.Fatalf("not an EINVALID error: %#v", err)
	}
	if st := rshttp.StatusOf(err); st < 400 || st > 499 {
		t.Fatalf("status %d for %v", st, err)
	}
	if e.Message == "" {
		t.Fatalf("no message: %#v", e)
	}
}

// FuzzDecodeJSON drives the JSON body decoder with every request body
// type: it never panics, every error is a 4xx that says what is wrong, and
// every body it accepts holds only valid UTF-8 without NUL.
//
//	go test -run '^$' -fuzz FuzzDecodeJSON -fuzztime 10s ./http
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		validStorageBody,
		`{"endDate":"2030-01-01T00:00:00Z","recording":{"type":"cloud","destination":{"bucket":"b"}}}`,
		`{"url":"https://example.com/hook","events":["recording.uploaded"]}`,
		`{"bucket":"\u0000"}`, "{\"bucket\":\"\xff\"}", `{"bucket":5}`, `[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]`,
		`{"recording":{"type":["x"]}}`, `{} {}`, `{"a":`, ``, ` `, `null`, `"x"`, `{"endDate":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range rshttp.Inputs() {
			ok, err := rshttp.DecodeJSONBytes(body, "application/json", v, true)
			if err != nil {
				checkClientError(t, err)
				continue
			}
			if ok && !cleanJSON(body) {
				t.Fatalf("accepted a body with invalid UTF-8 or NUL: %q", body)
			}
		}
	})
}

// FuzzTusHeaders drives the tus PATCH header parser: it never panics,
// every error is a 4xx naming the header at fault, and an offset it
// accepts is the header's exact decimal value.
//
//	go test -run '^$' -fuzz FuzzTusHeaders -fuzztime 10s ./http
func FuzzTusHeaders(f *testing.F) {
	for _, seed := range [][3]string{
		{"1.0.0", "application/offset+octet-stream", "0"},
		{"1.0.0", "application/offset+octet-stream", "-1"},
		{"1.0.0", "application/offset+octet-stream", "abc"},
		{"1.0.0", "application/offset+octet-stream", "99999999999999999999"},
		{"1.0.0", "application/offset+octet-stream", "+5"},
		{"1.0.0", "application/offset+octet-stream; x=\"", "5"},
		{"1.0.0", "text/plain", "5"},
		{"0.2.2", "application/offset+octet-stream", "5"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, version, contentType, offset string) {
		h := http.Header{}
		h.Set("Tus-Resumable", version)
		h.Set("Content-Type", contentType)
		h.Set("Upload-Offset", offset)
		n, err := rshttp.ParseTusPatch(h)
		if err != nil {
			checkClientError(t, err)
			switch f := recsink.ErrorField(err); f {
			case "Tus-Resumable", "Content-Type", "Upload-Offset":
			default:
				t.Fatalf("error names %q", f)
			}
			return
		}
		if want := strings.TrimLeft(offset, "0"); n < 0 || strconv.FormatInt(n, 10) != cmp.Or(want, "0") {
			t.Fatalf("offset %q parsed as %d", offset, n)
		}
	})
}

// cleanJSON reports whether body is valid UTF-8 and no string in it (key
// or value) holds NUL.
func cleanJSON(body []byte) bool {
	var v any
	if !utf8.Valid(body) || json.Unmarshal(body, &v) != nil {
		return false
	}
	var clean func(any) bool
	clean = func(v any) bool {
		switch x := v.(type) {
		case string:
			return !strings.ContainsRune(x, 0)
		case []any:
			for _, e := range x {
				if !clean(e) {
					return false
				}
			}
		case map[string]any:
			for k, e := range x {
				if !clean(k) || !clean(e) {
					return false
				}
			}
		}
		return true
	}
	return clean(v)
}
