package http_test

import (
	"strings"
	"testing"

	"github.com/recsink/recsink"
)

// TestAudit: a change through the API is recorded with the API key's
// fingerprint (never the key), the client's address and what changed; a
// read is not; GET /v1/audit lists it.
func TestAudit(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	ts.Call(t, "GET", "/v1/recordings/"+testRecID, "")
	if resp, b := ts.Call(t, "DELETE", "/v1/recordings/"+testRecID, ""); resp.StatusCode != 204 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if resp, b := ts.Call(t, "PUT", "/v1/storage", storageBody(t, nil)); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	es := ts.Audit.Events()
	if len(es) != 2 {
		t.Fatalf("%d events: %+v", len(es), es)
	}
	if e := es[0]; e.Action != recsink.AuditRecordingDeleted || e.Target != testRecID || e.Actor != recsink.APIKeyActor(testAPIKey) || e.Address != "127.0.0.1" || e.OrgID != testOrgID {
		t.Errorf("event %+v", e)
	}
	if e := es[1]; e.Action != recsink.AuditStorageSaved || !strings.Contains(e.Details, testKeyID) || strings.Contains(e.Details, testSecret) {
		t.Errorf("event %+v", e)
	}
	resp, b := ts.Call(t, "GET", "/v1/audit", "")
	if resp.StatusCode != 200 || strings.Contains(string(b), testAPIKey) || strings.Contains(string(b), testSecret) || !strings.Contains(string(b), `"cursor":null`) {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if v := MustDecode(t, b); len(v["results"].([]any)) != 2 || v["results"].([]any)[0].(map[string]any)["action"] != recsink.AuditStorageSaved {
		t.Errorf("GET /v1/audit: %s", b)
	}
}
