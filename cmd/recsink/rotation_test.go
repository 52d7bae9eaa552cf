package main_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// rotationEnv: on srv, key A (e.Key) saved for the organization, and keys
// B and C with the same access to the bucket, the spec's "new key with
// identical permissions" (on versitygw A owns the bucket and its policy
// names B and C; on SeaweedFS the three identities' actions name the
// bucket).
func rotationEnv(tb testing.TB, srv s3test.Backend) (e *S3Env, meeting string, rcv *Receiver, b, c recsink.AccessKey) {
	tb.Helper()
	e, meeting, rcv = mustS3WebhookEnv(tb, srv)
	b = e.S3.CreateUserFor(tb, e.Bucket)
	c = e.S3.CreateUserFor(tb, e.Bucket)
	return e, meeting, rcv, b, c
}

// credentialsByKey returns GET /v1/credentials keyed by scope and key ID.
func credentialsByKey(tb testing.TB, c *Client) map[string]map[string]any {
	tb.Helper()
	out := c.MustDo(tb, 200, "GET", "/v1/credentials", nil)
	byKey := map[string]map[string]any{}
	for _, r := range out["results"].([]any) {
		r := r.(map[string]any)
		byKey[r["scope"].(string)+"/"+r["accessKeyId"].(string)] = r
	}
	return byKey
}

func activeIDs(cred map[string]any) []string {
	var ids []string
	for _, id := range cred["activeRecordings"].(map[string]any)["ids"].([]any) {
		ids = append(ids, id.(string))
	}
	sort.Strings(ids)
	return ids
}

// TestRotation_Organization is scenarios 1 and 5: three recordings hold key
// A, B is saved, two more hold B; A drains as the three stop; a restart in
// the middle changes nothing in what is reported. On versitygw and
// SeaweedFS; every object is byte-identical with the checksum S3 reports
// (on SeaweedFS, the restart leaves parts known without their CRCs, which
// its ListParts does not list: the completion lets S3 combine them).
func TestRotation_Organization(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting, rcv, b, _ := rotationEnv(t, srv)
		var onA, onB []Started
		for range 3 {
			onA = append(onA, MustStartRecording(t, e.Org, meeting))
		}
		e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
		for range 2 {
			onB = append(onB, MustStartRecording(t, e.Org, meeting))
		}
		data := map[string][]byte{}
		for _, r := range append(append([]Started{}, onA...), onB...) {
			data[r.ID] = randomBytes(t, 6*mib+len(data))
			r.MustPut(t, data[r.ID])
			out := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+r.ID, nil)
			want := e.Key.ID
			if len(data) > 3 {
				want = b.ID
			}
			if got := out["credential"].(map[string]any)["accessKeyId"]; got != want {
				t.Fatalf("recording %d holds %v, want %s", len(data), got, want)
			}
		}

		creds := credentialsByKey(t, e.Org)
		a := creds["organization/"+e.Key.ID]
		var wantIDs []string
		var latest time.Time
		for _, r := range onA {
			wantIDs = append(wantIDs, r.ID)
			out := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+r.ID, nil)
			start, _ := time.Parse(time.RFC3339Nano, out["startDate"].(string))
			if start.After(latest) {
				latest = start
			}
		}
		sort.Strings(wantIDs)
		safe, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(a["safeToDeleteAfter"]))
		if a["state"] != recsink.CredentialDraining || fmt.Sprint(activeIDs(a)) != fmt.Sprint(wantIDs) || !safe.Equal(latest.Add(24*time.Hour)) {
			t.Fatalf("key A: %v; want draining with %v, safe after %s", a, wantIDs, latest.Add(24*time.Hour))
		}
		if cb := creds["organization/"+b.ID]; cb["state"] != recsink.CredentialCurrent || len(activeIDs(cb)) != 2 {
			t.Fatalf("key B: %v", cb)
		}
		t.Logf("GET /v1/credentials, key A: %v", a)
		t.Logf("GET /v1/credentials, key B: %v", creds["organization/"+b.ID])

		// Scenario 5: a restart changes nothing in what is reported.
		e.Main.Restart(t)
		if again := credentialsByKey(t, e.Org); fmt.Sprint(again) != fmt.Sprint(creds) {
			t.Fatalf("after a restart:\n%v\nbefore:\n%v", again, creds)
		}
		for i := range onA {
			onA[i].IngestURL = e.Main.URL() + "/v1/recordings/" + onA[i].ID + "/ingest"
		}

		for _, r := range onA {
			e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+r.ID+"/stop", nil)
		}
		for _, r := range onA {
			WaitState(t, e.Org, r.ID, recsink.RecordingUploaded, 30*time.Second)
		}
		a = credentialsByKey(t, e.Org)["organization/"+e.Key.ID]
		if a["state"] != recsink.CredentialDrained || a["safeToDeleteAfter"] != nil || len(activeIDs(a)) != 0 {
			t.Fatalf("key A after the stops: %v", a)
		}
		drained := rcv.WaitEvent(t, recsink.WebhookCredentialDrained, func(d map[string]any) bool { return d["accessKeyId"] == e.Key.ID }, 20*time.Second)
		mustContain(t, drained["data"].(map[string]any)["message"].(string), "safe to delete")
		for _, r := range onB {
			e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+r.ID+"/stop", nil)
			WaitState(t, e.Org, r.ID, recsink.RecordingUploaded, 30*time.Second)
		}
		for _, r := range append(onA, onB...) {
			checkObject(t, e.S3, e.Bucket, r.ObjectKey, data[r.ID])
			got, _ := e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+r.ID, nil)["checksum"].(string)
			if head := headChecksum(t, e.S3, e.S3.AdminKey(), e.Bucket, r.ObjectKey); head == "" || head != got {
				t.Errorf("recording %s reports checksum %q; head-object --checksum-mode ENABLED says %q", r.ID, got, head)
			}
			checkCRC(t, got, data[r.ID])
		}
	})
}

