package http_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/recsink/recsink"
)

// TestSecretNeverInResponse sends the secret through every route that takes
// one, in valid and invalid bodies and through every kind of failure, and
// searches every response (body and headers) and the log for it.
func TestSecretNeverInResponse(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	var fail error
	ts.Storage.SaveStorageFn = func(ctx context.Context, orgID, scope string, dest recsink.Destination, key recsink.AccessKey) (*recsink.Credential, *recsink.CheckReport, error) {
		if fail != nil {
			return nil, nil, fail
		}
		c := testCredential(scope, dest)
		return c, okReport("eu-west-1"), nil
	}
	ts.Meetings.CreateMeetingFn = func(ctx context.Context, orgID string, m *recsink.Meeting, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.Meeting, error) {
		if fail != nil {
			return nil, fail
		}
		c := *m
		c.ID = testMeeting
		return &c, nil
	}

	bodies := []string{
		validStorageBody,
		storageBody(t, map[string]any{"bucket": "BAD"}),
		storageBody(t, map[string]any{"accessKeySecret": testSecret + " x"}),
		storageBody(t, map[string]any{"region": testSecret}),
		storageBody(t, map[string]any{"fileFormat": testSecret}),
		storageBody(t, map[string]any{"endpoint": "https://" + testSecret + "@example.com"}),
		storageBody(t, map[string]any{"forcePathStyle": testSecret}),
		storageBody(t, map[string]any{"accessKeyId": map[string]any{"x": testSecret}}),
		validStorageBody + testSecret,
		`{"accessKeySecret":"` + testSecret + `"`,
		strings.Repeat(" ", 65<<10) + validStorageBody,
	}
	failures := []error{
		nil,
		&recsink.CheckError{Report: &recsink.CheckReport{Checks: []recsink.Check{{Name: "PutObject", Message: "denied"}}}},
		&recsink.StorageError{Op: "HeadBucket", Code: "SignatureDoesNotMatch", StatusCode: 403, Err: errors.New("sig")},
		fmt.Errorf("sealing %s: %w", testSecret, errors.New("kms down")), // a careless internal error
	}

	check := func(what string, resp *http.Response, b []byte) {
		t.Helper()
		if strings.Contains(string(b), testSecret) {
			t.Errorf("%s: status %d: secret in body: %s", what, resp.StatusCode, b)
		}
		for k, vs := range resp.Header {
			for _, v := range vs {
				if strings.Contains(v, testSecret) {
					t.Errorf("%s: secret in header %s", what, k)
				}
			}
		}
	}
	for _, f := range failures {
		fail = f
		for i, body := range bodies {
			for _, rt := range []struct{ method, path string }{
				{"PUT", "/v1/storage"},
				{"POST", "/v1/storage/check"},
				{"PUT", "/v1/meetings/" + testMeeting + "/recording/destination"},
			} {
				resp, b := ts.Call(t, rt.method, rt.path, body)
				check(fmt.Sprintf("%s %s body %d failure %v", rt.method, rt.path, i, f != nil), resp, b)
			}
			mb := meetingBody(t, nil, nil, nil)
			if i > 0 {
				mb = `{"endDate":"2099-01-01T00:00:00Z","recording":{"type":"cloud","destination":` + body + `}}`
			}
			resp, b := ts.Call(t, "POST", "/v1/meetings", mb)
			check(fmt.Sprintf("POST /v1/meetings body %d", i), resp, b)
		}
	}
	for _, path := range []string{"/v1/storage", "/v1/credentials", "/v1/meetings/" + testMeeting + "/recording/destination", "/v1/recordings/" + testRecID, "/v1/recordings"} {
		resp, b := ts.Call(t, "GET", path, "")
		check("GET "+path, resp, b)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: status %d", path, resp.StatusCode)
		}
	}

	// The log may hold the careless internal error (it is the detail an
	// operator needs) but nothing that came from a request body.
	log := strings.ReplaceAll(ts.Log.String(), "sealing "+testSecret, "")
	if strings.Contains(log, testSecret) {
		t.Errorf("secret in log:\n%s", log)
	}
}
