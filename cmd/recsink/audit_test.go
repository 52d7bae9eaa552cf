package main_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestAudit_API: storage saved, a meeting and a recording deleted through
// the API are in GET /v1/audit, newest first, naming the API key by its
// fingerprint and the client's address, and never a secret.
func TestAudit_API(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t) // saves the storage through the API
	rec := MustStartRecording(t, e.Org, meeting)
	rec.MustPut(t, randomBytes(t, 2000))
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	e.Org.MustDo(t, 204, "DELETE", "/v1/recordings/"+rec.ID, nil)
	other := e.MustMeeting(t, e.Org)
	e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+other, nil)
	e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+other, nil) // already gone: not a change

	out := e.Org.MustDo(t, 200, "GET", "/v1/audit", nil)
	var got []string
	for _, r := range out["results"].([]any) {
		ev := r.(map[string]any)
		got = append(got, ev["action"].(string)+" "+ev["target"].(string))
		if ev["actor"] != recsink.APIKeyActor(e.Org.Key) || ev["address"] != "127.0.0.1" || !msTime.MatchString(ev["time"].(string)) {
			t.Errorf("event %v", ev)
		}
	}
	want := []string{
		recsink.AuditMeetingDeleted + " " + other,
		recsink.AuditRecordingDeleted + " " + rec.ID,
		recsink.AuditStorageSaved + " " + recsink.ScopeOrganization,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || out["cursor"] != nil {
		t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), e.Key.Secret) || strings.Contains(string(b), e.Org.Key) {
		t.Fatalf("the audit trail shows a secret: %s", b)
	}
	if !strings.Contains(string(b), e.Key.ID) || !strings.Contains(string(b), e.Bucket) {
		t.Errorf("storage.saved lacks the key ID or the bucket: %s", b)
	}
}

// TestAudit_StreamKeys: a room's stream key created and revoked is in the
// audit trail, never the key itself.
func TestAudit_StreamKeys(t *testing.T) {
	t.Parallel()
	e, meeting := mustRecordingEnv(t)
	created := e.Org.MustDo(t, 201, "POST", "/v1/meetings/"+meeting+"/stream-key", nil)
	key, _ := created["streamKey"].(string)
	if key == "" {
		t.Fatalf("no stream key in %v", created)
	}
	e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+meeting+"/stream-key", nil)

	out := e.Org.MustDo(t, 200, "GET", "/v1/audit", nil)
	var got []string
	for _, r := range out["results"].([]any) {
		ev := r.(map[string]any)
		got = append(got, ev["action"].(string)+" "+ev["target"].(string))
	}
	want := []string{
		recsink.AuditStreamKeyRevoked + " " + meeting,
		recsink.AuditStreamKeySet + " " + meeting,
		recsink.AuditStorageSaved + " " + recsink.ScopeOrganization,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if b, _ := json.Marshal(out); strings.Contains(string(b), key) {
		t.Fatalf("the audit trail shows the stream key: %s", b)
	}
}
