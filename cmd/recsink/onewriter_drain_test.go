package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3spy"
)

// TestOneWriter_DrainExact is issue 11's exact drain semantics, end to end
// on two nodes:
//
//   - a blocked recording keeps its key counted in GET /v1/credentials, and
//     the key's entry says why it is not yet safe to delete
//     (safeToDeleteReason) instead of giving a date in safeToDeleteAfter (a
//     blocked recording may need its key at any later time);
//   - deleting a meeting that has its own key drains that key like a
//     replacement: draining while a recording holds it, then drained;
//   - credential.drained is delivered only after the recording is uploaded
//     and after the key's last use (the metadata copy, which the proxy holds
//     back for up to 2 s to show an early event).
func TestOneWriter_DrainExact(t *testing.T) {
	c := mustOWCluster(t, 2, nil)
	const owner = 1
	api := c.Client(0)
	// Keys A and D reach the bucket through its policy; B is another
	// bucket's owner.
	keyA, keyD, keyB := c.S3.CreateUser(t, "user"), c.S3.CreateUser(t, "user"), c.S3.CreateUser(t, "user")
	c.S3.PutBucketPolicy(t, c.Bucket, c.Key, c.Key.ID, keyA.ID, keyD.ID)
	bucketB := c.S3.CreateBucket(t, keyB.ID)
	api.MustDo(t, 200, "PUT", "/v1/storage", c.Storage(c.Bucket, keyA))

	// 1. A blocked recording keeps its key counted.
	r1 := MustStartRecording(t, c.Client(owner), c.Meeting(t))
	data1 := randomBytes(t, 12*mib+1)
	r1.MustPut(t, data1[:6*mib])
	waitUploaded(t, api, r1.ID, 5*mib)
	// The organization moves to key B on another bucket: R1 cannot switch
	// to it and keeps key A, which then loses the bucket's permission.
	api.MustDo(t, 200, "PUT", "/v1/storage", c.Storage(bucketB, keyB))
	c.S3.PutBucketPolicy(t, c.Bucket, c.Key, c.Key.ID, keyD.ID)
	r1.MustPut(t, data1[6*mib:11*mib])
	WaitState(t, api, r1.ID, recsink.RecordingBlocked, 30*time.Second)
	a := credentialsByKey(t, api)["organization/"+keyA.ID]
	t.Logf("GET /v1/credentials, key A held by a blocked recording: %v", a)
	if a["state"] != recsink.CredentialDraining || fmt.Sprint(activeIDs(a)) != fmt.Sprint([]string{r1.ID}) {
		t.Errorf("key A while its recording is blocked: %v; want draining, held by %s", a, r1.ID)
	}
	why, _ := a["safeToDeleteReason"].(string)
	if a["safeToDeleteAfter"] != nil || !strings.Contains(why, r1.ID) || !strings.Contains(why, "blocked") {
		t.Errorf("key A while its recording is blocked: safeToDeleteAfter %v, safeToDeleteReason %q; want no date, and a reason that names the blocked recording", a["safeToDeleteAfter"], why)
	}
	// A gets the bucket back; R1 resumes with it and finishes.
	c.S3.PutBucketPolicy(t, c.Bucket, c.Key, c.Key.ID, keyA.ID, keyD.ID)
	r1.MustPut(t, data1[11*mib:])
	lastUseA, seenA := stopAndWatchDrain(t, c, r1, keyA, owner)

	// 2. Deleting a meeting drains its own key.
	room := c.Meeting(t)
	api.MustDo(t, 200, "PUT", "/v1/meetings/"+room+"/recording/destination", c.Storage(c.Bucket, keyD))
	r2 := MustStartRecording(t, c.Client(owner), room)
	data2 := randomBytes(t, 7*mib+2)
	r2.MustPut(t, data2)
	api.MustDo(t, 204, "DELETE", "/v1/meetings/"+room, nil)
	d := credentialsByKey(t, api)[room+"/"+keyD.ID]
	t.Logf("GET /v1/credentials, the deleted meeting's key D: %v", d)
	if d["state"] != recsink.CredentialDraining || fmt.Sprint(activeIDs(d)) != fmt.Sprint([]string{r2.ID}) {
		t.Errorf("key D after its meeting was deleted: %v; want draining, held by %s", d, r2.ID)
	}
	lastUseD, seenD := stopAndWatchDrain(t, c, r2, keyD, owner)
	if d := credentialsByKey(t, api)[room+"/"+keyD.ID]; d["state"] != recsink.CredentialDrained || len(activeIDs(d)) != 0 {
		t.Errorf("key D after its recording was uploaded: %v; want drained", d)
	}
	checkObject(t, c.S3, c.Bucket, r1.ObjectKey, data1)
	checkObject(t, c.S3, c.Bucket, r2.ObjectKey, data2)
	t.Logf("credential.drained seen %s after key A's last use, %s after key D's (the deleted meeting's)",
		seenA.Sub(lastUseA).Round(time.Millisecond), seenD.Sub(lastUseD).Round(time.Millisecond))
}

// stopAndWatchDrain stops rec, whose key is the last holder of key, and
// checks that credential.drained for key arrives only after rec is
// uploaded and after the key's last S3 request: the completion (the key's
// last use) is held back for up to 2 s, and a drained event seen meanwhile
// is an error. It
// returns the end of the key's last request and when the event was seen.
func stopAndWatchDrain(t *testing.T, c *owCluster, rec Started, key recsink.AccessKey, owner int) (lastUse, seen time.Time) {
	t.Helper()
	forKey := func(d map[string]any) bool { return d["accessKeyId"] == key.ID }
	drained := func() bool {
		evs, _ := c.Rcv.eventsFor(recsink.WebhookCredentialDrained, forKey)
		return len(evs) > 0
	}
	hold := c.Spy.Hold(func(r s3spy.Request) bool {
		return r.Op == "CompleteMultipartUpload" && r.Key == rec.ObjectKey && r.PID == c.PID(owner)
	})
	c.Client(0).MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	if waitFor(20*time.Second, func() bool { return len(hold.Caught()) > 0 }) {
		if waitFor(2*time.Second, drained) {
			t.Errorf("key %s: credential.drained delivered while the recording's completion with that key was still in flight", key.ID)
		}
	} else {
		t.Logf("key %s: no completion within 20 s of the stop", key.ID)
	}
	hold.Release()
	if !waitFor(20*time.Second, func() bool {
		return drained() || recording(t, c.Client(0), rec.ID)["state"] == recsink.RecordingFailed
	}) {
		t.Fatalf("key %s: no credential.drained within 20 s of the completion's release; recording %v", key.ID, recording(t, c.Client(0), rec.ID)["state"])
	}
	seen = time.Now()
	if st := recording(t, c.Client(0), rec.ID)["state"]; st != recsink.RecordingUploaded {
		t.Errorf("key %s: credential.drained delivered while its recording is %v, want uploaded", key.ID, st)
	}
	for _, r := range c.Spy.Requests() {
		if r.AccessKeyID == key.ID && r.End.After(lastUse) {
			lastUse = r.End
		}
	}
	if seen.Before(lastUse) {
		t.Errorf("key %s: credential.drained seen before the key's last request ended", key.ID)
	}
	evs, n := c.Rcv.eventsFor(recsink.WebhookCredentialDrained, forKey)
	if len(evs) != 1 || n != 1 {
		t.Errorf("key %s: credential.drained %d events accepted %d times, want once", key.ID, len(evs), n)
	}
	return lastUse, seen
}
