package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// wherebySchemas is the subset of Whereby's REST API that recsink shares,
// written from Whereby's reference (the source is named in the file).
type wherebySchemas struct{ doc *openapi3.T }

// MustLoadWhereby loads and checks testdata/whereby-subset.openapi.json.
func MustLoadWhereby(tb testing.TB) *wherebySchemas {
	tb.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile("testdata/whereby-subset.openapi.json")
	if err != nil {
		tb.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		tb.Fatalf("whereby-subset.openapi.json: %v", err)
	}
	return &wherebySchemas{doc: doc}
}

// MustValidate fails unless v (decoded JSON) is valid against the schema.
func (w *wherebySchemas) MustValidate(tb testing.TB, schema string, v any) {
	tb.Helper()
	ref, ok := w.doc.Components.Schemas[schema]
	if !ok {
		tb.Fatalf("no schema %s", schema)
	}
	// Through JSON, so that numbers and nested maps are as the validator expects.
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		tb.Fatal(err)
	}
	if err := ref.Value.VisitJSON(doc, openapi3.MultiErrors()); err != nil {
		tb.Fatalf("not a Whereby %s: %v\n%s", schema, err, b)
	}
}

// rejects reports whether the schema refuses v: the schema can fail.
func (w *wherebySchemas) rejects(schema string, v any) bool {
	return w.doc.Components.Schemas[schema].Value.VisitJSON(v) != nil
}

// wherebyMeetingBodies are POST /v1/meetings bodies from Whereby's reference
// (docs.whereby.com "Using the REST API" and the "Create meeting" body of
// its OpenAPI document), with Whereby's example values.
var wherebyMeetingBodies = map[string]string{
	"QuickStart":       `{"endDate": "2099-02-18T14:23:00.000Z", "fields": ["hostRoomUrl"]}`,
	"EndDateNoOffset":  `{"endDate": "2099-02-18T14:23:00"}`,
	"EndDateWithZone":  `{"endDate": "2099-08-11T07:56:01-05:00", "roomNamePrefix": "example-prefix"}`,
	"ViewerMode":       `{"endDate": "2099-02-18T14:23:00.000Z", "templateType": "viewerMode", "fields": ["hostRoomUrl", "viewerRoomUrl"]}`,
	"RoomOptions":      `{"endDate": "2099-02-18T14:23:00.000Z", "startDate": "2099-02-18T13:23:00.000Z", "isLocked": true, "roomMode": "group", "roomNamePattern": "human-short"}`,
	"Transcription":    `{"endDate": "2099-02-18T14:23:00.000Z", "liveTranscription": {"startTrigger": "automatic", "language": "en"}}`,
	"Streaming":        `{"endDate": "2099-02-18T14:23:00.000Z", "streaming": {"destination": {"url": "rtmp://a.rtmp.youtube.com/live2/stream-key"}, "startTrigger": "prompt"}}`,
	"RecordingInherit": `{"endDate": "2099-02-18T14:23:00.000Z", "recording": {"type": "cloud", "destination": null, "startTrigger": "automatic-2nd-participant"}}`,
	"RecordingNone":    `{"endDate": "2099-02-18T14:23:00.000Z", "recording": {"type": "none", "destination": null, "startTrigger": null}}`,
	"RecordingLocal":   `{"endDate": "2099-02-18T14:23:00.000Z", "recording": {"type": "local", "startTrigger": "none"}}`,
	// The destination's key is replaced with the test bucket's, and
	// recsink's endpoint fields are added to reach versitygw.
	"RecordingS3": `{"endDate": "2099-02-18T14:23:00.000Z", "roomNamePrefix": "example-prefix", "recording": {"type": "cloud", "startTrigger": "prompt",
		"destination": {"provider": "s3", "bucket": "BUCKET/recordings", "accessKeyId": "KEY", "accessKeySecret": "SECRET", "fileFormat": "mp4", "authenticationType": "accessKey"}}}`,
}

