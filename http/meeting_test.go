package http_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// meetingBody returns a body for POST /v1/meetings with a cloud recording
// to its own destination; dest replaces destination fields (nil deletes).
func meetingBody(tb testing.TB, top map[string]any, rec map[string]any, dest map[string]any) string {
	tb.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(storageBody(tb, dest)), &d); err != nil {
		tb.Fatal(err)
	}
	d["authenticationType"] = "accessKey"
	if v, ok := dest["authenticationType"]; ok {
		d["authenticationType"] = v
	}
	r := map[string]any{"type": "cloud", "startTrigger": "automatic-2nd-participant", "destination": d}
	for k, x := range rec {
		if x == nil {
			delete(r, k)
		} else {
			r[k] = x
		}
	}
	body := map[string]any{
		"endDate":        time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"roomNamePrefix": "team",
		"recording":      r,
	}
	for k, x := range top {
		if x == nil {
			delete(body, k)
		} else {
			body[k] = x
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestCreateMeeting(t *testing.T) {
	t.Parallel()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		resp, b := ts.Call(t, "POST", "/v1/meetings", meetingBody(t, nil, nil, nil))
		if resp.StatusCode != 201 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		v := MustDecode(t, b)
		if v["meetingId"] != testMeeting || v["startDate"] == nil || v["endDate"] == nil {
			t.Errorf("body %s", b)
		}
		if name, _ := v["roomName"].(string); !regexp.MustCompile(`^/team-[a-z0-9]{16}$`).MatchString(name) {
			t.Errorf("roomName %q", name)
		}
		c := ts.Meetings.Created[0]
		if c.Meeting.RecordingType != "cloud" || c.Meeting.StartTrigger != "automatic-2nd-participant" {
			t.Errorf("meeting %+v", c.Meeting)
		}
		if c.Dest == nil || c.Dest.Bucket != "my-bucket" || c.Dest.Prefix != "recordings" || c.Key == nil || c.Key.Secret != testSecret {
			t.Errorf("dest %+v key %v", c.Dest, c.Key)
		}
	})

	t.Run("Minimal", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		body := `{"endDate":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
		resp, b := ts.Call(t, "POST", "/v1/meetings", body)
		if resp.StatusCode != 201 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if name := MustDecode(t, b)["roomName"].(string); !regexp.MustCompile(`^/[a-z0-9]{16}$`).MatchString(name) {
			t.Errorf("roomName %q", name)
		}
		c := ts.Meetings.Created[0]
		if c.Meeting.RecordingType != "cloud" || c.Meeting.StartTrigger != "none" || c.Dest != nil || c.Key != nil {
			t.Errorf("created %+v", c)
		}
	})

	for _, tt := range []struct {
		name   string
		body   string
		status int
		field  string
	}{
		{"ErrEndDateMissing", meetingBody(t, map[string]any{"endDate": nil}, nil, nil), 400, "endDate"},
		{"ErrEndDateFormat", meetingBody(t, map[string]any{"endDate": "tomorrow"}, nil, nil), 400, "endDate"},
		{"ErrEndDateNoTime", meetingBody(t, map[string]any{"endDate": "2099-01-01"}, nil, nil), 400, "endDate"},
		{"ErrEndDateNoZonePast", meetingBody(t, map[string]any{"endDate": "2001-01-01T00:00:00"}, nil, nil), 400, "endDate"},
		{"ErrEndDatePast", meetingBody(t, map[string]any{"endDate": "2001-01-01T00:00:00Z"}, nil, nil), 400, "endDate"},
		{"ErrEndDateType", meetingBody(t, map[string]any{"endDate": 12345}, nil, nil), 400, "endDate"},
		{"ErrRoomNamePrefixUpper", meetingBody(t, map[string]any{"roomNamePrefix": "Team"}, nil, nil), 400, "roomNamePrefix"},
		{"ErrRoomNamePrefixLong", meetingBody(t, map[string]any{"roomNamePrefix": strings.Repeat("a", 40)}, nil, nil), 400, "roomNamePrefix"},
		{"ErrRoomNamePrefixSlash", meetingBody(t, map[string]any{"roomNamePrefix": "a/b"}, nil, nil), 400, "roomNamePrefix"},
		{"ErrUnknownField", meetingBody(t, map[string]any{"isLockedd": true}, nil, nil), 400, "isLockedd"},
		{"ErrUnknownNestedField", meetingBody(t, map[string]any{"streaming": map[string]any{"startTrigger": "none", "rtmpUrl": "x"}}, nil, nil), 400, "rtmpUrl"},
		{"ErrRecordingType", meetingBody(t, nil, map[string]any{"type": "browser"}, nil), 400, "recording.type"},
		{"ErrLocalWithDestination", meetingBody(t, nil, map[string]any{"type": "local"}, nil), 400, "recording.destination"},
		{"ErrIsLockedType", meetingBody(t, map[string]any{"isLocked": "yes"}, nil, nil), 400, "isLocked"},
		{"ErrStartDate", meetingBody(t, map[string]any{"startDate": "soon"}, nil, nil), 400, "startDate"},
		{"ErrRoomMode", meetingBody(t, map[string]any{"roomMode": "huge"}, nil, nil), 400, "roomMode"},
		{"ErrRoomNamePattern", meetingBody(t, map[string]any{"roomNamePattern": "words"}, nil, nil), 400, "roomNamePattern"},
		{"ErrTemplateType", meetingBody(t, map[string]any{"templateType": "webinar"}, nil, nil), 400, "templateType"},
		{"ErrFields", meetingBody(t, map[string]any{"fields": []string{"hostRoomUrl", "roomUrl"}}, nil, nil), 400, "fields[1]"},
		{"ErrFieldsType", meetingBody(t, map[string]any{"fields": "hostRoomUrl"}, nil, nil), 400, "fields"},
		{"ErrLiveTranscriptionTrigger", meetingBody(t, map[string]any{"liveTranscription": map[string]any{"startTrigger": "prompt"}}, nil, nil), 400, "liveTranscription.startTrigger"},
		{"ErrStreamingTrigger", meetingBody(t, map[string]any{"streaming": map[string]any{"startTrigger": "manual"}}, nil, nil), 400, "streaming.startTrigger"},
		{"ErrDestinationRoleBasedWithKey", meetingBody(t, nil, nil, map[string]any{"authenticationType": "roleBased", "oidcRoleArn": "arn:aws:iam::123456789012:role/whereby"}), 400, "recording.destination.accessKeyId"},
		{"ErrDestinationProviderWhereby", meetingBody(t, nil, nil, map[string]any{"provider": "whereby"}), 400, "recording.destination.provider"},
		{"ErrStartTrigger", meetingBody(t, nil, map[string]any{"startTrigger": "sometimes"}, nil), 400, "recording.startTrigger"},
		{"ErrRecordingWrongType", meetingBody(t, map[string]any{"recording": "cloud"}, nil, nil), 400, "recording"},
		{"ErrDestinationWithoutCloud", meetingBody(t, nil, map[string]any{"type": "none"}, nil), 400, "recording.destination"},
		{"ErrDestinationBucket", meetingBody(t, nil, nil, map[string]any{"bucket": "Bad_Bucket"}), 400, "recording.destination.bucket"},
		{"ErrDestinationBucketIP", meetingBody(t, nil, nil, map[string]any{"bucket": "10.0.0.1"}), 400, "recording.destination.bucket"},
		{"ErrDestinationFileFormat", meetingBody(t, nil, nil, map[string]any{"fileFormat": "webm"}), 400, "recording.destination.fileFormat"},
		{"ErrDestinationRegion", meetingBody(t, nil, nil, map[string]any{"region": "moon" + strings.Repeat("x", 40)}), 400, "recording.destination.region"},
		{"ErrDestinationSecretMissing", meetingBody(t, nil, nil, map[string]any{"accessKeySecret": nil}), 400, "recording.destination.accessKeySecret"},
		{"ErrDestinationAuthType", meetingBody(t, nil, nil, map[string]any{"authenticationType": "iamRole"}), 400, "recording.destination.authenticationType"},
		{"ErrDestinationWrongType", meetingBody(t, nil, nil, map[string]any{"forcePathStyle": "true"}), 400, "recording.destination.forcePathStyle"},
		{"ErrDestinationUnknownField", meetingBody(t, nil, nil, map[string]any{"roleArn": "x"}), 400, "roleArn"},
		{"ErrOversized", meetingBody(t, map[string]any{"roomNamePrefix": strings.Repeat("a", 65<<10)}, nil, nil), 413, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			resp, b := ts.Call(t, "POST", "/v1/meetings", tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
			}
			if e := MustDecodeError(t, b); e.Field != tt.field || e.Code != "invalid" {
				t.Errorf("field %q code %q, want field %q", e.Field, e.Code, tt.field)
			}
			if len(ts.Meetings.Created) != 0 {
				t.Errorf("invalid input reached the service")
			}
		})
	}

	t.Run("ErrContentType", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		req := ts.NewRequest(t, "POST", "/v1/meetings", meetingBody(t, nil, nil, nil))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, b := ts.Do(t, req); resp.StatusCode != 415 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

// TestCreateMeeting_WherebyBodies sends the bodies of Whereby's reference
// for POST /v1/meetings (https://docs.whereby.com/reference/whereby-rest-api-reference/meetings
// and docs.whereby.com "Using the REST API"), each documented field with
// Whereby's example values: every one is accepted.
func TestCreateMeeting_WherebyBodies(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		body string
		want func(t *testing.T, c CreatedMeeting)
	}{
		{"QuickStart", `{"endDate": "2099-02-18T14:23:00.000Z", "fields": ["hostRoomUrl"]}`, func(t *testing.T, c CreatedMeeting) {
			if c.Meeting.RecordingType != "cloud" || !c.Meeting.EndDate.Equal(time.Date(2099, 2, 18, 14, 23, 0, 0, time.UTC)) {
				t.Errorf("meeting %+v", c.Meeting)
			}
		}},
		{"EndDateWithoutOffsetIsUTC", `{"endDate": "2099-02-18T14:23:00"}`, func(t *testing.T, c CreatedMeeting) {
			if want := time.Date(2099, 2, 18, 14, 23, 0, 0, time.UTC); !c.Meeting.EndDate.Equal(want) || c.Meeting.EndDate.Location() != time.UTC {
				t.Errorf("endDate %v, want %v", c.Meeting.EndDate, want)
			}
		}},
		{"EndDateWithOffset", `{"endDate": "2099-08-11T07:56:01-05:00"}`, func(t *testing.T, c CreatedMeeting) {
			if want := time.Date(2099, 8, 11, 12, 56, 1, 0, time.UTC); !c.Meeting.EndDate.Equal(want) || c.Meeting.EndDate.Location() != time.UTC {
				t.Errorf("endDate %v, want %v", c.Meeting.EndDate, want)
			}
		}},
		{"EveryField", `{
			"endDate": "2099-05-07T17:42:49-05:00",
			"startDate": "2099-05-07T16:42:49-05:00",
			"isLocked": true,
			"roomMode": "group",
			"roomNamePrefix": "example-prefix",
			"roomNamePattern": "uuid",
			"templateType": "viewerMode",
			"fields": ["hostRoomUrl", "viewerRoomUrl"],
			"recording": {
				"type": "cloud",
				"startTrigger": "automatic-2nd-participant",
				"destination": {
					"provider": "s3",
					"authenticationType": "accessKey",
					"bucket": "my-bucket/recordings",
					"accessKeyId": "AKIAIOSFODNN7EXAMPLE",
					"accessKeySecret": "` + testSecret + `",
					"fileFormat": "mp4",
					"oidcRoleArn": ""
				}
			},
			"liveTranscription": {"startTrigger": "automatic", "language": "en"},
			"streaming": {"destination": {"url": "rtmp://a.rtmp.youtube.com/live2/key"}, "startTrigger": "prompt"}
		}`, func(t *testing.T, c CreatedMeeting) {
			if c.Meeting.RecordingType != "cloud" || c.Meeting.StartTrigger != "automatic-2nd-participant" {
				t.Errorf("meeting %+v", c.Meeting)
			}
			if c.Dest == nil || c.Dest.Bucket != "my-bucket" || c.Dest.Prefix != "recordings" || c.Dest.FileFormat != "mp4" || c.Key == nil || c.Key.ID != "AKIAIOSFODNN7EXAMPLE" {
				t.Errorf("dest %+v key %v", c.Dest, c.Key)
			}
		}},
		{"NullTriggers", `{"endDate": "2099-02-18T14:23:00Z", "recording": {"type": "cloud", "destination": null, "startTrigger": null}, "liveTranscription": {"startTrigger": null}, "streaming": {"destination": {"url": "rtmp://x/y"}, "startTrigger": null}}`, func(t *testing.T, c CreatedMeeting) {
			if c.Dest != nil || c.Meeting.StartTrigger != "none" {
				t.Errorf("created %+v", c)
			}
		}},
		{"RecordingNone", `{"endDate": "2099-02-18T14:23:00Z", "recording": {"type": "none", "destination": null, "startTrigger": "none"}}`, func(t *testing.T, c CreatedMeeting) {
			if c.Meeting.RecordingType != "none" {
				t.Errorf("meeting %+v", c.Meeting)
			}
		}},
		{"RecordingLocal", `{"endDate": "2099-02-18T14:23:00Z", "recording": {"type": "local", "startTrigger": "prompt"}}`, func(t *testing.T, c CreatedMeeting) {
			if c.Meeting.RecordingType != "local" {
				t.Errorf("meeting %+v", c.Meeting)
			}
		}},
		{"HumanShort", `{"endDate": "2099-02-18T14:23:00Z", "roomNamePattern": "human-short", "roomMode": "normal", "isLocked": false}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := MustOpenServer(t)
			resp, b := ts.Call(t, "POST", "/v1/meetings", tt.body)
			if resp.StatusCode != 201 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if len(ts.Meetings.Created) != 1 {
				t.Fatalf("created %d meetings", len(ts.Meetings.Created))
			}
			if tt.want != nil {
				tt.want(t, ts.Meetings.Created[0])
			}
		})
	}

	// The room's destination route takes Whereby's destination object too.
	t.Run("RoomDestination", func(t *testing.T) {
		t.Parallel()
		ts := MustOpenServer(t)
		body := `{"provider": "s3", "authenticationType": "accessKey", "bucket": "my-bucket", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "accessKeySecret": "` + testSecret + `", "fileFormat": "mkv", "oidcRoleArn": ""}`
		resp, b := ts.Call(t, "PUT", "/v1/meetings/"+testMeeting+"/recording/destination", body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		// roleBased takes a role, not a key: the key's field is named.
		body = strings.Replace(body, `"accessKey"`, `"roleBased"`, 1)
		resp, b = ts.Call(t, "PUT", "/v1/meetings/"+testMeeting+"/recording/destination", body)
		if e := MustDecodeError(t, b); resp.StatusCode != 400 || e.Field != "accessKeyId" || !strings.Contains(e.Error, "roleBased") {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	})
}

func TestListMeetings(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)

	resp, b := ts.Call(t, "GET", "/v1/meetings", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	v := MustDecode(t, b)
	if v["cursor"] != "next1" || len(v["results"].([]any)) != 1 || ts.Meetings.Limit != 50 {
		t.Errorf("body %s limit %d", b, ts.Meetings.Limit)
	}
	resp, b = ts.Call(t, "GET", "/v1/meetings?limit=100&cursor=next1", "")
	if resp.StatusCode != 200 || ts.Meetings.Limit != 100 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if !strings.Contains(string(b), `"cursor":null`) || !strings.Contains(string(b), `"results":[]`) {
		t.Errorf("last page %s", b)
	}

	for _, limit := range []string{"0", "101", "abc", "-1", "1.5"} {
		t.Run("ErrLimit"+limit, func(t *testing.T) {
			resp, b := ts.Call(t, "GET", "/v1/meetings?limit="+limit, "")
			if resp.StatusCode != 400 || MustDecodeError(t, b).Field != "limit" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
		})
	}
}

func TestGetDeleteMeeting(t *testing.T) {
	t.Parallel()
	ts := MustOpenServer(t)
	resp, b := ts.Call(t, "GET", "/v1/meetings/"+testMeeting, "")
	if resp.StatusCode != 200 || MustDecode(t, b)["roomName"] != "/team-abc" {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if resp, b := ts.Call(t, "GET", "/v1/meetings/nope", ""); resp.StatusCode != 404 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if resp, b := ts.Call(t, "DELETE", "/v1/meetings/"+testMeeting, ""); resp.StatusCode != 204 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	// Idempotent, as Whereby's: a meeting already gone answers 204 again.
	if resp, b := ts.Call(t, "DELETE", "/v1/meetings/nope", ""); resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
}
