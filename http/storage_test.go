package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/recsink/recsink"
)

var validStorageBody = `{"provider":"s3","bucket":"my-bucket/recordings","region":"eu-west-1","fileFormat":"mp4","accessKeyId":"` + testKeyID + `","accessKeySecret":"` + testSecret + `"}`

// storageBody returns a valid storage body with fields replaced (nil
// deletes a field).
func storageBody(tb testing.TB, replace map[string]any) string {
	tb.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(validStorageBody), &v); err != nil {
		tb.Fatal(err)
	}
	for k, x := range replace {
		if x == nil {
			delete(v, k)
		} else {
			v[k] = x
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// invalidStorageCases are bodies refused before any service is called, with
// the status and field of the refusal. They are shared by every route that
// takes a destination.
func invalidStorageCases(tb testing.TB) []struct {
	name, body, contentType string
	status                  int
	field                   string
} {
	return []struct {
		name, body, contentType string
		status                  int
		field                   string
	}{
		{"ErrUnknownField", storageBody(tb, map[string]any{"bukket": "x"}), "", 400, "bukket"},
		{"ErrWrongTypeBool", storageBody(tb, map[string]any{"forcePathStyle": "yes"}), "", 400, "forcePathStyle"},
		{"ErrWrongTypeString", storageBody(tb, map[string]any{"bucket": 42}), "", 400, "bucket"},
		{"ErrBucketUppercase", storageBody(tb, map[string]any{"bucket": "MyBucket"}), "", 400, "bucket"},
		{"ErrBucketTooShort", storageBody(tb, map[string]any{"bucket": "ab"}), "", 400, "bucket"},
		{"ErrBucketIPAddress", storageBody(tb, map[string]any{"bucket": "192.168.1.10"}), "", 400, "bucket"},
		{"ErrBucketURL", storageBody(tb, map[string]any{"bucket": "https://my-bucket.s3.amazonaws.com/rec"}), "", 400, "bucket"},
		{"ErrBucketHost", storageBody(tb, map[string]any{"bucket": "my-bucket.s3.amazonaws.com"}), "", 400, "bucket"},
		{"ErrBucketMissing", storageBody(tb, map[string]any{"bucket": nil}), "", 400, "bucket"},
		{"ErrPrefixBad", storageBody(tb, map[string]any{"bucket": "my-bucket/a//b"}), "", 400, "bucket"},
		{"ErrFileFormat", storageBody(tb, map[string]any{"fileFormat": "avi"}), "", 400, "fileFormat"},
		{"ErrRegion", storageBody(tb, map[string]any{"region": "EU West"}), "", 400, "region"},
		{"ErrProvider", storageBody(tb, map[string]any{"provider": "gcs"}), "", 400, "provider"},
		{"ErrEndpoint", storageBody(tb, map[string]any{"endpoint": "ftp://s3.example.com"}), "", 400, "endpoint"},
		{"ErrEndpointPath", storageBody(tb, map[string]any{"endpoint": "https://s3.example.com/bucket"}), "", 400, "endpoint"},
		{"ErrAccessKeyIDMissing", storageBody(tb, map[string]any{"accessKeyId": nil}), "", 400, "accessKeyId"},
		{"ErrAccessKeySecretMissing", storageBody(tb, map[string]any{"accessKeySecret": nil}), "", 400, "accessKeySecret"},
		{"ErrAccessKeySecretSpaces", storageBody(tb, map[string]any{"accessKeySecret": "abc def"}), "", 400, "accessKeySecret"},
		{"ErrAuthenticationType", storageBody(tb, map[string]any{"authenticationType": "role"}), "", 400, "authenticationType"},
		{"ErrRoleBasedWithKey", storageBody(tb, map[string]any{"authenticationType": "roleBased", "oidcRoleArn": "arn:aws:iam::123456789012:role/r"}), "", 400, "accessKeyId"},
		{"ErrRoleBasedNoARN", storageBody(tb, map[string]any{"authenticationType": "roleBased", "accessKeyId": nil, "accessKeySecret": nil}), "", 400, "oidcRoleArn"},
		{"ErrRoleBasedBadARN", storageBody(tb, map[string]any{"authenticationType": "roleBased", "accessKeyId": nil, "accessKeySecret": nil, "oidcRoleArn": "arn:aws:iam::123456789012:user/u"}), "", 400, "oidcRoleArn"},
		{"ErrRoleARNWithAccessKey", storageBody(tb, map[string]any{"oidcRoleArn": "arn:aws:iam::123456789012:role/r"}), "", 400, "oidcRoleArn"},
		{"ErrRoleARNAsKeyID", storageBody(tb, map[string]any{"accessKeyId": "arn:aws:iam::123456789012:role/r", "accessKeySecret": nil}), "", 400, "accessKeyId"},
		{"ErrNotJSON", "bucket=my-bucket", "", 400, ""},
		{"ErrTruncated", `{"bucket":"my-bucket"`, "", 400, ""},
		{"ErrTrailingData", validStorageBody + ` {}`, "", 400, ""},
		{"ErrTrailingGarbage", validStorageBody + `x`, "", 400, ""},
		{"ErrArray", `[]`, "", 400, ""},
		{"ErrOversized", `{"bucket":"` + strings.Repeat("a", 70<<10) + `"}`, "", 413, ""},
		{"ErrContentType", validStorageBody, "text/plain", 415, ""},
		{"ErrNoContentType", validStorageBody, "-", 415, ""},
	}
}

func TestPutStorage(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		resp, b := ts.Call(t, "PUT", "/v1/storage", validStorageBody)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		v := MustDecode(t, b)
		for k, want := range map[string]any{
			"provider": "s3", "bucket": "my-bucket/recordings", "region": "eu-west-1", "fileFormat": "mp4",
			"accessKeyId": testKeyID, "credentialId": "cred_1", "forcePathStyle": false, "endpoint": "",
			"createdAt": "2030-01-02T03:04:05.000Z",
		} {
			if v[k] != want {
				t.Errorf("%s = %v, want %v", k, v[k], want)
			}
		}
		if len(ts.Storage.Saved) != 1 {
			t.Fatalf("saved %d times", len(ts.Storage.Saved))
		}
		got := ts.Storage.Saved[0]
		want := SavedStorage{testOrgID, recsink.ScopeOrganization,
			recsink.Destination{Provider: "s3", Bucket: "my-bucket", Prefix: "recordings", Region: "eu-west-1", FileFormat: "mp4"},
			recsink.AccessKey{ID: testKeyID, Secret: testSecret}}
		if got != want {
			t.Errorf("saved %+v, want %+v", got, want)
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		body := `{"bucket":"my-bucket","accessKeyId":"` + testKeyID + `","accessKeySecret":"` + testSecret + `"}`
		if resp, b := ts.Call(t, "PUT", "/v1/storage", body); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if d := ts.Storage.Saved[0].Dest; d.Provider != "s3" || d.FileFormat != "mkv" || d.Prefix != "" {
			t.Errorf("dest %+v", d)
		}
	})

	for _, tt := range invalidStorageCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			for _, path := range []string{"/v1/storage", "/v1/meetings/" + testMeeting + "/recording/destination"} {
				req := ts.NewRequest(t, "PUT", path, tt.body)
				switch tt.contentType {
				case "":
				case "-":
					req.Header.Del("Content-Type")
				default:
					req.Header.Set("Content-Type", tt.contentType)
				}
				resp, b := ts.Do(t, req)
				if resp.StatusCode != tt.status {
					t.Fatalf("%s: status %d, want %d: %s", path, resp.StatusCode, tt.status, b)
				}
				e := MustDecodeError(t, b)
				if e.Field != tt.field || e.Code != "invalid" {
					t.Errorf("%s: field %q code %q, want field %q: %s", path, e.Field, e.Code, tt.field, b)
				}
			}
			if len(ts.Storage.Saved) != 0 {
				t.Errorf("invalid input reached the service")
			}
		})
	}

	t.Run("ErrEmptyBody", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		resp, b := ts.Call(t, "PUT", "/v1/storage", "")
		if resp.StatusCode != 400 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

func TestGetDeleteStorage(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "GET", "/v1/storage", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if v := MustDecode(t, b); v["bucket"] != "my-bucket/rec" || v["accessKeyId"] != testKeyID {
		t.Errorf("body %s", b)
	}
	if resp, b := ts.Call(t, "DELETE", "/v1/storage", ""); resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}

	ts.Storage.FindStorageFn = func(context.Context, string, string) (*recsink.Credential, error) {
		return nil, recsink.Errorf(recsink.ENOTFOUND, "no storage settings")
	}
	if resp, b := ts.Call(t, "GET", "/v1/storage", ""); resp.StatusCode != 404 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

func TestCheckStorage(t *testing.T) {
	t.Parallel()

	t.Run("Body", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		var got *recsink.AccessKey
		ts.Storage.CheckStorageFn = func(_ context.Context, _, _ string, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.CheckReport, error) {
			got = key
			return &recsink.CheckReport{OK: false, Checks: []recsink.Check{{Name: "HeadBucket", Permission: "s3:ListBucket", Code: "AccessDenied", Message: "no"}}}, nil
		}
		resp, b := ts.Call(t, "POST", "/v1/storage/check", validStorageBody)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if v := MustDecode(t, b); v["ok"] != false {
			t.Errorf("body %s", b)
		}
		if got == nil || got.Secret != testSecret {
			t.Errorf("key %v", got)
		}
		if len(ts.Storage.Saved) != 0 {
			t.Errorf("check saved")
		}
	})

	t.Run("CheckErrorIsReport", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		ts.Storage.CheckStorageFn = func(context.Context, string, string, *recsink.Destination, *recsink.AccessKey) (*recsink.CheckReport, error) {
			return nil, &recsink.CheckError{Report: &recsink.CheckReport{Checks: []recsink.Check{{Name: "HeadBucket"}}}}
		}
		resp, b := ts.Call(t, "POST", "/v1/storage/check", validStorageBody)
		if resp.StatusCode != 200 || MustDecode(t, b)["ok"] != false {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})

	t.Run("EmptyBodyChecksSaved", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		called := false
		ts.Storage.CheckStorageFn = func(_ context.Context, _, scope string, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.CheckReport, error) {
			called = true
			if dest != nil || key != nil || scope != recsink.ScopeOrganization {
				t.Errorf("dest %v key %v scope %q", dest, key, scope)
			}
			return okReport("eu-west-1"), nil
		}
		req := ts.NewRequest(t, "POST", "/v1/storage/check", "")
		resp, b := ts.Do(t, req)
		if resp.StatusCode != 200 || MustDecode(t, b)["ok"] != true || !called {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})

	for _, tt := range invalidStorageCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			req := ts.NewRequest(t, "POST", "/v1/storage/check", tt.body)
			switch tt.contentType {
			case "":
			case "-":
				req.Header.Del("Content-Type")
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, b := ts.Do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if e := MustDecodeError(t, b); e.Field != tt.field {
				t.Errorf("field %q, want %q", e.Field, tt.field)
			}
		})
	}
}

