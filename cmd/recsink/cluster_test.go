package main_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/internal/s3test"
)

// TestCluster_ThreeNodes runs three recsink processes on one PostgreSQL and
// versitygw. Recorders use any node: ingest and stops reach the owner
// through the node they call. One node is killed with SIGKILL mid-recording:
// another completes its stopped recording whose bytes are all in S3; the
// killed node starts again with its data folder and finishes the rest.
func TestCluster_ThreeNodes(t *testing.T) {
	t.Parallel()
	s3 := s3test.MustStart(t)
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	key := s3.CreateUser(t, "user")
	bucket := s3.CreateBucket(t, key.ID)
	apiKey := mustOrgCreate(t, "--db", dsn)

	// Every node decrypts the same saved secrets: one master key for all.
	masterKey := mustMasterKeyFile(t)
	rcv := NewReceiver(t)
	nodeArgs := []string{"--db", dsn, "--lease-ttl", "1s", "--master-key-file", masterKey, "--allow-endpoint", rcv.HostPort()}
	var nodes [3]*Process
	var dirs [3]string
	for i := range nodes {
		dirs[i] = t.TempDir()
		nodes[i] = MustStartProcess(t, s3, dirs[i], nodeArgs...)
	}
	client := func(i int) *Client { return &Client{m: &TestMain{url: nodes[i].URL()}, Key: apiKey} }
	e := &Env{S3: s3, Main: client(0).m, Org: client(0), Key: key, Bucket: bucket}
	client(0).MustDo(t, 200, "PUT", "/v1/storage", e.Storage(bucket, key))
	client(2).MustDo(t, 200, "PUT", "/v1/webhooks", map[string]any{"url": rcv.URL + "/hooks"})
	meeting := e.MustMeeting(t, client(1))

	// Six recordings, two started on each node; each recorder talks to the
	// next node, which sends its media on to the owner.
	var recs [6]Started
	data := map[string][]byte{}
	via := func(r Started, node int) Started {
		r.IngestURL = nodes[node].URL() + "/v1/recordings/" + r.ID + "/ingest"
		return r
	}
	defer func() {
		if t.Failed() {
			for i, n := range nodes {
				t.Logf("node %d log:\n%s", i, n.logs)
			}
		}
	}()
	for i := range recs {
		owner := i % 3
		recs[i] = via(MustStartRecording(t, client(owner), meeting), (owner+1)%3)
		n := 6*mib + i
		switch i {
		case 1:
			n = 10 * mib // two whole parts: every byte reaches S3 before the stop
		case 4:
			n = 13 * mib
		}
		data[recs[i].ID] = randomBytes(t, n)
	}
	for i, r := range recs {
		first := data[r.ID]
		if i == 4 {
			first = first[:7*mib] // the rest after node 1 comes back
		}
		r.MustPut(t, first)
	}
	waitUploaded(t, client(2), recs[1].ID, 10*mib)

	// S3 goes down, recording 1 (node 1's) is stopped through node 0, and
	// node 1 dies before it can complete the object.
	s3.Stop(t)
	client(0).MustDo(t, 200, "POST", "/v1/recordings/"+recs[1].ID+"/stop", nil)
	WaitState(t, client(2), recs[1].ID, recsink.RecordingStopping, 10*time.Second)
	nodes[1].Kill()
	killed := time.Now()
	s3.Start(t)

	out := WaitState(t, client(2), recs[1].ID, recsink.RecordingUploaded, 30*time.Second)
	t.Logf("takeover: recording %s completed by another node %s after node 1 was killed (lease TTL 1 s)", recs[1].ID, time.Since(killed).Round(10*time.Millisecond))
	mustContain(t, findEvent(t, out, recsink.EventRecovered), "taken over")

	// Recording 4's unsent bytes are in node 1's spool: it waits for node 1.
	if got := client(0).MustDo(t, 200, "GET", "/v1/recordings/"+recs[4].ID, nil); got["state"] != recsink.RecordingRecording {
		t.Fatalf("recording 4 while its node is down: %v", got)
	}
	nodes[1] = MustStartProcess(t, s3, dirs[1], nodeArgs...)
	if off := recs[4].Offset(t); off != 7*mib {
		t.Fatalf("recording 4's offset through node 2 after node 1 came back: %d, want %d", off, 7*mib)
	}
	recs[4].MustPut(t, data[recs[4].ID][7*mib:])

	for i, r := range recs {
		if i != 1 {
			client((i+2)%3).MustDo(t, 200, "POST", "/v1/recordings/"+r.ID+"/stop", nil)
		}
	}
	for i, r := range recs {
		WaitState(t, client(i%3), r.ID, recsink.RecordingUploaded, 30*time.Second)
		checkObject(t, s3, bucket, r.ObjectKey, data[r.ID])
	}
	// Every node tells the same drain view: the key is current and held by none.
	for i := range nodes {
		creds := credentialsByKey(t, client(i))
		c := creds["organization/"+key.ID]
		if c["state"] != recsink.CredentialCurrent || len(activeIDs(c)) != 0 {
			t.Fatalf("node %d's drain view: %v", i, c)
		}
	}
	// Each recording's started and finished events reached the receiver
	// once, whichever node sent them.
	for _, r := range recs {
		rcv.WaitEvent(t, recsink.WebhookRecordingStarted, forRecording(r.ID), 20*time.Second)
		rcv.WaitEvent(t, recsink.WebhookRecordingFinished, forRecording(r.ID), 20*time.Second)
	}
	rcv.mu.Lock()
	for id, n := range rcv.accepted {
		if n != 1 {
			t.Errorf("event %s accepted %d times", id, n)
		}
	}
	if len(rcv.events) != 2*len(recs) {
		t.Errorf("%d events for %d recordings: %v", len(rcv.events), len(recs), rcv.events)
	}
	rcv.mu.Unlock()
	if strings.Contains(nodes[1].logs.String(), key.Secret) {
		t.Fatal("a node logged the secret")
	}
}

