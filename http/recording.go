package http

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// recordingStates are the states a recording list may be filtered by.
var recordingStates = []string{
	recsink.RecordingRecording,
	recsink.RecordingBlocked,
	recsink.RecordingStopping,
	recsink.RecordingUploaded,
	recsink.RecordingFailed,
	recsink.RecordingDeleted,
}

// recordingView is the JSON shape of a recording.
type recordingView struct {
	RecordingID   string                    `json:"recordingId"`
	MeetingID     string                    `json:"meetingId"`
	RoomName      string                    `json:"roomName"`
	State         string                    `json:"state"`
	StartDate     time.Time                 `json:"startDate"`
	EndDate       *time.Time                `json:"endDate"`
	StopReason    string                    `json:"stopReason,omitempty"`
	BytesReceived int64                     `json:"bytesReceived"`
	BytesUploaded int64                     `json:"bytesUploaded"`
	SizeBytes     *int64                    `json:"sizeBytes"`
	SHA256        string                    `json:"sha256,omitempty"`
	Checksum      string                    `json:"checksum,omitempty"`
	Bucket        string                    `json:"bucket"`
	ObjectKey     string                    `json:"objectKey"`
	FileFormat    string                    `json:"fileFormat"`
	Credential    credentialRef             `json:"credential"`
	LastError     string                    `json:"lastError,omitempty"`
	Ingest        *ingestView               `json:"ingest,omitempty"`
	Events        *[]recsink.RecordingEvent `json:"events,omitempty"`
}

// credentialRef names the credential a recording holds, never its secret.
type credentialRef struct {
	ID          string `json:"id"`
	AccessKeyID string `json:"accessKeyId"`
}

// ingestView tells a recorder where to send the media; shown once, at start.
type ingestView struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

func newRecordingView(rec *recsink.Recording) recordingView {
	return recordingView{
		RecordingID:   rec.ID,
		MeetingID:     rec.MeetingID,
		RoomName:      rec.RoomName,
		State:         rec.State,
		StartDate:     rec.StartDate,
		EndDate:       rec.EndDate,
		StopReason:    rec.StopReason,
		BytesReceived: rec.BytesReceived,
		BytesUploaded: rec.BytesUploaded,
		SizeBytes:     rec.SizeBytes,
		SHA256:        rec.SHA256,
		Checksum:      rec.Checksum,
		Bucket:        rec.Destination.BucketPath(),
		ObjectKey:     rec.ObjectKey,
		FileFormat:    rec.Destination.FileFormat,
		Credential:    credentialRef{ID: rec.CredentialID, AccessKeyID: rec.AccessKeyID},
		LastError:     rec.LastError,
	}
}

// handleStartRecording handles POST /v1/meetings/{meetingId}/recordings. The
// response carries the ingest URL and token, shown only here.
func (s *Server) handleStartRecording(w http.ResponseWriter, r *http.Request) {
	rec, token, err := s.RecordingService.StartRecording(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	v := newRecordingView(rec)
	v.Ingest = &ingestView{URL: s.baseURL(r) + "/v1/recordings/" + url.PathEscape(rec.ID) + "/ingest", Token: token}
	// The token is a secret: keep it out of caches.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, v)
}

// baseURL returns PublicURL, or the URL the request came in on.
func (s *Server) baseURL(r *http.Request) string {
	if s.PublicURL != "" {
		return strings.TrimSuffix(s.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// handleStopRecording handles POST /v1/recordings/{recordingId}/stop.
func (s *Server) handleStopRecording(w http.ResponseWriter, r *http.Request) {
	rec, err := s.RecordingService.StopRecording(r.Context(), orgFrom(r.Context()).ID, r.PathValue("recordingId"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newRecordingView(rec))
}

// handleListRecordings handles GET /v1/recordings?roomName=&state=&limit=&cursor=.
func (s *Server) handleListRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := parseLimit(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	f := recsink.RecordingFilter{RoomName: q.Get("roomName"), State: q.Get("state"), Cursor: q.Get("cursor"), Limit: limit}
	if f.State != "" && !slices.Contains(recordingStates, f.State) {
		s.Error(w, r, recsink.FieldErrorf("state", "state must be one of %s", quoteList(recordingStates)))
		return
	}
	recs, next, err := s.RecordingService.ListRecordings(r.Context(), orgFrom(r.Context()).ID, f)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	results := make([]recordingView, 0, len(recs))
	for _, rec := range recs {
		results = append(results, newRecordingView(rec))
	}
	writeJSON(w, http.StatusOK, listView[recordingView]{Results: results, Cursor: next})
}

// handleGetRecording handles GET /v1/recordings/{recordingId}, with the
// recording's events.
func (s *Server) handleGetRecording(w http.ResponseWriter, r *http.Request) {
	rec, events, err := s.RecordingService.FindRecording(r.Context(), orgFrom(r.Context()).ID, r.PathValue("recordingId"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	v := newRecordingView(rec)
	if events == nil {
		events = []recsink.RecordingEvent{}
	}
	v.Events = &events
	writeJSON(w, http.StatusOK, v)
}

// handleDeleteRecording handles DELETE /v1/recordings/{recordingId}: the
// object is deleted from the customer's bucket.
func (s *Server) handleDeleteRecording(w http.ResponseWriter, r *http.Request) {
	if err := s.RecordingService.DeleteRecording(r.Context(), orgFrom(r.Context()).ID, r.PathValue("recordingId")); err != nil {
		s.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
