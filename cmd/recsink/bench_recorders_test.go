package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink/internal/s3test"
)

// The real-time recorders of BenchmarkConcurrentRecordings run in a
// process of their own, as recorders run on machines of their own in
// production: in the benchmark's process their HTTP client's garbage (32
// KiB a request, which net/http allocates to copy a body to a plain TCP
// connection: 70 % of the process's allocations at 1,000 recordings), their
// goroutines' stacks and their CPU time were counted as recsink's, in its
// GC, its heap and its cores. They still share the machine's cores, and
// their CPU time is reported beside recsink's.
//
// The benchmark drives them over a pipe, one JSON command and one JSON
// reply a line: the process is this test binary, run for
// TestBenchRecorders with RECSINK_BENCH_RECORDERS=1, reading commands on
// stdin and replying on file descriptor 3 (stdout is the test's).

// recordersCmd is a command to the recorders' process.
type recordersCmd struct {
	// Op is add (start a recorder for each of Recs), keep (end every
	// recorder after the first Keep, and wait for them), start (start
	// counting writes), stop (stop counting, and reply the counts), or
	// closeIdle (close the idle connections of ended recorders).
	Op   string    `json:"op"`
	Recs []Started `json:"recs,omitempty"`
	Keep int       `json:"keep,omitempty"`
}

// recordersReply is the reply to a recordersCmd.
type recordersReply struct {
	Err string `json:"err,omitempty"` // the command failed
	// Writes, P99 and Max are the writes acknowledged and their latency
	// between start and stop; Failed the writes that failed and Acked the
	// bytes acknowledged in that time.
	Writes, Failed, Acked int64
	P99, Max              time.Duration
	// Running is the number of recorders running after the command, and
	// FirstErr the first failed write's error since the process started.
	Running  int
	FirstErr string `json:"firstErr,omitempty"`
}

// recorders is the benchmark's side of the recorders' process.
type recorders struct {
	cmd *exec.Cmd
	enc *json.Encoder
	dec *json.Decoder
}

// startRecorders starts the recorders' process, ended when the benchmark
// ends.
func startRecorders(b *testing.B) *recorders {
	b.Helper()
	replies, replyW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchRecorders$", "-test.count=1")
	// GOGC=400, as recsink serve's (gc.go): a recorder's every request
	// leaves 32 KiB of garbage (see above), and the recorders' GC is the
	// benchmark's cost, not recsink's.
	cmd.Env = append(os.Environ(), "RECSINK_BENCH_RECORDERS=1", "GOGC=400")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{replyW}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the recorders' process: %v", err)
	}
	replyW.Close()
	r := &recorders{cmd: cmd, enc: json.NewEncoder(in), dec: json.NewDecoder(replies)}
	b.Cleanup(func() {
		// The end of its input ends the process: it ends its recorders
		// and exits.
		in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("the recorders' process: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			b.Errorf("the recorders' process did not end within 30 s of its input's end: killed")
			<-done
		}
		replies.Close()
	})
	return r
}

// send sends c and returns its reply, or an error when the process fails
// it or cannot be reached. It is not safe for concurrent use.
func (r *recorders) send(c recordersCmd) (recordersReply, error) {
	var reply recordersReply
	if err := r.enc.Encode(c); err != nil {
		return reply, fmt.Errorf("recorders' process, %s: %w", c.Op, err)
	}
	if err := r.dec.Decode(&reply); err != nil {
		return reply, fmt.Errorf("recorders' process, %s: no reply: %w", c.Op, err)
	}
	if reply.Err != "" {
		return reply, fmt.Errorf("recorders' process, %s: %s", c.Op, reply.Err)
	}
	return reply, nil
}

// do is send that fails tb on an error; only from tb's goroutine.
func (r *recorders) do(tb testing.TB, c recordersCmd) recordersReply {
	tb.Helper()
	reply, err := r.send(c)
	if err != nil {
		tb.Fatal(err)
	}
	return reply
}

// cpu returns the CPU time that the recorders' process has used.
func (r *recorders) cpu() (time.Duration, bool) { return s3test.ProcessCPU(r.cmd.Process.Pid) }

// TestBenchRecorders is the recorders' process of
// BenchmarkConcurrentRecordings, when run by it; skipped otherwise.
func TestBenchRecorders(t *testing.T) {
	if os.Getenv("RECSINK_BENCH_RECORDERS") != "1" {
		t.Skip("the recorders' process of BenchmarkConcurrentRecordings, run by it")
	}
	out := os.NewFile(3, "replies")
	if out == nil {
		t.Fatal("no file descriptor 3 to reply on")
	}
	if err := serveRecorders(os.Stdin, out); err != nil {
		t.Fatal(err)
	}
}

