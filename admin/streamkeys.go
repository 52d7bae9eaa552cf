package admin

import (
	"net/http"
	"strings"

	"github.com/recsink/recsink"
)

// streamKeyOf returns the room's stream key state, or nil when live ingest
// is off.
func (h *Handler) streamKeyOf(r *http.Request, s *recsink.AdminSession, meetingID string) (*roomStreamKey, error) {
	svc := h.cfg.Live.StreamKeys
	if svc == nil {
		return nil, nil
	}
	k, err := svc.FindStreamKey(r.Context(), s.OrgID, meetingID)
	switch {
	case recsink.ErrorCode(err) == recsink.ENOTFOUND:
		k = nil
	case err != nil:
		return nil, err
	}
	sk := &roomStreamKey{MeetingID: meetingID, Key: k}
	sk.Live, sk.Protocol = svc.LiveStatus(meetingID)
	return sk, nil
}

// roomStreamKey is a room's stream key state: Key is nil when none is set.
type roomStreamKey struct {
	MeetingID string
	Key       *recsink.StreamKey
	Live      bool
	Protocol  string
}

// streamKeyData is the answer page of a replaced stream key: the only page
// that ever shows the key.
type streamKeyData struct {
	Room      string
	MeetingID string
	Key       string
	Publish   []recsink.PublishEndpoint
}

// handleStreamKeyReplace handles the Rooms page's "Replace stream key":
// creates the room's key, or replaces it (the old key is refused from then
// on), and shows it once with its publish URLs.
func (h *Handler) handleStreamKeyReplace(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	svc := h.cfg.Live.StreamKeys
	if svc == nil {
		h.handleNotFound(w, r)
		return
	}
	m, err := h.cfg.Meetings.FindMeeting(r.Context(), s.OrgID, r.PathValue("id"))
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	k, key, err := svc.CreateStreamKey(r.Context(), s.OrgID, m.ID)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	h.log.InfoContext(r.Context(), "admin: stream key replaced", "org", s.OrgID, "user", s.UserID, "meeting", k.MeetingID)
	h.audit(r, s, recsink.AuditStreamKeySet, k.MeetingID, "stream key created or replaced; an earlier key is refused from now on")
	w.Header().Set("Cache-Control", "no-store")
	d := &streamKeyData{Room: strings.TrimPrefix(m.RoomName, "/"), MeetingID: m.ID, Key: key,
		Publish: recsink.PublishEndpoints(h.cfg.Live.PublicURL, r.Host, h.cfg.Live.RTMPAddr, h.cfg.Live.SRTAddr, key)}
	if h.cfg.Live.WHIP {
		d.Publish = append(d.Publish, recsink.WHIPEndpoint(h.baseURL(r), key))
	}
	h.render(w, r, http.StatusOK, "streamkey", &page{Title: "Stream key", Nav: "rooms", Session: s, Data: d})
}

// handleStreamKeyRevoke handles the Rooms page's "Revoke": a publish with
// the key is refused from then on; one live on it goes on to its end.
func (h *Handler) handleStreamKeyRevoke(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	svc := h.cfg.Live.StreamKeys
	if svc == nil {
		h.handleNotFound(w, r)
		return
	}
	id := r.PathValue("id")
	err := svc.DeleteStreamKey(r.Context(), s.OrgID, id)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		// Already revoked (a second click): the page shows the state.
		err = nil
	} else if err == nil {
		h.log.InfoContext(r.Context(), "admin: stream key revoked", "org", s.OrgID, "user", s.UserID, "meeting", id)
		h.audit(r, s, recsink.AuditStreamKeyRevoked, id, "stream key revoked")
	}
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/admin/rooms", http.StatusSeeOther)
}

// ingestName is how a recording was received, or which protocol a publish
// uses, as the pages name it: "rtmp" is RTMP, and a recording without a
// source came in over HTTP.
func ingestName(source string) string {
	switch source {
	case "", recsink.SourceHTTP:
		return "HTTP"
	default:
		return strings.ToUpper(source)
	}
}

// baseURL is the server's public base URL: --public-url, else the scheme
// and host the page was asked on.
func (h *Handler) baseURL(r *http.Request) string {
	if h.cfg.Live.PublicURL != "" {
		return strings.TrimSuffix(h.cfg.Live.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
