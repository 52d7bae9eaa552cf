package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/recsink/recsink"
)

// streamKeyView is a room's stream key as the API shows it. StreamKey and a
// complete rtmp.url are only in the answer that created the key: it is
// stored hashed and cannot be shown again.
type streamKeyView struct {
	MeetingID     string           `json:"meetingId"`
	Set           bool             `json:"set"`
	StreamKey     string           `json:"streamKey,omitempty"`
	CreatedAt     recsink.APITime  `json:"createdAt"`
	LastPublishAt *recsink.APITime `json:"lastPublishAt"`
	Live          bool             `json:"live"`
	LiveProtocol  string           `json:"liveProtocol,omitempty"`
	Publish       []publishView    `json:"publish"`
}

// publishView is where a publisher sends the room's stream: url is the
// complete URL when the key is known (at its creation), else a template with
// {streamKey} in its place.
type publishView struct {
	Protocol string `json:"protocol"`
	URL      string `json:"url"`
	// Server and StreamKey are the two fields that encoders such as OBS ask
	// for separately.
	Server    string `json:"server,omitempty"`
	StreamKey string `json:"streamKey,omitempty"`
}

func (s *Server) streamKeys(w http.ResponseWriter, r *http.Request) (recsink.StreamKeyService, bool) {
	if s.StreamKeyService == nil {
		// 404 rather than 501: the server works, this part is off.
		s.Error(w, r, recsink.Errorf(recsink.ENOTFOUND, "live ingest is not enabled on this recsink server"))
		return nil, false
	}
	return s.StreamKeyService, true
}

// handleCreateStreamKey handles POST /v1/meetings/{meetingId}/stream-key:
// creates the room's stream key, or replaces it (the old key is refused
// from then on).
func (s *Server) handleCreateStreamKey(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.streamKeys(w, r)
	if !ok {
		return
	}
	k, key, err := svc.CreateStreamKey(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditStreamKeySet, k.MeetingID, "stream key created or replaced; an earlier key is refused from now on")
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, s.streamKeyView(r, svc, k, key))
}

// handleGetStreamKey handles GET /v1/meetings/{meetingId}/stream-key.
func (s *Server) handleGetStreamKey(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.streamKeys(w, r)
	if !ok {
		return
	}
	k, err := svc.FindStreamKey(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.streamKeyView(r, svc, k, ""))
}

// handleDeleteStreamKey handles DELETE /v1/meetings/{meetingId}/stream-key:
// revokes the key. A publish live on it goes on to its end.
func (s *Server) handleDeleteStreamKey(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.streamKeys(w, r)
	if !ok {
		return
	}
	if err := svc.DeleteStreamKey(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId")); err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditStreamKeyRevoked, r.PathValue("meetingId"), "stream key revoked")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) streamKeyView(r *http.Request, svc recsink.StreamKeyService, k *recsink.StreamKey, key string) streamKeyView {
	v := streamKeyView{MeetingID: k.MeetingID, Set: true, StreamKey: key, CreatedAt: recsink.APITime(k.CreatedAt), LastPublishAt: recsink.APITimeOf(k.LastPublishAt), Publish: []publishView{}}
	v.Live, v.LiveProtocol = svc.LiveStatus(k.MeetingID)
	eps := recsink.PublishEndpoints(s.baseURL(r), r.Host, s.RTMPAddr, s.SRTAddr, key)
	if s.WHIP {
		eps = append(eps, recsink.WHIPEndpoint(s.baseURL(r), key))
	}
	for _, p := range eps {
		v.Publish = append(v.Publish, publishView{Protocol: p.Protocol, URL: p.URL, Server: p.Server, StreamKey: p.StreamKey})
	}
	return v
}

// handleCreateMeetingStreamKey handles POST /v1/meetings: the meeting
// handler's own answer, plus the room's stream key when the body asks for
// one with "streamKey": true (the field is taken out before the meeting
// handler reads the body).
func (s *Server) handleCreateMeetingStreamKey(w http.ResponseWriter, r *http.Request) {
	want, err := takeStreamKeyField(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if !want {
		s.handleCreateMeeting(w, r)
		return
	}
	svc, ok := s.streamKeys(w, r)
	if !ok {
		return
	}
	rec := &bufferedResponse{header: http.Header{}}
	s.handleCreateMeeting(rec, r)
	var view map[string]any
	if rec.status != http.StatusCreated || json.Unmarshal(rec.body.Bytes(), &view) != nil {
		rec.flush(w)
		return
	}
	meetingID, _ := view["meetingId"].(string)
	k, key, err := svc.CreateStreamKey(r.Context(), orgFrom(r.Context()).ID, meetingID)
	if err != nil {
		// The meeting exists: the key can be created with its own route.
		s.Error(w, r, fmt.Errorf("meeting %s was created but not its stream key: %w", meetingID, err))
		return
	}
	s.audit(r, recsink.AuditStreamKeySet, k.MeetingID, "stream key created with the meeting")
	view["streamKey"] = s.streamKeyView(r, svc, k, key)
	for name, v := range rec.header {
		w.Header()[name] = v
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, view)
}

// takeStreamKeyField removes a top-level "streamKey" from a JSON body and
// reports whether it was true. A body that is not a JSON object, or too
// large, is left as it is for the meeting handler to refuse.
func takeStreamKeyField(r *http.Request) (bool, error) {
	const limit = 64 << 10
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return false, err
	}
	restore := func(b []byte) {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), r.Body))
	}
	var fields map[string]json.RawMessage
	if len(body) > limit || json.Unmarshal(body, &fields) != nil {
		restore(body)
		return false, nil
	}
	raw, ok := fields["streamKey"]
	if !ok {
		restore(body)
		return false, nil
	}
	var want bool
	if err := json.Unmarshal(raw, &want); err != nil {
		return false, recsink.FieldErrorf("streamKey", "streamKey must be true or false")
	}
	delete(fields, "streamKey")
	b, err := json.Marshal(fields)
	if err != nil {
		return false, err
	}
	restore(b)
	r.ContentLength = int64(len(b))
	return want, nil
}

// bufferedResponse holds a handler's answer so that it can be added to.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.WriteHeader(http.StatusOK)
	return b.body.Write(p)
}

func (b *bufferedResponse) flush(w http.ResponseWriter) {
	for name, v := range b.header {
		w.Header()[name] = v
	}
	w.WriteHeader(b.status)
	w.Write(b.body.Bytes())
}

// handleGetMeetingStreamKey handles GET /v1/meetings/{meetingId}: the
// meeting handler's own answer, plus the room's stream key state and
// publish URL templates (never the key) when live ingest is on.
func (s *Server) handleGetMeetingStreamKey(w http.ResponseWriter, r *http.Request) {
	if s.StreamKeyService == nil {
		s.handleGetMeeting(w, r)
		return
	}
	rec := &bufferedResponse{header: http.Header{}}
	s.handleGetMeeting(rec, r)
	var view map[string]any
	if rec.status != http.StatusOK || json.Unmarshal(rec.body.Bytes(), &view) != nil {
		rec.flush(w)
		return
	}
	k, err := s.StreamKeyService.FindStreamKey(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	switch {
	case recsink.ErrorCode(err) == recsink.ENOTFOUND:
		view["streamKey"] = map[string]any{"set": false}
	case err != nil:
		s.Error(w, r, err)
		return
	default:
		view["streamKey"] = s.streamKeyView(r, s.StreamKeyService, k, "")
	}
	for name, v := range rec.header {
		w.Header()[name] = v
	}
	writeJSON(w, http.StatusOK, view)
}
