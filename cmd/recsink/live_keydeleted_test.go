package main_test

import (
	"os"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestLive_RTMPKeyDeletedEarly is the second half of issue 15's rotation
// proof: while ffmpeg publishes over RTMP on key A, key B is saved (the live
// recording stays on A, draining) and A is then deleted in versitygw before
// the stream ends. The live recording switches to B, as a recording over
// HTTP ingest does (TestRotation_KeyDeletedEarly): it completes on B, its
// history says so, A is drained, and the object plays with both streams.
func TestLive_RTMPKeyDeletedEarly(t *testing.T) {
	e := mustLiveEnv(t, time.Second)
	b := e.S3.CreateUserFor(t, e.Bucket)

	p := startPublisher(t, e.URL)
	e.waitLive(t, true, 20*time.Second)
	id := e.recordings(t)[0]["recordingId"].(string)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	if a := credentialsByKey(t, e.Org)["organization/"+e.Env.Key.ID]; a["state"] != recsink.CredentialDraining {
		t.Fatalf("old key while live: %v; want draining", a)
	}
	// A is deleted early, while the stream still runs: every upload of the
	// live recording from now on is refused on A.
	time.Sleep(time.Until(p.started.Add(4 * time.Second))) // part of the stream's length, not a wait for a condition
	e.S3.DeleteUser(t, e.Env.Key.ID)
	time.Sleep(time.Until(p.started.Add(8 * time.Second))) // the stream's length
	sent := p.stop(t, os.Interrupt)
	out := WaitState(t, e.Org, id, recsink.RecordingUploaded, 60*time.Second)
	logEvents(t, out)
	if got := out["credential"].(map[string]any)["accessKeyId"]; got != b.ID {
		t.Fatalf("the live recording holds %v after A was deleted, want %s", got, b.ID)
	}
	switched := findEvent(t, out, recsink.EventCredentialSwitched)
	mustContain(t, switched, e.Env.Key.ID)
	mustContain(t, switched, b.ID)
	if a := credentialsByKey(t, e.Org)["organization/"+e.Env.Key.ID]; a["state"] != recsink.CredentialDrained {
		t.Fatalf("key A still counts the switched recording: %v", a)
	}
	pk := probeLive(t, e.S3.GetObject(t, e.Bucket, out["objectKey"].(string)))
	gap, _, _ := pk.check(t)
	t.Logf("streamed %v; object ends at %.3f s, largest video gap %.3f s; switched: %s", sent.Round(time.Millisecond), pk.end, gap, switched)
}
