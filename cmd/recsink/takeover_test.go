package main_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestRecording_ReconnectTakesOver: a recorder's PUT goes silent mid-body
// (its connection died without a FIN, as far as the server can tell) and the
// recorder resumes with a tus PATCH on a new connection. The PATCH is taken
// at once instead of waiting for the old request; the old one is answered
// 409 at once, its acknowledged bytes kept; the object is byte-identical.
func TestRecording_ReconnectTakesOver(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	rec := MustStartRecording(t, e.Org, meeting)
	data := randomBytes(t, 3*mib)
	pr, pw := io.Pipe()
	defer pw.Close()
	old := make(chan int, 1)
	go func() { old <- rec.Put(t, pr).StatusCode }()
	if _, err := pw.Write(data[:mib]); err != nil {
		t.Fatal(err)
	}
	// The spool syncs a quiet body within 250 ms; wait until HEAD shows it.
	deadline := time.Now().Add(10 * time.Second)
	for rec.Offset(t) < mib {
		if time.Now().After(deadline) {
			t.Fatalf("offset %d, want %d", rec.Offset(t), mib)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition under a deadline
	}

	began := time.Now()
	resp := rec.Patch(t, mib, bytes.NewReader(data[mib:]))
	took := time.Since(began)
	if resp.StatusCode != 204 {
		t.Fatalf("the PATCH after reconnecting: status %d, want 204", resp.StatusCode)
	}
	select {
	case status := <-old:
		t.Logf("reconnected PATCH of 2 MiB answered 204 in %s; the silent PUT answered %d after %s", took, status, time.Since(began))
		if status != 409 {
			t.Errorf("the silent PUT ended with %d, want 409", status)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the silent PUT was not answered")
	}
	if took > 2*time.Second {
		t.Errorf("the PATCH after reconnecting took %s, want at once (it used to wait 5 s, then 409)", took)
	}
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
}
