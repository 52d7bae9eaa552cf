package http

import (
	"crypto/rand"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// The values Whereby's REST API documents for POST /v1/meetings (source:
// Whereby's reference, https://docs.whereby.com/reference/whereby-rest-api-reference/meetings,
// and its OpenAPI document, "Create meeting" request body). recsink keeps
// the fields it has a use for and accepts the others, checked against
// Whereby's own values so that a typo is still caught, without acting on
// them: recsink hosts no rooms.
var (
	recordingTypes         = []string{"none", "local", "cloud"}
	startTriggers          = []string{"none", "prompt", "automatic", "automatic-2nd-participant"}
	roomModes              = []string{"normal", "group"}
	roomNamePatterns       = []string{"uuid", "human-short"}
	templateTypes          = []string{"viewerMode"}
	meetingFields          = []string{"hostRoomUrl", "viewerRoomUrl"}
	transcriptionTriggers  = []string{"none", "manual", "automatic", "automatic-2nd-participant"}
	streamingStartTriggers = []string{"none", "prompt", "automatic"}
	roomPrefixRE           = regexp.MustCompile(`^[a-z0-9-]{1,39}$`)
)

// meetingInput is the body of POST /v1/meetings: every field of Whereby's
// "Create meeting" body. Fields marked "ignored" are accepted so that code
// written against Whereby's API works unchanged; recsink does not act on
// them (the README lists them).
type meetingInput struct {
	EndDate string `json:"endDate"`
	// StartDate is deprecated by Whereby, which ignores its value; ignored.
	StartDate *string `json:"startDate"`
	// IsLocked, RoomMode, RoomNamePattern, TemplateType, Fields,
	// LiveTranscription and Streaming describe the video room Whereby
	// hosts; ignored.
	IsLocked          *bool                   `json:"isLocked"`
	RoomMode          string                  `json:"roomMode"`
	RoomNamePrefix    string                  `json:"roomNamePrefix"`
	RoomNamePattern   string                  `json:"roomNamePattern"`
	TemplateType      string                  `json:"templateType"`
	Fields            []string                `json:"fields"`
	Recording         *meetingRecordingInput  `json:"recording"`
	LiveTranscription *liveTranscriptionInput `json:"liveTranscription"`
	Streaming         *streamingInput         `json:"streaming"`
}

// meetingRecordingInput is a meeting's recording options.
type meetingRecordingInput struct {
	Type         string            `json:"type"`
	StartTrigger string            `json:"startTrigger"`
	Destination  *destinationInput `json:"destination"`
}

// liveTranscriptionInput is Whereby's session transcription options; ignored.
type liveTranscriptionInput struct {
	StartTrigger string `json:"startTrigger"`
	Language     string `json:"language"`
}

// streamingInput is Whereby's RTMP live streaming options; ignored.
type streamingInput struct {
	Destination *struct {
		URL string `json:"url"`
	} `json:"destination"`
	StartTrigger string `json:"startTrigger"`
}

// checkEnum returns an EINVALID error naming field when v is set and not
// one of allowed.
func checkEnum(field, v string, allowed []string) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	return recsink.FieldErrorf(field, "%s must be one of %s", field, quoteList(allowed))
}

// checkIgnored checks the Whereby fields recsink accepts without acting on
// them, so that a wrong value is still refused as Whereby would refuse it.
func (in *meetingInput) checkIgnored() error {
	if in.StartDate != nil {
		if _, err := parseDateTime(*in.StartDate); err != nil {
			return recsink.FieldErrorf("startDate", "startDate must be an ISO 8601 date and time such as 2030-01-31T12:00:00Z (its value is ignored, as by Whereby)")
		}
	}
	if err := checkEnum("roomMode", in.RoomMode, roomModes); err != nil {
		return err
	}
	if err := checkEnum("roomNamePattern", in.RoomNamePattern, roomNamePatterns); err != nil {
		return err
	}
	if err := checkEnum("templateType", in.TemplateType, templateTypes); err != nil {
		return err
	}
	for i, f := range in.Fields {
		if !slices.Contains(meetingFields, f) {
			return recsink.FieldErrorf("fields["+strconv.Itoa(i)+"]", "fields may hold %s", quoteList(meetingFields))
		}
	}
	if lt := in.LiveTranscription; lt != nil {
		if err := checkEnum("liveTranscription.startTrigger", lt.StartTrigger, transcriptionTriggers); err != nil {
			return err
		}
		if len(lt.Language) > 16 {
			return recsink.FieldErrorf("liveTranscription.language", "liveTranscription.language must be a language code such as en or pt-BR")
		}
	}
	if st := in.Streaming; st != nil {
		if err := checkEnum("streaming.startTrigger", st.StartTrigger, streamingStartTriggers); err != nil {
			return err
		}
		if st.Destination != nil && len(st.Destination.URL) > 2048 {
			return recsink.FieldErrorf("streaming.destination.url", "streaming.destination.url must be at most 2048 characters")
		}
	}
	return nil
}

// parseDateTime parses an ISO 8601 date and time. Without an offset it is
// UTC, as Whereby reads endDate ("By default in UTC but a timezone can be
// specified").
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	// time.Parse without a zone in the layout gives UTC.
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}

// meetingView is the JSON shape of a meeting.
type meetingView struct {
	MeetingID string          `json:"meetingId"`
	RoomName  string          `json:"roomName"`
	StartDate recsink.APITime `json:"startDate"`
	EndDate   recsink.APITime `json:"endDate"`
}

