package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/internal/s3test"
)

// badRequest is one malformed request of TestChaos_BadInput.
type badRequest struct {
	name   string // what is wrong, for the report
	method string
	target string // path and query, escaped as they go on the wire
	header map[string]string
	body   []byte
	// raw, when set, is written to a TCP connection as the whole request.
	raw []byte
	// field: the answer, when 400, 412 or 415, must name the field or
	// parameter at fault. (A 422 is a failed storage check: its report
	// says what S3 refused.)
	field bool
	// big: the server may cut the connection while the body is still being
	// sent; no answer is then no fault.
	big bool
}

// badAnswer is what came back.
type badAnswer struct {
	status int // 0: no answer
	err    string
	field  string
	json   bool
}

// operation is one route of the OpenAPI document.
type operation struct {
	method, path string
	query        []string // query parameter names
	header       []string // header parameter names
	body         map[string]string
}

// TestChaos_BadInput (issue 10, fault 5): at least 500 malformed requests
// across every route of the OpenAPI document — wrong JSON types, deep
// nesting, 10 MB bodies, invalid UTF-8 and NUL in paths, queries and
// bodies, bad tus headers, a malformed chunked ingest body — against
// SQLite and PostgreSQL. No answer is a 5xx (but net/http's own 501 and
// 505); every 4xx JSON answer says what is wrong, and names the field or
// parameter when one is at fault.
func TestChaos_BadInput(t *testing.T) {
	t.Parallel()
	s3 := s3test.MustStart(t)
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			var args []string
			data := t.TempDir()
			orgArgs := []string{"--data", data}
			if db == "postgres" {
				dsn := pgtest.MustStart(t).MustCreateDatabase(t)
				args = []string{"--db", dsn}
				orgArgs = []string{"--db", dsn}
			}
			apiKey := mustOrgCreate(t, orgArgs...)
			p := MustStartProcess(t, s3, data, args...)
			org := processClient(p, apiKey)
			key := s3.CreateUser(t, "user")
			bucket := s3.CreateBucket(t, key.ID)
			e := &Env{S3: s3, Main: org.m, Org: org, Key: key, Bucket: bucket}
			org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(bucket, key))
			meeting := e.MustMeeting(t, org)
			rec := MustStartRecording(t, org, meeting)

			ops := openAPIOperations(t, p.URL())
			reqs := badRequests(t, ops, e, apiKey, meeting, rec, strings.TrimPrefix(p.URL(), "http://"))
			answers := make([]badAnswer, len(reqs))
			var wg sync.WaitGroup
			next := make(chan int)
			for range 4 {
				wg.Go(func() {
					for i := range next {
						answers[i] = sendBad(p.URL(), reqs[i])
					}
				})
			}
			for i := range reqs {
				next <- i
			}
			close(next)
			wg.Wait()

			var counts statusCounts
			var faults []string
			byName := map[string]int{}
			for i, a := range answers {
				r := reqs[i]
				counts.add(a.status)
				switch {
				case a.status == 0 && !r.big:
					faults = append(faults, fmt.Sprintf("%s %s (%s): no answer: %s", r.method, shorten(r.target), r.name, a.err))
				case is5xxFault(a.status):
					faults = append(faults, fmt.Sprintf("%s %s (%s): %d %s", r.method, shorten(r.target), r.name, a.status, a.err))
				case a.status >= 400 && a.status < 500 && a.json && a.err == "":
					faults = append(faults, fmt.Sprintf("%s %s (%s): %d with an empty error", r.method, shorten(r.target), r.name, a.status))
				case r.field && a.json && a.field == "" && (a.status == 400 || a.status == 412 || a.status == 415):
					faults = append(faults, fmt.Sprintf("%s %s (%s): %d %q names no field", r.method, shorten(r.target), r.name, a.status, a.err))
				}
				if is5xxFault(a.status) {
					byName[r.name]++
				}
			}
			t.Logf("%s: %d malformed requests over %d operations; answers by status: %s", db, len(reqs), len(ops), counts.String())
			if len(faults) > 0 {
				sort.Strings(faults)
				for _, f := range faults[:min(len(faults), 40)] {
					t.Log("  " + f)
				}
				t.Logf("5xx by kind of input: %v", byName)
			}
			chaosRow(t, fmt.Sprintf("%d malformed requests on every route (%s)", len(reqs), db),
				fmt.Sprintf("%d×5xx (%s); %d answers broke the rules", counts.count(is5xxFault), counts.String(), len(faults)), 0)
			if len(reqs) < 500 {
				t.Errorf("only %d malformed requests; want at least 500", len(reqs))
			}
			if len(faults) > 0 {
				t.Errorf("%d of %d answers broke the rules (first above)", len(faults), len(reqs))
			}
		})
	}
}

