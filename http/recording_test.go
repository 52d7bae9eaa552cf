package http_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
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
			v.Bucket != "my-bucket/rec" || v.ObjectKey != "rec/team-abc/rec_1.mkv" || v.StartDate != "2030-01-02T03:04:05.000Z" {
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
	if c, ok := v["cursor"]; !ok || c != nil || len(v["results"].([]any)) != 1 {
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

// TestListRecordings_SortBy: Whereby's sortBy values reach the service as
// the sort; anything else is a 400 naming sortBy.
func TestListRecordings_SortBy(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	for _, tt := range []struct {
		sortBy string
		want   recsink.RecordingSort
	}{
		{"startDate:asc", recsink.RecordingSort{Field: "startDate"}},
		{"startDate:desc", recsink.RecordingSort{Field: "startDate", Desc: true}},
		{"roomName:asc", recsink.RecordingSort{Field: "roomName"}},
		{"roomName:desc", recsink.RecordingSort{Field: "roomName", Desc: true}},
		{"duration:asc", recsink.RecordingSort{Field: "duration"}},
		{"duration:desc", recsink.RecordingSort{Field: "duration", Desc: true}},
		{"sizeInMegaBytes:asc", recsink.RecordingSort{Field: "sizeInMegaBytes"}},
		{"sizeInMegaBytes:desc", recsink.RecordingSort{Field: "sizeInMegaBytes", Desc: true}},
		{"duration", recsink.RecordingSort{Field: "duration"}},
		{"", recsink.RecordingSort{}},
	} {
		resp, b := ts.Call(t, "GET", "/v1/recordings?sortBy="+tt.sortBy, "")
		if resp.StatusCode != 200 {
			t.Fatalf("sortBy %q: status %d: %s", tt.sortBy, resp.StatusCode, b)
		}
		if got := ts.Recordings.Filter.Sort; got != tt.want {
			t.Errorf("sortBy %q: sort %+v, want %+v", tt.sortBy, got, tt.want)
		}
	}
	for _, bad := range []string{"size", "startDate:up", "StartDate:asc", "startDate:asc:desc", "createdAt:desc", ":asc"} {
		resp, b := ts.Call(t, "GET", "/v1/recordings?sortBy="+bad, "")
		if e := MustDecodeError(t, b); resp.StatusCode != 400 || e.Field != "sortBy" || !strings.Contains(e.Error, "sizeInMegaBytes") {
			t.Errorf("sortBy %q: status %d: %s", bad, resp.StatusCode, b)
		}
	}
}

// TestRecordingView_Whereby: the recording has Whereby's filename and
// sizeInMegaBytes beside recsink's own fields, and its times have exactly
// millisecond precision in UTC.
func TestRecordingView_Whereby(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	start := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	end := start.Add(90*time.Second + 1)
	size := int64(12_345_678)
	ts.Recordings.FindRecordingFn = func(ctx context.Context, orgID, id string) (*recsink.Recording, []recsink.RecordingEvent, error) {
		return &recsink.Recording{ID: id, State: recsink.RecordingUploaded, ObjectKey: "rec/team-abc-2030.mp4", StartDate: start, EndDate: &end,
			SizeBytes: &size, BytesReceived: size}, []recsink.RecordingEvent{{Time: end, Type: "uploaded", Message: "done"}}, nil
	}
	resp, b := ts.Call(t, "GET", "/v1/recordings/"+testRecID, "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	v := MustDecode(t, b)
	for k, want := range map[string]any{
		"filename": "team-abc-2030.mp4", "sizeInMegaBytes": 12.346, "sizeBytes": float64(size),
		"startDate": "2030-01-02T02:04:05.123Z", "endDate": "2030-01-02T02:05:35.123Z",
	} {
		if v[k] != want {
			t.Errorf("%s = %v, want %v", k, v[k], want)
		}
	}
	if ev := v["events"].([]any)[0].(map[string]any); ev["time"] != "2030-01-02T02:05:35.123Z" {
		t.Errorf("event %v", ev)
	}
}

func TestAccessLink(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "GET", "/v1/recordings/"+testRecID+"/access-link", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	v := MustDecode(t, b)
	if ts.Recordings.ValidFor != time.Hour || v["expires"] != float64(date().Add(time.Hour).UnixMilli()) || !strings.HasPrefix(v["accessLink"].(string), "https://") {
		t.Errorf("default: %s (validFor %s)", b, ts.Recordings.ValidFor)
	}
	for _, n := range []string{"1", "43200"} {
		if resp, b := ts.Call(t, "GET", "/v1/recordings/"+testRecID+"/access-link?validForSeconds="+n, ""); resp.StatusCode != 200 {
			t.Fatalf("validForSeconds=%s: status %d: %s", n, resp.StatusCode, b)
		}
	}
	if ts.Recordings.ValidFor != 12*time.Hour {
		t.Errorf("validFor %s", ts.Recordings.ValidFor)
	}
	for _, n := range []string{"0", "43201", "-5", "1.5", "abc"} {
		resp, b := ts.Call(t, "GET", "/v1/recordings/"+testRecID+"/access-link?validForSeconds="+n, "")
		if resp.StatusCode != 400 || MustDecodeError(t, b).Field != "validForSeconds" {
			t.Errorf("validForSeconds=%s: status %d: %s", n, resp.StatusCode, b)
		}
	}
	if resp, b := ts.Call(t, "GET", "/v1/recordings/nope/access-link", ""); resp.StatusCode != 404 {
		t.Errorf("unknown recording: status %d: %s", resp.StatusCode, b)
	}
}

func TestBulkDelete(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "rec_" + strconv.Itoa(i)
	}
	body, _ := json.Marshal(map[string]any{"recordingIds": ids})
	resp, b := ts.Call(t, "POST", "/v1/recordings/bulk-delete", string(body))
	if resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if resp, b := ts.Call(t, "POST", "/v1/recordings/bulk-delete", `{"recordingIds": []}`); resp.StatusCode != 204 {
		t.Fatalf("empty: status %d: %s", resp.StatusCode, b)
	}
	if got := ts.Recordings.BulkDeleted; len(got) != 2 || len(got[0]) != 100 || got[0][99] != "rec_99" {
		t.Errorf("bulk deleted %v", got)
	}
	for _, tt := range []struct{ name, body, field string }{
		{"ErrTooMany", `{"recordingIds": [` + strings.Repeat(`"a",`, 100) + `"a"]}`, "recordingIds"},
		{"ErrMissing", `{}`, "recordingIds"},
		{"ErrType", `{"recordingIds": "rec_1"}`, "recordingIds"},
		{"ErrUnknownField", `{"recordingIds": [], "ids": []}`, "ids"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := ts.Call(t, "POST", "/v1/recordings/bulk-delete", tt.body)
			if resp.StatusCode != 400 || MustDecodeError(t, b).Field != tt.field {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
		})
	}
}