// TestWhereby_Contract: code written against Whereby's API works with
// recsink. Whereby's request bodies are accepted, and the responses of
// GET /v1/meetings, GET /v1/recordings (with each sortBy),
// GET /v1/recordings/{id} and its access-link validate against the schema written from
// Whereby's documentation (kin-openapi).
func TestWhereby_Contract(t *testing.T) {
	t.Parallel()
	wb := MustLoadWhereby(t)
	// What recsink answered before issue 14 is refused.
	for schema, old := range map[string]map[string]any{
		"RecordingList": {"results": []any{}},
		"Recording":     {"recordingId": "rec_1", "filename": "a.mkv", "startDate": "2030-01-02T03:04:05.123456789Z", "endDate": "2030-01-02T03:04:05.123Z", "sizeInMegaBytes": 1.0},
	} {
		if !wb.rejects(schema, old) {
			t.Fatalf("the schema %s accepts %v", schema, old)
		}
	}
	e, _ := mustRecordingEnv(t)

	meetings := map[string]string{}
	for name, body := range wherebyMeetingBodies {
		var v map[string]any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wb.MustValidate(t, "CreateMeetingBody", v)
		if rec, ok := v["recording"].(map[string]any); ok {
			if d, ok := rec["destination"].(map[string]any); ok {
				d["bucket"] = strings.Replace(d["bucket"].(string), "BUCKET", e.Bucket, 1)
				d["accessKeyId"], d["accessKeySecret"] = e.Key.ID, e.Key.Secret
				d["endpoint"], d["region"], d["forcePathStyle"] = e.S3.Endpoint, s3test.Region, true
			}
		}
		out := e.Org.MustDo(t, 201, "POST", "/v1/meetings", v)
		wb.MustValidate(t, "Meeting", out)
		meetings[name] = out["meetingId"].(string)
	}
	if got := e.Org.MustDo(t, 200, "GET", "/v1/meetings/"+meetings["EndDateNoOffset"], nil)["endDate"]; got != "2099-02-18T14:23:00.000Z" {
		t.Errorf("endDate without an offset: %v, want it read as UTC", got)
	}

	// A room with recording.type none or local takes no recording.
	for _, name := range []string{"RecordingNone", "RecordingLocal"} {
		status, out := e.Org.Do(t, "POST", "/v1/meetings/"+meetings[name]+"/recordings", nil)
		if status != 409 || out["field"] != "recording.type" || !strings.Contains(out["error"].(string), "recording.type") {
			t.Errorf("%s: start: %d %v", name, status, out)
		}
	}

	// Finished recordings of different rooms, sizes and durations.
	sizes := map[string]int{"QuickStart": 3_000, "RecordingS3": 1_200_000, "EndDateWithZone": 150_000, "RecordingInherit": 40_000}
	var ids []string
	for name, size := range sizes {
		rec := MustStartRecording(t, e.Org, meetings[name])
		rec.MustPut(t, randomBytes(t, size))
		e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
		ids = append(ids, rec.ID)
	}
	for _, id := range ids {
		out := WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
		wb.MustValidate(t, "Recording", out)
	}

	wb.MustValidate(t, "AccessLink", e.Org.MustDo(t, 200, "GET", "/v1/recordings/"+ids[0]+"/access-link?validForSeconds=60", nil))

	list := e.Org.MustDo(t, 200, "GET", "/v1/meetings", nil)
	wb.MustValidate(t, "MeetingList", list)
	// The bodies' rooms and the one mustRecordingEnv made.
	if list["cursor"] != nil || len(list["results"].([]any)) != len(wherebyMeetingBodies)+1 {
		t.Errorf("meetings: %v", list)
	}

	key := map[string]func(r map[string]any) string{
		"startDate":       func(r map[string]any) string { return r["startDate"].(string) },
		"roomName":        func(r map[string]any) string { return r["roomName"].(string) },
		"duration":        func(r map[string]any) string { return duration(t, r) },
		"sizeInMegaBytes": func(r map[string]any) string { return fmt.Sprintf("%015.3f", r["sizeInMegaBytes"].(float64)) },
	}
	for _, field := range recsink.RecordingSorts {
		for _, dir := range []string{"asc", "desc"} {
			sortBy := field + ":" + dir
			// All on one page, then one per page following the cursors:
			// the same order, cursor null at the end.
			page := e.Org.MustDo(t, 200, "GET", "/v1/recordings?sortBy="+sortBy, nil)
			wb.MustValidate(t, "RecordingList", page)
			var all []string
			for _, r := range page["results"].([]any) {
				all = append(all, key[field](r.(map[string]any)))
			}
			want := slices.Clone(all)
			slices.Sort(want)
			if dir == "desc" {
				slices.Reverse(want)
			}
			if len(all) != len(ids) || !slices.Equal(all, want) {
				t.Errorf("sortBy %s: %v", sortBy, all)
			}
			var paged []string
			cursor := ""
			for range len(ids) + 1 {
				page := e.Org.MustDo(t, 200, "GET", "/v1/recordings?limit=1&sortBy="+sortBy+"&cursor="+url.QueryEscape(cursor), nil)
				wb.MustValidate(t, "RecordingList", page)
				for _, r := range page["results"].([]any) {
					paged = append(paged, key[field](r.(map[string]any)))
				}
				if page["cursor"] == nil {
					break
				}
				cursor = page["cursor"].(string)
			}
			if !slices.Equal(paged, all) {
				t.Errorf("sortBy %s one per page: %v, want %v", sortBy, paged, all)
			}
		}
	}
	status, out := e.Org.Do(t, "GET", "/v1/recordings?sortBy=createdAt:desc", nil)
	if status != 400 || out["field"] != "sortBy" {
		t.Errorf("unknown sortBy: %d %v", status, out)
	}

	// DELETE /v1/meetings/{id} is idempotent, as Whereby's.
	for range 2 {
		e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+meetings["Streaming"], nil)
	}
}

// duration returns endDate minus startDate of a listed recording, in a
// form that sorts as text.
func duration(tb testing.TB, r map[string]any) string {
	tb.Helper()
	start, err1 := time.Parse(time.RFC3339, r["startDate"].(string))
	end, err2 := time.Parse(time.RFC3339, r["endDate"].(string))
	if err1 != nil || err2 != nil {
		tb.Fatalf("dates of %v", r)
	}
	return fmt.Sprintf("%012d", end.Sub(start).Milliseconds())
}