// TestCluster_NodeLost: a node dies for good with unsent bytes of a
// recording in its spool; once the node-loss timeout passes, another node
// reports the recording failed, saying how many bytes were lost, and sends
// recording.failed. It is never reported as uploaded.
func TestCluster_NodeLost(t *testing.T) {
	t.Parallel()
	s3 := s3test.MustStart(t)
	dsn := pgtest.MustStart(t).MustCreateDatabase(t)
	key := s3.CreateUser(t, "user")
	bucket := s3.CreateBucket(t, key.ID)
	apiKey := mustOrgCreate(t, "--db", dsn)
	masterKey := mustMasterKeyFile(t)
	rcv := NewReceiver(t)
	args := []string{"--db", dsn, "--lease-ttl", "1s", "--node-loss-timeout", "2s", "--master-key-file", masterKey, "--allow-endpoint", rcv.HostPort()}
	doomed := MustStartProcess(t, s3, t.TempDir(), args...)
	survivor := MustStartProcess(t, s3, t.TempDir(), args...)
	a := &Client{m: &TestMain{url: doomed.URL()}, Key: apiKey}
	b := &Client{m: &TestMain{url: survivor.URL()}, Key: apiKey}
	e := &Env{S3: s3, Main: b.m, Org: b, Key: key, Bucket: bucket}
	b.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(bucket, key))
	b.MustDo(t, 200, "PUT", "/v1/webhooks", map[string]any{"url": rcv.URL + "/hooks"})
	rec := MustStartRecording(t, a, e.MustMeeting(t, b))
	rec.MustPut(t, randomBytes(t, 2*mib)) // under one part: all of it only in the doomed node's spool
	waitReceived(t, b, rec.ID, 2*mib)     // as the other node sees it, from the database
	doomed.Kill()
	os.RemoveAll(doomed.Data) // its disk is gone for good

	out := WaitState(t, b, rec.ID, recsink.RecordingFailed, 30*time.Second)
	mustContain(t, out["lastError"].(string), "cannot be recovered")
	mustContain(t, out["lastError"].(string), "2097152 bytes")
	failed := rcv.WaitEvent(t, recsink.WebhookRecordingFailed, forRecording(rec.ID), 20*time.Second)
	t.Logf("recording.failed: %v", failed["data"].(map[string]any)["reason"])
}

// waitReceived waits until the recording's bytesReceived reaches n.
func waitReceived(tb testing.TB, c *Client, id string, n int64) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if out := c.MustDo(tb, 200, "GET", "/v1/recordings/"+id, nil); out["bytesReceived"].(float64) >= float64(n) {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	tb.Fatalf("recording %s: fewer than %d bytes received after 20 s", id, n)
}
