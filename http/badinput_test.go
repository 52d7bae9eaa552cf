package http_test

import (
	"net/http"
	"strings"
	"testing"

	rshttp "github.com/recsink/recsink/http"
)

// TestBadInputNeverServerError sends malformed requests to every route:
// bad bytes in each path parameter, bad query parameters, bodies of the
// wrong shape, type, depth, size and encoding, and bad tus headers. None is
// answered 5xx, and every 400 about a parameter names it.
func TestBadInputNeverServerError(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	ts.API.WebhookService = &WebhookService{}

	params := []string{"%FF", "%00", "a%00b", "%C0%AF", "%ED%A0%80", strings.Repeat("x", 1100)}
	queries := []string{"limit=abc", "limit=-1", "limit=0", "limit=99999999999999999999", "cursor=%FF", "cursor=%00",
		"state=%00", "state=nope", "roomName=%FF", "roomName=a%00", "bucket=%FF", "token=%00", "%00=1", "%FF", "a=%FF&a=ok"}
	deep := strings.Repeat("[", 500) + strings.Repeat("]", 500)
	bodies := []string{
		`{"x":`, `[]`, `"s"`, `5`, `null`, `true`, `{} {}`, `{"a":1}x`, deep, strings.Repeat(`{"a":`, 30) + "1" + strings.Repeat("}", 30),
		"{\"bucket\":\"\xff\"}", `{"bucket":"\u0000"}`, `{"bucket":[]}`, `{"bucket":{}}`, `{"region":5}`, `{"forcePathStyle":"yes"}`,
		`{"endDate":5}`, `{"endDate":"\u0000"}`, `{"roomNamePrefix":"\u0000"}`, `{"recording":"x"}`, `{"recording":{"destination":5}}`,
		`{"recording":{"type":"cloud","destination":{"bucket":"\u0000"}}}`, `{"url":5}`, `{"url":"\u0000"}`, `{"events":"x"}`,
		`{"events":[5]}`, `{"events":["\u0000"]}`, `{"accessKeyId":"\u0000","secretAccessKey":"\ud800"}`, `{"\u0000":1}`,
		`{"bucket":"` + strings.Repeat("b", 2<<20) + `"}`, `{"bucket":1e999}`, `{"bucket":-0}`, `{"endDate":"2030-13-45T99:99:99Z"}`,
	}
	offsets := []string{"-1", "abc", "99999999999999999999", "+5", " 5", "0x10", "", "5,6"}

	var sent, fives int
	check := func(req *http.Request, wantField string) {
		t.Helper()
		sent++
		resp, b := ts.Do(t, req)
		if resp.StatusCode >= 500 {
			fives++
			t.Errorf("%s %s: status %d: %s", req.Method, req.URL, resp.StatusCode, b)
			return
		}
		if wantField != "" && resp.StatusCode == 400 && req.Method != "HEAD" {
			if e := MustDecodeError(t, b); e.Field == "" {
				t.Errorf("%s %s: 400 without a field: %s", req.Method, req.URL, b)
			}
		}
	}
	for _, rt := range rshttp.Routes() {
		if rt.Method == "OPTIONS" {
			continue
		}
		path := rt.Path
		good := strings.NewReplacer("{meetingId}", testMeeting, "{recordingId}", testRecID).Replace(path)
		newReq := func(p, body string) *http.Request {
			req := ts.NewRequest(t, rt.Method, p, body)
			if strings.HasSuffix(rt.Path, "/ingest") {
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Content-Type", "application/offset+octet-stream")
				req.Header.Set("Upload-Offset", "0")
			}
			return req
		}
		for _, name := range []string{"{meetingId}", "{recordingId}"} {
			if !strings.Contains(path, name) {
				continue
			}
			for _, bad := range params {
				// The first pair wins: name gets the bad value, the
				// other wildcard a good one.
				p := strings.NewReplacer(name, bad, "{meetingId}", testMeeting, "{recordingId}", testRecID).Replace(path)
				check(newReq(p, ""), "param")
			}
		}
		for _, q := range queries {
			check(newReq(good+"?"+q, ""), "")
		}
		switch rt.Method {
		case "PUT", "POST", "PATCH":
			if strings.HasSuffix(rt.Path, "/ingest") {
				for _, off := range offsets {
					req := newReq(good, "media")
					req.Header.Set("Upload-Offset", off)
					check(req, "header")
				}
				for _, ct := range []string{"", "application/json", "application/offset+octet-stream; x=\"", "text/plain"} {
					req := newReq(good, "media")
					req.Header.Set("Content-Type", ct)
					check(req, "header")
				}
				continue
			}
			for _, body := range bodies {
				check(newReq(good, body), "")
			}
			req := newReq(good, `{}`)
			req.Header.Set("Content-Type", "text/plain")
			check(req, "")
		}
	}
	t.Logf("%d malformed requests across %d routes, %d answered 5xx", sent, len(rshttp.Routes()), fives)
	if sent < 500 {
		t.Errorf("only %d requests", sent)
	}
	if strings.Contains(ts.Log.String(), "level=ERROR") {
		t.Errorf("bad input logged as error:\n%.3000s", ts.Log.String())
	}
}
