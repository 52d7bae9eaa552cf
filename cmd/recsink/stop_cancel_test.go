package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// slowBody sends head at once, then the rest in 4 KiB pieces, one per tick,
// so that the client's cancellation lands mid-body. headSent is closed when
// the client comes back for more after the head.
type slowBody struct {
	head, rest []byte
	tick       time.Duration
	headSent   chan struct{}
	told       bool // headSent is closed
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.head) > 0 {
		n := copy(p, b.head)
		b.head = b.head[n:]
		return n, nil
	}
	if !b.told {
		close(b.headSent)
		b.told = true
	}
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	time.Sleep(b.tick) // the client's pace: the cancellation lands mid-body
	n := copy(p, b.rest[:min(len(b.rest), 4<<10)])
	b.rest = b.rest[n:]
	return n, nil
}

// TestStopAfterCancelHTTP: real tus PATCHes of 62.5 KB, as the benchmark
// sends, are canceled by their client mid-body or just after, inside a part
// or across the first 5 MiB part boundary, and the recording is stopped at
// once: the stop answers 200 and the recording ends at the bytes
// acknowledged (HEAD before the stop), against versitygw.
func TestStopAfterCancelHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end against versitygw")
	}
	e := MustEnv(t)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", e.Key))
	meeting := e.MustMeeting(t, e.Org)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	const chunk = 62_500
	const boundary = 5 << 20
	data := benchData(boundary + chunk)
	// before: bytes in the recording before the cut PATCH; sent: bytes of
	// it that the client sends before the cancel (chunk: all of it).
	cases := []struct{ before, sent int }{
		{chunk, 0}, {chunk, chunk / 3}, {chunk, chunk},
		{boundary - chunk, chunk / 2}, {boundary - chunk, chunk},
		{boundary - chunk/2, chunk / 2}, {boundary - chunk/2, chunk},
	}
	for round := range 3 {
		for _, c := range cases {
			name := fmt.Sprintf("round %d, before %d, sent %d", round, c.before, c.sent)
			rec := MustStartRecording(t, e.Org, meeting)
			ctx := context.Background()
			if n, err := patch(ctx, client, rec, 0, data[:c.before]); err != nil || n != int64(c.before) {
				t.Fatalf("%s: first PATCH: %d, %v", name, n, err)
			}
			pctx, cancel := context.WithCancel(ctx)
			body := &slowBody{head: data[c.before : c.before+c.sent], rest: data[c.before+c.sent : c.before+chunk], tick: 5 * time.Millisecond, headSent: make(chan struct{})}
			req, err := http.NewRequestWithContext(pctx, "PATCH", rec.IngestURL, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = chunk
			req.Header.Set("Authorization", "Bearer "+rec.Token)
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			req.Header.Set("Upload-Offset", strconv.Itoa(c.before))
			done := make(chan struct{})
			go func() {
				defer close(done)
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			// Cancel after the head has gone out, varying the moment.
			select {
			case <-body.headSent:
			case <-done: // the PATCH ended before its body was read: the stop below still applies
			case <-time.After(10 * time.Second):
				cancel()
				t.Fatalf("%s: the PATCH's first %d bytes not sent within 10 s", name, c.sent)
			}
			time.Sleep(time.Duration(round) * 3 * time.Millisecond) // the varied moment of the cancel, which is under test
			cancel()
			<-done
			if err := stopRecording(ctx, client, e.Org, rec.ID); err != nil {
				t.Fatalf("%s: stop right after the canceled PATCH: %v", name, err)
			}
			_, out := e.Org.Do(t, "GET", "/v1/recordings/"+rec.ID, nil)
			got, _ := out["bytesReceived"].(float64)
			if got < float64(c.before) || got > float64(c.before+chunk) {
				t.Fatalf("%s: stopped at %v bytes, want %d..%d", name, got, c.before, c.before+chunk)
			}
		}
	}
}