// TestRotation_Room is scenario 2: a room's key rotated through the REST
// API while the organization's key is untouched. On versitygw and
// SeaweedFS.
func TestRotation_Room(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting, rcv, b, c := rotationEnv(t, srv)
		room := mustMeeting(t, e.Org)
		e.Org.MustDo(t, 200, "PUT", "/v1/meetings/"+room+"/recording/destination", e.Storage(e.Bucket+"/rooms", c))
		first := MustStartRecording(t, e.Org, room)
		e.Org.MustDo(t, 200, "PUT", "/v1/meetings/"+room+"/recording/destination", e.Storage(e.Bucket+"/rooms", b))
		second := MustStartRecording(t, e.Org, room)
		orgRec := MustStartRecording(t, e.Org, meeting)

		creds := credentialsByKey(t, e.Org)
		if cr := creds[room+"/"+c.ID]; cr["state"] != recsink.CredentialDraining || fmt.Sprint(activeIDs(cr)) != fmt.Sprint([]string{first.ID}) {
			t.Fatalf("room key C: %v", cr)
		}
		if cr := creds[room+"/"+b.ID]; cr["state"] != recsink.CredentialCurrent || fmt.Sprint(activeIDs(cr)) != fmt.Sprint([]string{second.ID}) {
			t.Fatalf("room key B: %v", cr)
		}
		if ca := creds["organization/"+e.Key.ID]; ca["state"] != recsink.CredentialCurrent || fmt.Sprint(activeIDs(ca)) != fmt.Sprint([]string{orgRec.ID}) {
			t.Fatalf("organization key A: %v", ca)
		}
		data := randomBytes(t, 7*mib)
		first.MustPut(t, data)
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+first.ID+"/stop", nil)
		WaitState(t, e.Org, first.ID, recsink.RecordingUploaded, 30*time.Second)
		rcv.WaitEvent(t, recsink.WebhookCredentialDrained, func(d map[string]any) bool { return d["accessKeyId"] == c.ID && d["scope"] == room }, 20*time.Second)
		if cr := credentialsByKey(t, e.Org)[room+"/"+c.ID]; cr["state"] != recsink.CredentialDrained {
			t.Fatalf("room key C after the stop: %v", cr)
		}
		checkObject(t, e.S3, e.Bucket, first.ObjectKey, data)
		if !strings.HasPrefix(first.ObjectKey, "rooms/") {
			t.Fatalf("room recording went to %s", first.ObjectKey)
		}
	})
}

