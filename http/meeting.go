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

// Recording types and start triggers of a meeting, as in Whereby's API.
var (
	recordingTypes = []string{"none", "cloud"}
	startTriggers  = []string{"none", "prompt", "automatic", "automatic-2nd-participant"}
	roomPrefixRE   = regexp.MustCompile(`^[a-z0-9-]{1,39}$`)
)

// meetingInput is the body of POST /v1/meetings.
type meetingInput struct {
	EndDate        string `json:"endDate"`
	RoomNamePrefix string `json:"roomNamePrefix"`
	Recording      *struct {
		Type         string            `json:"type"`
		StartTrigger string            `json:"startTrigger"`
		Destination  *destinationInput `json:"destination"`
	} `json:"recording"`
}

// meetingView is the JSON shape of a meeting.
type meetingView struct {
	MeetingID string    `json:"meetingId"`
	RoomName  string    `json:"roomName"`
	StartDate time.Time `json:"startDate"`
	EndDate   time.Time `json:"endDate"`
}

func newMeetingView(m *recsink.Meeting) meetingView {
	return meetingView{MeetingID: m.ID, RoomName: m.RoomName, StartDate: m.StartDate, EndDate: m.EndDate}
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
	end, err := time.Parse(time.RFC3339, in.EndDate)
	if err != nil {
		s.Error(w, r, recsink.FieldErrorf("endDate", "endDate must be an RFC 3339 time such as 2030-01-31T12:00:00Z"))
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

	m := &recsink.Meeting{
		RoomName:      newRoomName(in.RoomNamePrefix),
		StartDate:     now,
		EndDate:       end.UTC(),
		RecordingType: "none",
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
			if m.RecordingType != "cloud" {
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
	writeJSON(w, http.StatusOK, listView[meetingView]{Results: results, Cursor: next})
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

// handleDeleteMeeting handles DELETE /v1/meetings/{meetingId}.
func (s *Server) handleDeleteMeeting(w http.ResponseWriter, r *http.Request) {
	if err := s.MeetingService.DeleteMeeting(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId")); err != nil {
		s.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listView is a page of a list with the cursor of the next page, omitted on
// the last page.
type listView[T any] struct {
	Results []T    `json:"results"`
	Cursor  string `json:"cursor,omitempty"`
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