// serveRecorders runs recorders as the commands read from in say, replying
// on out, until in ends; then it ends them all.
func serveRecorders(in io.Reader, out io.Writer) error {
	// A write buffer that holds a whole request: net/http copies a body
	// that does not fit through a buffer of 32 KiB allocated anew for each
	// request, and that garbage's GC took CPU from the cores the recorders
	// share with recsink.
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute,
		WriteBufferSize: rtWriteBytes + 4<<10}}
	defer client.CloseIdleConnections()
	payload := benchData(rtWriteBytes)
	hist := &latencyHist{}
	var failed, acked atomic.Int64
	var firstErr atomic.Value
	// The recorders end first (cancel), then they are waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type recorder struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var running []recorder
	var failed0, acked0 int64
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	for {
		var c recordersCmd
		if err := dec.Decode(&c); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read a command: %w", err)
		}
		var r recordersReply
		switch c.Op {
		case "add":
			for _, rec := range c.Recs {
				rctx, rcancel := context.WithCancel(ctx)
				done := make(chan struct{})
				running = append(running, recorder{rcancel, done})
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer close(done)
					if err := ackedWriter(rctx, client, rec, payload, hist, &failed, &acked); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}()
			}
		case "keep":
			if c.Keep < 0 || c.Keep > len(running) {
				r.Err = fmt.Sprintf("keep %d of %d recorders: want 0 to %d", c.Keep, len(running), len(running))
				break
			}
			for _, rec := range running[c.Keep:] {
				rec.cancel()
			}
			for _, rec := range running[c.Keep:] {
				<-rec.done
			}
			running = running[:c.Keep]
		case "closeIdle":
			client.CloseIdleConnections()
		case "start":
			failed0, acked0 = failed.Load(), acked.Load()
			hist.start()
		case "stop":
			hist.stop()
			r.Writes, r.P99, r.Max = hist.count(), hist.quantile(0.99), hist.max()
			r.Failed, r.Acked = failed.Load()-failed0, acked.Load()-acked0
		default:
			r.Err = fmt.Sprintf("unknown command %q: want add, keep, start, stop or closeIdle", c.Op)
		}
		r.Running = len(running)
		if err, ok := firstErr.Load().(error); ok {
			r.FirstErr = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("reply to %s: %w", c.Op, err)
		}
	}
}

// TestServeRecorders drives the recorders' process's loop against a tus
// stand-in that acknowledges every PATCH: recorders start, their writes
// and acknowledged bytes are counted between start and stop, keep ends
// them, and a bad command gets an error, not a silent reply.
func TestServeRecorders(t *testing.T) {
	var patches atomic.Int64
	var mu sync.Mutex
	offsets := map[string]int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil || r.Method != "PATCH" {
			http.Error(w, "bad PATCH", http.StatusBadRequest)
			return
		}
		mu.Lock()
		offsets[r.URL.Path] += n
		off := offsets[r.URL.Path]
		mu.Unlock()
		patches.Add(1)
		w.Header().Set("Upload-Offset", strconv.FormatInt(off, 10))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	cmds, cmdW := io.Pipe()
	repliesR, replies := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- serveRecorders(cmds, replies) }()
	// The benchmark's own side of the pipe.
	rs := &recorders{enc: json.NewEncoder(cmdW), dec: json.NewDecoder(repliesR)}

	recs := []Started{{ID: "a", IngestURL: srv.URL + "/a"}, {ID: "b", IngestURL: srv.URL + "/b"}, {ID: "c", IngestURL: srv.URL + "/c"}}
	if r := rs.do(t, recordersCmd{Op: "add", Recs: recs}); r.Running != 3 {
		t.Fatalf("add 3: %+v, want 3 running", r)
	}
	rs.do(t, recordersCmd{Op: "start"})
	// Each recorder writes every rtInterval: wait for two rounds.
	before := patches.Load()
	if !waitFor(10*time.Second, func() bool { return patches.Load() >= before+6 }) {
		t.Fatalf("%d PATCHes within 10 s of start, want 6 more", patches.Load()-before)
	}
	r := rs.do(t, recordersCmd{Op: "stop"})
	if r.Writes < 3 || r.Failed != 0 || r.Acked < 3*rtWriteBytes || r.P99 <= 0 || r.Max < r.P99 || r.FirstErr != "" {
		t.Errorf("stop after 6 acknowledged PATCHes: %+v, want at least 3 writes and their bytes counted, none failed", r)
	}
	if r := rs.do(t, recordersCmd{Op: "keep", Keep: 1}); r.Running != 1 {
		t.Errorf("keep 1: %d running", r.Running)
	}
	if _, err := rs.send(recordersCmd{Op: "keep", Keep: 2}); err == nil || !strings.Contains(err.Error(), "keep 2 of 1") {
		t.Errorf("keep 2 of 1: error %v, want one naming the counts", err)
	}
	if _, err := rs.send(recordersCmd{Op: "shout"}); err == nil || !strings.Contains(err.Error(), `unknown command "shout"`) {
		t.Errorf("unknown command: error %v", err)
	}
	cmdW.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serveRecorders after its input ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveRecorders did not end within 10 s of its input's end")
	}
}