// openAPIOperations reads the server's OpenAPI document and returns its
// operations, with their query and header parameters and the fields of
// their JSON bodies (name -> JSON type; nested objects as a.b).
func openAPIOperations(tb testing.TB, base string) []operation {
	tb.Helper()
	resp, err := http.Get(base + "/v1/openapi.json")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		tb.Fatalf("openapi.json: %v", err)
	}
	resolve := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		for m != nil && m["$ref"] != nil {
			var cur any = doc
			for _, part := range strings.Split(strings.TrimPrefix(m["$ref"].(string), "#/"), "/") {
				cur = cur.(map[string]any)[part]
			}
			m, _ = cur.(map[string]any)
		}
		return m
	}
	var fields func(schema map[string]any, prefix string, out map[string]string, depth int)
	fields = func(schema map[string]any, prefix string, out map[string]string, depth int) {
		props, _ := schema["properties"].(map[string]any)
		for name, v := range props {
			s := resolve(v)
			typ, _ := s["type"].(string)
			out[prefix+name] = typ
			if typ == "object" && depth < 3 {
				fields(s, prefix+name+".", out, depth+1)
			}
		}
	}
	var ops []operation
	for path, v := range doc["paths"].(map[string]any) {
		item := v.(map[string]any)
		var shared []any
		if ps, ok := item["parameters"].([]any); ok {
			shared = ps
		}
		for method, ov := range item {
			o, ok := ov.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			op := operation{method: strings.ToUpper(method), path: path}
			params, _ := o["parameters"].([]any)
			for _, pv := range append(append([]any{}, shared...), params...) {
				prm := resolve(pv)
				switch prm["in"] {
				case "query":
					op.query = append(op.query, prm["name"].(string))
				case "header":
					op.header = append(op.header, prm["name"].(string))
				}
			}
			if rb := resolve(o["requestBody"]); rb != nil {
				if content, ok := rb["content"].(map[string]any); ok {
					if js, ok := content["application/json"].(map[string]any); ok {
						op.body = map[string]string{}
						fields(resolve(js["schema"]), "", op.body, 0)
					}
				}
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	if len(ops) < 20 {
		tb.Fatalf("the OpenAPI document lists only %d operations", len(ops))
	}
	return ops
}

// Malformed values: in a path segment or query value (escaped as sent),
// and in JSON strings.
var (
	badIDs = []string{"mtg_%FF", "%00", "rec_%00x", "%FF%FE%FD", "a%C0%AF", "%ED%A0%80", "..%2F..%2Fetc", "%E2%80%AE%00",
		strings.Repeat("x", 5000), "%20", "rec_" + strings.Repeat("%FF", 100)}
	badQueryValues = []string{"%FF", "%00", "abc", "-1", "0", "1e99", "99999999999999999999", "%FF%00%FE", "%ED%A0%80", strings.Repeat("z", 5000), ""}
	badJSONValues  = []struct{ name, json string }{
		{"number", `5`}, {"negative float", `-1.5e300`}, {"boolean", `true`}, {"array", `[1,"a"]`}, {"object", `{"a":{"b":1}}`},
		{"NUL in a string", `"a\u0000b"`}, {"lone surrogate", `"\ud800"`}, {"huge number", `1e999`},
	}
)

// badRequests builds the malformed requests for ops.
func badRequests(tb testing.TB, ops []operation, e *Env, apiKey, meeting string, rec Started, host string) []badRequest {
	tb.Helper()
	api := map[string]string{"Authorization": "Bearer " + apiKey}
	ingestAuth := map[string]string{"Authorization": "Bearer " + rec.Token, "Tus-Resumable": "1.0.0"}
	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	fill := func(path, meetingID, recordingID string) string {
		path = strings.ReplaceAll(path, "{meetingId}", meetingID)
		return strings.ReplaceAll(path, "{recordingId}", recordingID)
	}
	storage := e.Storage(e.Bucket, e.Key)
	validBodies := map[string]map[string]any{
		"destination": storage,
		"meeting": {"endDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "roomNamePrefix": "standup",
			"recording": map[string]any{"type": "cloud", "startTrigger": "none", "destination": storage}},
		"webhook": {"url": "http://" + host + "/hooks", "events": []string{"recording.finished"}},
	}
	bodyKind := func(op operation) string {
		switch {
		case strings.Contains(op.path, "webhooks"):
			return "webhook"
		case op.path == "/v1/meetings":
			return "meeting"
		}
		return "destination"
	}
	// setField returns the valid body with the dotted field replaced by the
	// raw JSON value.
	setField := func(kind, field, value string) []byte {
		b, _ := json.Marshal(validBodies[kind])
		var m map[string]any
		json.Unmarshal(b, &m)
		parts := strings.Split(field, ".")
		cur := m
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = json.RawMessage(value)
		out, _ := json.Marshal(m)
		return out
	}

	var reqs []badRequest
	add := func(r badRequest) { reqs = append(reqs, r) }
	for _, op := range ops {
		isIngest := strings.HasSuffix(op.path, "/ingest")
		auth := api
		if isIngest {
			auth = ingestAuth
		}
		destructive := op.method == "DELETE" || strings.HasSuffix(op.path, "/recordings") && op.method == "POST" ||
			strings.HasSuffix(op.path, "/stop") || strings.HasSuffix(op.path, "/rotate-secret")
		// Bad IDs in the path.
		if strings.Contains(op.path, "{") {
			for _, id := range badIDs {
				target := fill(op.path, meeting, rec.ID)
				if strings.Contains(op.path, "{meetingId}") {
					target = fill(op.path, id, rec.ID)
				} else {
					target = fill(op.path, meeting, id)
				}
				add(badRequest{name: "bad path ID", method: op.method, target: target, header: auth, field: true})
			}
		}
		valid := fill(op.path, meeting, rec.ID)
		// A broken Authorization header, on every route: nothing runs.
		for _, a := range []string{"Bearer \xff\xfe", "Bearer " + strings.Repeat("k", 10000), "Basic Zm9vOmJhcg==", "Bearer", "bearer  x y"} {
			add(badRequest{name: "bad Authorization", method: op.method, target: valid, header: with(auth, "Authorization", a)})
		}
		if destructive && !isIngest {
			continue // only bad IDs: a valid request would delete or start something
		}
		// Bad query values, one parameter at a time.
		for _, q := range op.query {
			if q == "token" {
				for _, v := range []string{"%FF", "%00", "wrong", strings.Repeat("t", 5000)} {
					add(badRequest{name: "bad token query", method: op.method, target: valid + "?token=" + v,
						header: with(nil, "Tus-Resumable", "1.0.0", "Content-Type", "application/offset+octet-stream", "Upload-Offset", "0")})
				}
				continue
			}
			for _, v := range badQueryValues {
				add(badRequest{name: "bad query " + q, method: op.method, target: valid + "?" + q + "=" + v, header: auth, field: true})
			}
			add(badRequest{name: "repeated query " + q, method: op.method, target: valid + "?" + q + "=1&" + q + "=%FF", header: auth, field: true})
		}
		if op.body != nil {
			kind := bodyKind(op)
			jsonHeader := with(auth, "Content-Type", "application/json")
			names := make([]string, 0, len(op.body))
			for f := range op.body {
				names = append(names, f)
			}
			sort.Strings(names)
			for _, f := range names {
				for _, v := range badJSONValues {
					add(badRequest{name: "body field " + v.name, method: op.method, target: valid, header: jsonHeader, body: setField(kind, f, v.json), field: true})
				}
				// Invalid UTF-8 inside the string, as raw bytes.
				raw := bytes.Replace(setField(kind, f, `"@@"`), []byte("@@"), []byte("a\xff\xfeb"), 1)
				add(badRequest{name: "body field invalid UTF-8", method: op.method, target: valid, header: jsonHeader, body: raw, field: true})
				add(badRequest{name: "body field long string", method: op.method, target: valid, header: jsonHeader, body: setField(kind, f, `"`+strings.Repeat("s", 60000)+`"`), field: true})
			}
			for _, b := range []struct {
				name string
				body []byte
				big  bool
			}{
				{"deep array nesting", bytes.Repeat([]byte("["), 10000), false},
				{"deep object nesting", bytes.Repeat([]byte(`{"a":`), 10000), false},
				{"10 MB body", append(append([]byte(`{"bucket":"`), bytes.Repeat([]byte("b"), 10<<20)...), `"}`...), true},
				{"10 MB of spaces", bytes.Repeat([]byte(" "), 10<<20), true},
				{"array", []byte(`[]`), false}, {"string", []byte(`"x"`), false}, {"number", []byte(`123`), false}, {"null", []byte(`null`), false},
				{"empty object", []byte(`{}`), false}, {"unknown field", []byte(`{"zzz":1}`), false}, {"trailing data", []byte(`{} {}`), false},
				{"truncated", []byte(`{"bucket":`), false}, {"invalid UTF-8", []byte("{\"\xff\":\"\xfe\"}"), false}, {"NUL byte", []byte("{\x00}"), false},
				{"BOM", []byte("\xef\xbb\xbf{}"), false}, {"duplicate keys", []byte(`{"url":"a","url":5}`), false},
			} {
				add(badRequest{name: b.name, method: op.method, target: valid, header: jsonHeader, body: b.body, big: b.big})
			}
			for _, ct := range []string{"text/plain", "application/json; charset=\xff", "", "multipart/form-data; boundary=x"} {
				add(badRequest{name: "Content-Type " + ct, method: op.method, target: valid, header: with(auth, "Content-Type", ct), body: []byte(`{}`)})
			}
		}
	}

	// tus: bad headers on PATCH, and HEAD/PUT with odd ones.
	ingest := "/v1/recordings/" + rec.ID + "/ingest"
	patch := with(ingestAuth, "Content-Type", "application/offset+octet-stream")
	for _, off := range []string{"-1", "abc", "1e99", "99999999999999999999", "", " 0", "0x10", "+0", "0.0", "\xff"} {
		add(badRequest{name: "Upload-Offset " + off, method: "PATCH", target: ingest, header: with(patch, "Upload-Offset", off), body: []byte("media"), field: true})
	}
	add(badRequest{name: "PATCH without Upload-Offset", method: "PATCH", target: ingest, header: patch, body: []byte("media"), field: true})
	add(badRequest{name: "PATCH without Content-Type", method: "PATCH", target: ingest, header: with(ingestAuth, "Upload-Offset", "0"), body: []byte("media"), field: true})
	add(badRequest{name: "PATCH with Content-Type json", method: "PATCH", target: ingest, header: with(patch, "Content-Type", "application/json", "Upload-Offset", "0"), body: []byte("{}"), field: true})
	add(badRequest{name: "PATCH with Tus-Resumable 0.2.2", method: "PATCH", target: ingest, header: with(patch, "Tus-Resumable", "0.2.2", "Upload-Offset", "0"), body: []byte("media"), field: true})
	add(badRequest{name: "PATCH without Tus-Resumable", method: "PATCH", target: ingest,
		header: map[string]string{"Authorization": "Bearer " + rec.Token, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}, body: []byte("media"), field: true})
	add(badRequest{name: "HEAD with Tus-Resumable \xff", method: "HEAD", target: ingest, header: with(ingestAuth, "Tus-Resumable", "\xff")})
	add(badRequest{name: "PUT with Upload-Length -5", method: "PUT", target: ingest, header: with(ingestAuth, "Upload-Length", "-5"), body: []byte{}})

	// Raw requests: malformed chunked bodies on ingest, bytes the client
	// library would not send, and what net/http answers itself.
	rawHead := func(method, target string, extra string) []byte {
		return []byte(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra)
	}
	tok := "Authorization: Bearer " + rec.Token + "\r\n"
	for _, chunked := range []string{"zz\r\nhello\r\n0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n", "fffffffffffffffffff\r\nx\r\n", "5;\xff\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n"} {
		add(badRequest{name: "malformed chunked PUT", method: "PUT", target: ingest, raw: append(rawHead("PUT", ingest, tok+"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), chunked...)})
		add(badRequest{name: "malformed chunked PATCH", method: "PATCH", target: ingest, raw: append(rawHead("PATCH", ingest,
			tok+"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"), chunked...)})
	}
	apiHdr := "Authorization: Bearer " + apiKey + "\r\nConnection: close\r\n"
	for _, target := range []string{
		"/v1/meetings/mtg_\xff", "/v1/recordings?roomName=\xff\xfe", "/v1/recordings?state=%ZZ", "/v1/meetings/%ZZ", "/v1/recordings/rec_\x01",
		"/v1/storage/iam-policy?bucket=a\xffb", "/v1/meetings?limit=%", "//v1//meetings", "/v1/meetings/" + meeting + "/../../storage",
	} {
		add(badRequest{name: "raw target", method: "GET", target: target, raw: rawHead("GET", target, apiHdr+"\r\n")})
	}
	add(badRequest{name: "JSON body with a bad Content-Length", method: "POST", target: "/v1/meetings",
		raw: rawHead("POST", "/v1/meetings", apiHdr+"Content-Type: application/json\r\nContent-Length: -1\r\n\r\n{}")})
	add(badRequest{name: "header with NUL", method: "GET", target: "/v1/meetings", raw: rawHead("GET", "/v1/meetings", apiHdr+"X-A: a\x00b\r\n\r\n")})
	add(badRequest{name: "unknown HTTP version (net/http: 505)", method: "GET", target: "/v1/meetings", raw: []byte("GET /v1/meetings HTTP/9.9\r\nHost: " + host + "\r\n\r\n")})
	add(badRequest{name: "unknown Transfer-Encoding (net/http: 501)", method: "POST", target: "/v1/meetings",
		raw: rawHead("POST", "/v1/meetings", apiHdr+"Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n{}")})
	return reqs
}

// sendBad sends one malformed request and reads its answer.
func sendBad(base string, r badRequest) badAnswer {
	var resp *http.Response
	var err error
	if r.raw != nil {
		resp, err = sendRaw(strings.TrimPrefix(base, "http://"), r.method, r.raw)
	} else {
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		var req *http.Request
		req, err = http.NewRequest(r.method, base+r.target, body)
		if err != nil {
			// A target url.Parse refuses goes raw.
			u, _ := url.Parse(base)
			var hdr strings.Builder
			for k, v := range r.header {
				hdr.WriteString(k + ": " + v + "\r\n")
			}
			raw := []byte(r.method + " " + r.target + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: close\r\n" + hdr.String() +
				fmt.Sprintf("Content-Length: %d\r\n\r\n", len(r.body)))
			resp, err = sendRaw(u.Host, r.method, append(raw, r.body...))
		} else {
			for k, v := range r.header {
				req.Header[k] = []string{v}
			}
			resp, err = badClient.Do(req)
		}
	}
	if err != nil {
		return badAnswer{err: err.Error()}
	}
	defer resp.Body.Close()
	a := badAnswer{status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && json.Unmarshal(b, &e) == nil {
		a.json, a.err, a.field = true, e.Error, e.Field
	} else if resp.StatusCode >= 500 {
		a.err = shorten(string(b))
	}
	return a
}

// badClient sends the malformed requests: one connection per request, so
// that a request the server cuts off spoils no other.
var badClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// sendRaw writes raw to a new connection and reads one answer.
func sendRaw(addr, method string, raw []byte) (*http.Response, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(raw); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		c.Close()
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{resp.Body, c}
	return resp, nil
}

// shorten trims a target or message for a report line.
func shorten(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