func TestMeetingDestination(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	path := "/v1/meetings/" + testMeeting + "/recording/destination"
	body := storageBody(t, map[string]any{"authenticationType": "accessKey"})
	resp, b := ts.Call(t, "PUT", path, body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if s := ts.Storage.Saved[0]; s.Scope != testMeeting || s.OrgID != testOrgID {
		t.Errorf("saved %+v", s)
	}
	if resp, b := ts.Call(t, "GET", path, ""); resp.StatusCode != 200 || MustDecode(t, b)["credentialId"] != "cred_1" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if resp, b := ts.Call(t, "DELETE", path, ""); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	// A meeting that is not the organization's has no destination to set.
	for _, method := range []string{"PUT", "GET", "DELETE"} {
		resp, b := ts.Call(t, method, "/v1/meetings/mtg_other/recording/destination", body)
		if resp.StatusCode != 404 {
			t.Errorf("%s: status %d: %s", method, resp.StatusCode, b)
		}
	}
	if len(ts.Storage.Saved) != 1 {
		t.Errorf("saved for an unknown meeting")
	}
}

func TestListCredentials(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "GET", "/v1/credentials", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var v struct {
		Results []struct {
			ID, Scope, AccessKeyID, State, Bucket string
			CreatedAt                             string
			ActiveRecordings                      struct {
				Count int
				IDs   []string
			}
			SafeToDeleteAfter *string
		}
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Results) != 2 {
		t.Fatalf("body %s", b)
	}
	old, cur := v.Results[0], v.Results[1]
	if old.State != "draining" || old.ActiveRecordings.Count != 1 || old.ActiveRecordings.IDs[0] != testRecID || old.SafeToDeleteAfter == nil || old.AccessKeyID != "AKIAOLDKEY" || old.Bucket != "my-bucket/rec" {
		t.Errorf("old %+v", old)
	}
	if cur.State != "current" || cur.ActiveRecordings.Count != 0 || cur.ActiveRecordings.IDs == nil || cur.SafeToDeleteAfter != nil || cur.Scope != "organization" {
		t.Errorf("current %+v", cur)
	}
	if !strings.Contains(string(b), `"safeToDeleteAfter":null`) || !strings.Contains(string(b), `"ids":[]`) {
		t.Errorf("body %s", b)
	}
}
