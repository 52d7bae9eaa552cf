package http_test

import (
	"encoding/json"
	"testing"
)

func TestStartRecording(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		resp, b := ts.Call(t, "POST", "/v1/meetings/"+testMeeting+"/recordings", "")
		if resp.StatusCode != 201 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		var v struct {
			RecordingID, MeetingID, RoomName, State, Bucket, ObjectKey, StartDate string
			Credential                                                            struct{ ID, AccessKeyID string }
			Ingest                                                                struct{ URL, Token string }
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		if v.RecordingID != testRecID || v.MeetingID != testMeeting || v.RoomName != "/team-abc" || v.State != "recording" ||
			v.Bucket != "my-bucket/rec" || v.ObjectKey != "rec/team-abc/rec_1.mkv" || v.StartDate != "2030-01-02T03:04:05Z" {
			t.Errorf("body %s", b)
		}
		if v.Credential.ID != "cred_1" || v.Credential.AccessKeyID != testKeyID {
			t.Errorf("credential %+v", v.Credential)
		}
		if v.Ingest.URL != ts.URL+"/v1/recordings/rec_1/ingest" || v.Ingest.Token != testToken {
			t.Errorf("ingest %+v", v.Ingest)
		}
	})

	t.Run("PublicURL", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		ts.API.PublicURL = "https://rec.example.com/"
		_, b := ts.Call(t, "POST", "/v1/meetings/"+testMeeting+"/recordings", "")
		if u := MustDecode(t, b)["ingest"].(map[string]any)["url"]; u != "https://rec.example.com/v1/recordings/rec_1/ingest" {
			t.Errorf("url %v", u)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		if resp, b := ts.Call(t, "POST", "/v1/meetings/nope/recordings", ""); resp.StatusCode != 404 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

func TestGetRecording(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "GET", "/v1/recordings/"+testRecID, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	v := MustDecode(t, b)
	for _, k := range []string{"recordingId", "meetingId", "roomName", "state", "startDate", "endDate", "bytesReceived", "bytesUploaded", "sizeBytes", "bucket", "objectKey", "fileFormat", "credential", "events"} {
		if _, ok := v[k]; !ok {
			t.Errorf("no %s in %s", k, b)
		}
	}
	for _, k := range []string{"ingest", "uploadId", "UploadID", "ingestTokenHash", "orgId"} {
		if _, ok := v[k]; ok {
			t.Errorf("%s in %s", k, b)
		}
	}
	if ev := v["events"].([]any); len(ev) != 1 || ev[0].(map[string]any)["type"] != "started" {
		t.Errorf("events %v", ev)
	}
	if v["sizeBytes"] != 1234.0 || v["fileFormat"] != "mkv" {
		t.Errorf("body %s", b)
	}
	if resp, b := ts.Call(t, "GET", "/v1/recordings/nope", ""); resp.StatusCode != 404 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

func TestStopDeleteRecording(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "POST", "/v1/recordings/"+testRecID+"/stop", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if v := MustDecode(t, b); v["state"] != "stopping" || v["stopReason"] != "requested" || v["endDate"] == nil {
		t.Errorf("body %s", b)
	}
	if resp, b := ts.Call(t, "DELETE", "/v1/recordings/"+testRecID, ""); resp.StatusCode != 204 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if resp, b := ts.Call(t, "DELETE", "/v1/recordings/nope", ""); resp.StatusCode != 404 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}

func TestListRecordings(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "GET", "/v1/recordings?roomName=/team-abc&state=uploaded&limit=7&cursor=c1", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if f := ts.Recordings.Filter; f.RoomName != "/team-abc" || f.State != "uploaded" || f.Limit != 7 || f.Cursor != "c1" {
		t.Errorf("filter %+v", f)
	}
	v := MustDecode(t, b)
	if _, ok := v["cursor"]; ok || len(v["results"].([]any)) != 1 {
		t.Errorf("body %s", b)
	}
	if _, ok := v["results"].([]any)[0].(map[string]any)["events"]; ok {
		t.Errorf("events in list")
	}

	for _, tt := range []struct{ name, query, field string }{
		{"ErrState", "state=done", "state"},
		{"ErrStateCase", "state=Uploaded", "state"},
		{"ErrLimit0", "limit=0", "limit"},
		{"ErrLimit101", "limit=101", "limit"},
		{"ErrLimitAbc", "limit=abc", "limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := ts.Call(t, "GET", "/v1/recordings?"+tt.query, "")
			if resp.StatusCode != 400 || MustDecodeError(t, b).Field != tt.field {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
		})
	}
}