func newMeetingView(m *recsink.Meeting) meetingView {
	return meetingView{MeetingID: m.ID, RoomName: m.RoomName, StartDate: recsink.APITime(m.StartDate), EndDate: recsink.APITime(m.EndDate)}
}

// handleCreateMeeting handles POST /v1/meetings. A destination in the body
// is checked and saved as the room's override by the service.
func (s *Server) handleCreateMeeting(w http.ResponseWriter, r *http.Request) {
	var in meetingInput
	if _, err := decodeJSON(w, r, &in, false); err != nil {
		s.Error(w, r, err)
		return
	}

	now := recsink.Now()
	if in.EndDate == "" {
		s.Error(w, r, recsink.FieldErrorf("endDate", "endDate is required: an RFC 3339 time such as 2030-01-31T12:00:00Z"))
		return
	}
	end, err := parseDateTime(in.EndDate)
	if err != nil {
		s.Error(w, r, recsink.FieldErrorf("endDate", "endDate must be an ISO 8601 date and time such as 2030-01-31T12:00:00Z; without an offset it is UTC"))
		return
	}
	if !end.After(now) {
		s.Error(w, r, recsink.FieldErrorf("endDate", "endDate must be in the future"))
		return
	}
	if in.RoomNamePrefix != "" && !roomPrefixRE.MatchString(in.RoomNamePrefix) {
		s.Error(w, r, recsink.FieldErrorf("roomNamePrefix", "roomNamePrefix must be at most 39 lowercase letters, digits or hyphens"))
		return
	}
	if err := in.checkIgnored(); err != nil {
		s.Error(w, r, err)
		return
	}

	// Without recording options a room records into the organization's
	// destination, as a Whereby room without them takes the organization's
	// recording settings.
	m := &recsink.Meeting{
		RoomName:      newRoomName(in.RoomNamePrefix),
		StartDate:     now,
		EndDate:       end,
		RecordingType: recsink.RecordingTypeCloud,
		StartTrigger:  "none",
	}
	var dest *recsink.Destination
	var key *recsink.AccessKey
	if rec := in.Recording; rec != nil {
		if rec.Type != "" {
			m.RecordingType = rec.Type
		}
		if !slices.Contains(recordingTypes, m.RecordingType) {
			s.Error(w, r, recsink.FieldErrorf("recording.type", "recording.type must be one of %s", quoteList(recordingTypes)))
			return
		}
		if rec.StartTrigger != "" {
			m.StartTrigger = rec.StartTrigger
		}
		if !slices.Contains(startTriggers, m.StartTrigger) {
			s.Error(w, r, recsink.FieldErrorf("recording.startTrigger", "recording.startTrigger must be one of %s", quoteList(startTriggers)))
			return
		}
		if rec.Destination != nil {
			if m.RecordingType != recsink.RecordingTypeCloud {
				s.Error(w, r, recsink.FieldErrorf("recording.destination", "recording.destination needs recording.type \"cloud\""))
				return
			}
			d, k, err := rec.Destination.parse("recording.destination.")
			if err != nil {
				s.Error(w, r, err)
				return
			}
			dest, key = &d, &k
		}
	}

	m, err = s.MeetingService.CreateMeeting(r.Context(), orgFrom(r.Context()).ID, m, dest, key)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, newMeetingView(m))
}

// newRoomName returns "/<prefix>-<random>", or "/<random>" without a
// prefix: random lowercase letters and digits, 80 bits, so that names do not
// collide.
func newRoomName(prefix string) string {
	random := strings.ToLower(rand.Text()[:16])
	if prefix == "" {
		return "/" + random
	}
	return "/" + prefix + "-" + random
}

// handleListMeetings handles GET /v1/meetings?limit=&cursor=.
func (s *Server) handleListMeetings(w http.ResponseWriter, r *http.Request) {
	limit, err := parseLimit(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ms, next, err := s.MeetingService.ListMeetings(r.Context(), orgFrom(r.Context()).ID, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	results := make([]meetingView, 0, len(ms))
	for _, m := range ms {
		results = append(results, newMeetingView(m))
	}
	writeJSON(w, http.StatusOK, newListView(results, next))
}

// handleGetMeeting handles GET /v1/meetings/{meetingId}.
func (s *Server) handleGetMeeting(w http.ResponseWriter, r *http.Request) {
	m, err := s.MeetingService.FindMeeting(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newMeetingView(m))
}

// handleDeleteMeeting handles DELETE /v1/meetings/{meetingId}. Like
// Whereby's, it is idempotent: a meeting already deleted (or never seen by
// this organization) answers 204 again.
func (s *Server) handleDeleteMeeting(w http.ResponseWriter, r *http.Request) {
	err := s.MeetingService.DeleteMeeting(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditMeetingDeleted, r.PathValue("meetingId"), "meeting deleted; its own key, if any, drains")
	w.WriteHeader(http.StatusNoContent)
}

// listView is a page of a list with the cursor of the next page, null on
// the last page, as Whereby's lists ("If there are no more results, the
// value returned is null").
type listView[T any] struct {
	Results []T     `json:"results"`
	Cursor  *string `json:"cursor"`
}

// newListView returns a page; next is "" on the last page.
func newListView[T any](results []T, next string) listView[T] {
	v := listView[T]{Results: results}
	if next != "" {
		v.Cursor = &next
	}
	return v
}

// Page sizes of list routes.
const (
	defaultLimit = 50
	maxLimit     = 100
)

// parseLimit returns the limit query parameter, 1 to maxLimit.
func parseLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, recsink.FieldErrorf("limit", "limit must be a whole number from 1 to %d", maxLimit)
	}
	return n, nil
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
