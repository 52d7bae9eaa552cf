package http_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	rshttp "github.com/recsink/recsink/http"
)

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters      map[string]openAPIParam    `json:"parameters"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

type openAPIParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type openAPIOp struct {
	Security   *[]map[string][]string     `json:"security"`
	Parameters []openAPIParam             `json:"parameters"`
	Responses  map[string]json.RawMessage `json:"responses"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPIMatchesRoutes checks the served document against the route
// table both ways, the path parameters of every operation, and that the
// document's security matches what the mux really requires.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	req := ts.NewRequest(t, "GET", "/v1/openapi.json", "")
	req.Header.Del("Authorization")
	resp, b := ts.Do(t, req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var doc openAPIDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}

	inDoc := map[string]openAPIOp{}
	for path, item := range doc.Paths {
		var pathParams []openAPIParam
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &pathParams); err != nil {
				t.Fatal(err)
			}
		}
		for key, raw := range item {
			if key == "parameters" || key == "summary" || key == "description" {
				continue
			}
			if !slices.Contains(httpMethods, key) {
				t.Errorf("%s: unknown key %q", path, key)
				continue
			}
			var op openAPIOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			if len(op.Responses) == 0 {
				t.Errorf("%s %s: no responses", key, path)
			}
			op.Parameters = append(op.Parameters, pathParams...)
			checkPathParams(t, &doc, strings.ToUpper(key)+" "+path, path, op.Parameters)
			inDoc[strings.ToUpper(key)+" "+path] = op
		}
	}

	inTable := map[string]bool{}
	for _, rt := range rshttp.Routes() {
		inTable[rt.Method+" "+rt.Path] = true
		if _, ok := inDoc[rt.Method+" "+rt.Path]; !ok {
			t.Errorf("route %s %s is not in openapi.json", rt.Method, rt.Path)
		}
	}
	for route := range inDoc {
		if !inTable[route] {
			t.Errorf("openapi.json documents %s, which is not a route", route)
		}
	}

	// Every documented operation is served by the mux, and asks for
	// credentials exactly when the document says it does.
	wildcard := regexp.MustCompile(`\{[^}]+\}`)
	for route, op := range inDoc {
		method, path, _ := strings.Cut(route, " ")
		req := mustRequest(t, method, ts.URL+wildcard.ReplaceAllString(path, "x"))
		resp, b := ts.Do(t, req)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s: not served: status %d: %s", route, resp.StatusCode, b)
		}
		secured := len(doc.Security) > 0
		if op.Security != nil {
			secured = len(*op.Security) > 0
		}
		if got := resp.StatusCode == http.StatusUnauthorized; got != secured {
			t.Errorf("%s: status %d without credentials; documented secured: %v", route, resp.StatusCode, secured)
		}
		if op.Security != nil {
			for _, req := range *op.Security {
				for name := range req {
					if _, ok := doc.Components.SecuritySchemes[name]; !ok {
						t.Errorf("%s: unknown security scheme %q", route, name)
					}
				}
			}
		}
	}
}

// checkPathParams checks that the path's wildcards and the operation's path
// parameters are the same set.
func checkPathParams(t *testing.T, doc *openAPIDoc, route, path string, params []openAPIParam) {
	t.Helper()
	var want []string
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
		want = append(want, m[1])
	}
	var got []string
	for _, p := range params {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			var found bool
			if p, found = doc.Components.Parameters[name]; !found {
				t.Errorf("%s: no parameter %q", route, name)
				continue
			}
		}
		if p.In == "path" {
			got = append(got, p.Name)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("%s: path parameters %v, wildcards %v", route, got, want)
	}
}