// TestRotation_KeyDeletedEarly is scenario 3: A is deleted in S3 while a
// recording holds it and B is saved: the recording switches to B and the
// object is intact. On versitygw and SeaweedFS.
func TestRotation_KeyDeletedEarly(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting, _, b, _ := rotationEnv(t, srv)
		rec := MustStartRecording(t, e.Org, meeting)
		data := randomBytes(t, 17*mib+5)
		rec.MustPut(t, data[:6*mib])
		waitUploaded(t, e.Org, rec.ID, 5*mib)
		e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
		e.S3.DeleteUser(t, e.Key.ID)
		rec.MustPut(t, data[6*mib:])
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
		checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
		if got := out["credential"].(map[string]any)["accessKeyId"]; got != b.ID {
			t.Fatalf("recording holds %v after the switch, want %s", got, b.ID)
		}
		switched := findEvent(t, out, recsink.EventCredentialSwitched)
		mustContain(t, switched, e.Key.ID)
		mustContain(t, switched, b.ID)
		logEvents(t, out)
		if a := credentialsByKey(t, e.Org)["organization/"+e.Key.ID]; a["state"] != recsink.CredentialDrained {
			t.Fatalf("key A still counts the switched recording: %v", a)
		}
	})
}

// TestRotation_Blocked is scenario 4: the only saved key is deleted
// mid-recording: the recording is blocked and keeps taking media; key C is
// saved and it resumes; the object is intact. On versitygw and SeaweedFS:
// both refuse the deleted key with InvalidAccessKeyId.
func TestRotation_Blocked(t *testing.T) {
	t.Parallel()
	onEachS3(t, func(t *testing.T, srv s3test.Backend) {
		e, meeting, rcv, _, c := rotationEnv(t, srv)
		rec := MustStartRecording(t, e.Org, meeting)
		data := randomBytes(t, 19*mib+7)
		rec.MustPut(t, data[:6*mib])
		waitUploaded(t, e.Org, rec.ID, 5*mib)
		e.S3.DeleteUser(t, e.Key.ID)
		rec.MustPut(t, data[6*mib:12*mib])
		blocked := rcv.WaitEvent(t, recsink.WebhookRecordingUploadBlocked, forRecording(rec.ID), 30*time.Second)
		mustContain(t, blocked["data"].(map[string]any)["reason"].(string), "InvalidAccessKeyId")
		out := WaitState(t, e.Org, rec.ID, recsink.RecordingBlocked, 10*time.Second)
		if out["bytesUploaded"].(float64) >= out["bytesReceived"].(float64) {
			t.Fatalf("blocked but nothing behind: %v", out)
		}
		rec.MustPut(t, data[12*mib:15*mib]) // media keeps flowing while blocked
		began := time.Now()
		e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", c))
		rcv.WaitEvent(t, recsink.WebhookRecordingUploadResumed, forRecording(rec.ID), 30*time.Second)
		t.Logf("resumed %s after key C was saved", time.Since(began).Round(time.Millisecond))
		rec.MustPut(t, data[15*mib:])
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		out = WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
		checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
		findEvent(t, out, recsink.EventUploadBlocked)
		findEvent(t, out, recsink.EventUploadResumed)
		logEvents(t, out)
	})
}

func findEvent(tb testing.TB, rec map[string]any, typ string) string {
	tb.Helper()
	for _, ev := range rec["events"].([]any) {
		if ev := ev.(map[string]any); ev["type"] == typ {
			return ev["message"].(string)
		}
	}
	tb.Fatalf("no %s event in %v", typ, rec["events"])
	return ""
}

func logEvents(tb testing.TB, rec map[string]any) {
	for _, ev := range rec["events"].([]any) {
		ev := ev.(map[string]any)
		tb.Logf("event %s %s: %s", ev["time"], ev["type"], ev["message"])
	}
}
