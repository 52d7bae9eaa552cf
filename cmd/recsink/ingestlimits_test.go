package main_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
)

// TestFlagIngestIdleTimeout runs the real service and spool: a PUT that
// goes quiet is cut after --ingest-idle-timeout with 408 and the offset it
// reached, a PATCH whose chunked encoding breaks is a 400 with the offset
// before the break, each acknowledged offset is what HEAD reports, and the
// object is byte-identical to what was acknowledged.
func TestFlagIngestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	e, meeting := mustRecordingEnv(t, func(c *main.Config) { c.IngestIdleTimeout = idle })
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 300<<10)

	// 200 KiB, then silence.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write(data[:200<<10])
	req, _ := http.NewRequest("PUT", rec.IngestURL, pr)
	req.Header.Set("Authorization", "Bearer "+rec.Token)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Upload-Offset") != strconv.Itoa(200<<10) {
		t.Fatalf("silent PUT: status %d, Upload-Offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	if took < idle || took > idle+5*time.Second {
		t.Errorf("silent PUT cut after %s; idle timeout %s", took, idle)
	}
	if got := rec.Offset(t); got != 200<<10 {
		t.Fatalf("HEAD after the cut: %d", got)
	}

	// 50 KiB in one chunk, then a chunk size "zz".
	u, _ := url.Parse(rec.IngestURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	chunk := data[200<<10 : 250<<10]
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: %d\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
		u.Path, u.Host, rec.Token, 200<<10, len(chunk))
	conn.Write(chunk)
	io.WriteString(conn, "\r\nzz\r\nnot media\r\n0\r\n\r\n")
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Upload-Offset") != strconv.Itoa(250<<10) {
		t.Fatalf("malformed chunk: status %d, Upload-Offset %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	if got := rec.Offset(t); got != 250<<10 {
		t.Fatalf("HEAD after the malformed chunk: %d", got)
	}

	// The rest, then the object holds exactly what was acknowledged.
	if resp := rec.Patch(t, 250<<10, bytes.NewReader(data[250<<10:])); resp.StatusCode != 204 {
		t.Fatalf("PATCH the rest: %d", resp.StatusCode)
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
	if t.Failed() {
		t.Logf("log:\n%s", e.Main.Logs)
	}
}
