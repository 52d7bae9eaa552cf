package http

import (
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
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
	RecordingID   string           `json:"recordingId"`
	MeetingID     string           `json:"meetingId"`
	RoomName      string           `json:"roomName"`
	State         string           `json:"state"`
	StartDate     recsink.APITime  `json:"startDate"`
	EndDate       *recsink.APITime `json:"endDate"`
	StopReason    string           `json:"stopReason,omitempty"`
	BytesReceived int64            `json:"bytesReceived"`
	BytesUploaded int64            `json:"bytesUploaded"`
	SizeBytes     *int64           `json:"sizeBytes"`
	// Filename and SizeInMegaBytes are Whereby's: the object's name after
	// the last slash, and its size (the bytes received while it has none)
	// in megabytes of 10^6 bytes, to 3 decimals.
	Filename        string  `json:"filename"`
	SizeInMegaBytes float64 `json:"sizeInMegaBytes"`
	SHA256          string  `json:"sha256,omitempty"`
	Checksum        string  `json:"checksum,omitempty"`
	Bucket          string  `json:"bucket"`
	ObjectKey       string  `json:"objectKey"`
	FileFormat      string  `json:"fileFormat"`
	// Source is how the recording is received: "http", "rtmp" or "srt".
	Source     string        `json:"source"`
	Credential credentialRef `json:"credential"`
	LastError  string        `json:"lastError,omitempty"`
	Ingest     *ingestView   `json:"ingest,omitempty"`
	Events     *[]eventView  `json:"events,omitempty"`
}

// eventView is the JSON shape of a recording event.
type eventView struct {
	Time    recsink.APITime `json:"time"`
	Type    string          `json:"type"`
	Message string          `json:"message"`
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
		RecordingID:     rec.ID,
		MeetingID:       rec.MeetingID,
		RoomName:        rec.RoomName,
		State:           rec.State,
		StartDate:       recsink.APITime(rec.StartDate),
		EndDate:         recsink.APITimeOf(rec.EndDate),
		StopReason:      rec.StopReason,
		BytesReceived:   rec.BytesReceived,
		BytesUploaded:   rec.BytesUploaded,
		SizeBytes:       rec.SizeBytes,
		Filename:        path.Base(rec.ObjectKey),
		SizeInMegaBytes: sizeInMegaBytes(rec),
		Source:          recordingSource(rec),
		SHA256:          rec.SHA256,
		Checksum:        rec.Checksum,
		Bucket:          rec.Destination.BucketPath(),
		ObjectKey:       rec.ObjectKey,
		FileFormat:      rec.Destination.FileFormat,
		Credential:      credentialRef{ID: rec.CredentialID, AccessKeyID: rec.AccessKeyID},
		LastError:       rec.LastError,
	}
}

// sizeInMegaBytes returns the recording's size, or the bytes received while
// it has none, in megabytes (10^6 bytes) rounded to 3 decimals: a number
// like Whereby's that still tells a small test recording from an empty one.
func sizeInMegaBytes(rec *recsink.Recording) float64 {
	n := rec.BytesReceived
	if rec.SizeBytes != nil {
		n = *rec.SizeBytes
	}
	return math.Round(float64(n)/1e3) / 1e3
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

// handleListRecordings handles GET /v1/recordings?roomName=&state=&sortBy=&limit=&cursor=.
func (s *Server) handleListRecordings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := parseLimit(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	sort, err := recsink.ParseRecordingSort(q.Get("sortBy"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	f := recsink.RecordingFilter{RoomName: q.Get("roomName"), State: q.Get("state"), Cursor: q.Get("cursor"), Limit: limit, Sort: sort}
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
	writeJSON(w, http.StatusOK, newListView(results, next))
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
	evs := make([]eventView, 0, len(events))
	for _, e := range events {
		evs = append(evs, eventView{Time: recsink.APITime(e.Time), Type: e.Type, Message: e.Message})
	}
	v.Events = &evs
	writeJSON(w, http.StatusOK, v)
}

// handleDeleteRecording handles DELETE /v1/recordings/{recordingId}: the
// object is deleted from the customer's bucket.
func (s *Server) handleDeleteRecording(w http.ResponseWriter, r *http.Request) {
	if err := s.RecordingService.DeleteRecording(r.Context(), orgFrom(r.Context()).ID, r.PathValue("recordingId")); err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditRecordingDeleted, r.PathValue("recordingId"), "object deleted from the bucket")
	w.WriteHeader(http.StatusNoContent)
}

// accessLinkView is Whereby's access link: the URL and when it expires, in
// Unix milliseconds (Whereby's "expires": 1588262400000).
type accessLinkView struct {
	AccessLink string `json:"accessLink"`
	Expires    int64  `json:"expires"`
}

// handleAccessLink handles GET /v1/recordings/{recordingId}/access-link?validForSeconds=N:
// a presigned GET of the object, valid for N seconds (default 3600, at most
// 43200, as Whereby's).
func (s *Server) handleAccessLink(w http.ResponseWriter, r *http.Request) {
	validFor := recsink.DefaultAccessLinkValidity
	if v := r.URL.Query().Get("validForSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > int(recsink.MaxAccessLinkValidity/time.Second) {
			s.Error(w, r, recsink.FieldErrorf("validForSeconds", "validForSeconds must be a whole number from 1 to %d", int(recsink.MaxAccessLinkValidity/time.Second)))
			return
		}
		validFor = time.Duration(n) * time.Second
	}
	link, err := s.RecordingService.AccessLink(r.Context(), orgFrom(r.Context()).ID, r.PathValue("recordingId"), validFor)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	// The link grants access to the object: keep it out of caches.
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, accessLinkView{AccessLink: link.URL, Expires: link.Expires.UnixMilli()})
}

// bulkDeleteInput is the body of POST /v1/recordings/bulk-delete, as
// Whereby's.
type bulkDeleteInput struct {
	RecordingIDs *[]string `json:"recordingIds"`
}

// handleBulkDelete handles POST /v1/recordings/bulk-delete: 204 at once;
// the objects are deleted in the background and each recording shows the
// outcome. Idempotent, as Whereby's.
func (s *Server) handleBulkDelete(w http.ResponseWriter, r *http.Request) {
	var in bulkDeleteInput
	if _, err := decodeJSON(w, r, &in, false); err != nil {
		s.Error(w, r, err)
		return
	}
	if in.RecordingIDs == nil {
		s.Error(w, r, recsink.FieldErrorf("recordingIds", "recordingIds is required: the IDs of up to %d recordings", recsink.MaxBulkDelete))
		return
	}
	if len(*in.RecordingIDs) > recsink.MaxBulkDelete {
		s.Error(w, r, recsink.FieldErrorf("recordingIds", "recordingIds may hold at most %d recordings, not %d", recsink.MaxBulkDelete, len(*in.RecordingIDs)))
		return
	}
	if err := s.RecordingService.BulkDeleteRecordings(r.Context(), orgFrom(r.Context()).ID, *in.RecordingIDs); err != nil {
		s.Error(w, r, err)
		return
	}
	if len(*in.RecordingIDs) > 0 {
		s.audit(r, recsink.AuditRecordingsBulkDeleted, strconv.Itoa(len(*in.RecordingIDs))+" recordings", "bulk delete of "+strings.Join(*in.RecordingIDs, ", "))
	}
	w.WriteHeader(http.StatusNoContent)
}

// recordingSource is how rec is received; a recording that says nothing
// came in over HTTP, as every one did before live ingest.
func recordingSource(rec *recsink.Recording) string {
	if rec.Source == "" {
		return recsink.SourceHTTP
	}
	return rec.Source
}
