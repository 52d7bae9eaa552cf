package main_test

// Helpers of the fault tests of issue 10 (TestChaos_*; `make chaos`).

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaosRow logs the line that the README's fault table takes: the fault,
// what the user saw, and how many acknowledged bytes were lost.
func chaosRow(tb testing.TB, fault, saw string, lost int64) {
	tb.Helper()
	tb.Logf("CHAOS ROW | %s | %s | %d bytes lost", fault, saw, lost)
}

// statusCounts counts answers by status, from many goroutines.
type statusCounts struct {
	mu sync.Mutex
	m  map[int]int
}

func (c *statusCounts) add(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int]int{}
	}
	c.m[status]++
}

func (c *statusCounts) get(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[status]
}

// count returns how many answers match.
func (c *statusCounts) count(match func(status int) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for s, k := range c.m {
		if match(s) {
			n += k
		}
	}
	return n
}

func (c *statusCounts) total() int { return c.count(func(int) bool { return true }) }

// String lists the counts in status order: "200×12 503×4"; status 0 is a
// request that got no answer.
func (c *statusCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ss []int
	for s := range c.m {
		ss = append(ss, s)
	}
	sort.Ints(ss)
	var parts []string
	for _, s := range ss {
		name := strconv.Itoa(s)
		if s == 0 {
			name = "no-answer"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, c.m[s]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// countingTransport counts every answer's status, and the 503s without a
// Retry-After, and calls onAnswer (when set) with each.
type countingTransport struct {
	base     http.RoundTripper
	counts   statusCounts
	mu       sync.Mutex
	noRetry  int // 503 answers without Retry-After
	onAnswer func(req *http.Request, resp *http.Response)
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		t.counts.add(0)
		return nil, err
	}
	t.counts.add(resp.StatusCode)
	if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
		t.mu.Lock()
		t.noRetry++
		t.mu.Unlock()
	}
	if t.onAnswer != nil {
		t.onAnswer(req, resp)
	}
	return resp, nil
}

// is5xxFault reports whether status is a server error other than 503 (the
// answer for "try again") and net/http's own 501/505 for a transfer
// encoding or protocol version it does not speak.
func is5xxFault(status int) bool {
	return status >= 500 && status != 503 && status != 501 && status != 505
}

var (
	flagsMu    sync.Mutex
	serveFlags string
)

// hasServeFlag reports whether `recsink serve` knows --name. The fault
// tests pass the flags that other changes add only when the binary has
// them, so that a test without them fails on the behaviour it checks, not
// on an unknown flag.
func hasServeFlag(tb testing.TB, name string) bool {
	tb.Helper()
	flagsMu.Lock()
	defer flagsMu.Unlock()
	if serveFlags == "" {
		out, _ := exec.Command(mustBuild(tb), "serve", "-h").CombinedOutput()
		serveFlags = string(out)
	}
	return strings.Contains(serveFlags, "-"+name+" ") || strings.Contains(serveFlags, "-"+name+"\n")
}

// flagIf returns --name value when the binary has the flag, else nothing
// and a log line saying that the server runs on its default.
func flagIf(tb testing.TB, name, value string) []string {
	tb.Helper()
	if hasServeFlag(tb, name) {
		return []string{"--" + name, value}
	}
	tb.Logf("recsink serve has no --%s: running on its default (the behaviour checked below needs it)", name)
	return nil
}

// processClient is an API client of a recsink process.
func processClient(p *Process, apiKey string) *Client {
	return &Client{m: &TestMain{S3: p.s3, url: p.URL()}, Key: apiKey}
}

// ingestVia returns r with its ingest URL on the process p (after a
// restart on another port, or to reach another node).
func ingestVia(r Started, p *Process) Started {
	r.IngestURL = p.URL() + "/v1/recordings/" + r.ID + "/ingest"
	return r
}

// getRecording fetches a recording without failing the test: a status of 0
// means no answer.
func getRecording(c *Client, id string) (int, map[string]any) {
	var out map[string]any
	status, err := doJSON(c, "GET", "/v1/recordings/"+id, &out)
	if err != nil {
		return 0, nil
	}
	return status, out
}

// chaosHTTP is the client of the fault tests: no request waits for an
// answer longer than 30 s.
var chaosHTTP = &http.Client{Timeout: 30 * time.Second}

// doJSON sends a request without a body and decodes a JSON answer into out.
func doJSON(c *Client, method, path string, out any) (int, error) {
	req, err := http.NewRequest(method, c.m.URL()+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	resp, err := chaosHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	return resp.StatusCode, nil
}
