package admin

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// adminLinkValidity is how long the player's and the download's access link
// works: long enough to watch a long recording from one page load.
const adminLinkValidity = 4 * time.Hour

// recordingData is one recording's own page.
type recordingData struct {
	Rec      *recsink.Recording
	Room     string
	Duration time.Duration
	Events   []recsink.RecordingEvent
	// Link is an access link to the object, for the player and the
	// download; LinkError says why there is none.
	Link      string
	LinkError string
	Error     string // a failed deletion
	Deleted   bool   // just deleted
}

// handleRecording shows a recording: a player and a download link for an
// uploaded one, its size, checksum, key, object and events, and a delete
// button. The page's CSP allows media from the bucket's origin only.
func (h *Handler) handleRecording(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	h.renderRecording(w, r, s, http.StatusOK, "")
}

func (h *Handler) renderRecording(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession, status int, failure string) {
	rec, events, err := h.cfg.Recordings.FindRecording(r.Context(), s.OrgID, r.PathValue("id"))
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d := &recordingData{Rec: rec, Room: strings.TrimPrefix(rec.RoomName, "/"), Events: events, Error: failure,
		Deleted: r.URL.Query().Get("deleted") != "" && rec.State == recsink.RecordingDeleted}
	if rec.EndDate != nil {
		d.Duration = rec.EndDate.Sub(rec.StartDate)
	} else {
		d.Duration = h.now().Sub(rec.StartDate)
	}
	if rec.State == recsink.RecordingUploaded {
		link, err := h.cfg.Recordings.AccessLink(r.Context(), s.OrgID, rec.ID, adminLinkValidity)
		switch {
		case err == nil:
			d.Link = link.URL
			if u, err := url.Parse(link.URL); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				// Media from the object's origin only: a new CSP with
				// media-src added, replacing the page's default.
				w.Header().Set("Content-Security-Policy", pageCSP+"; media-src "+u.Scheme+"://"+u.Host)
			}
		case recsink.ErrorCode(err) == recsink.EINTERNAL:
			h.log.ErrorContext(r.Context(), "admin: access link", "recording", rec.ID, "err", err)
			d.LinkError = "internal error"
		default:
			d.LinkError = recsink.ErrorMessage(err)
		}
	}
	h.render(w, r, status, "recording", &page{Title: "Recording " + rec.ID, Nav: "recordings", Session: s, Data: d})
}

// handleRecordingDelete deletes a finished recording's object, once the
// admin ticked the confirmation.
func (h *Handler) handleRecordingDelete(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		h.renderRecording(w, r, s, http.StatusUnprocessableEntity, "Tick the box to confirm that the object is to be deleted from the bucket.")
		return
	}
	if err := h.cfg.Recordings.DeleteRecording(r.Context(), s.OrgID, id); err != nil {
		if recsink.ErrorCode(err) == recsink.EINTERNAL {
			h.log.ErrorContext(r.Context(), "admin: delete recording", "recording", id, "err", err)
			h.renderRecording(w, r, s, http.StatusInternalServerError, "The recording could not be deleted: internal error.")
			return
		}
		h.renderRecording(w, r, s, http.StatusUnprocessableEntity, "The recording could not be deleted: "+recsink.ErrorMessage(err))
		return
	}
	h.audit(r, s, recsink.AuditRecordingDeleted, id, "object deleted from the bucket")
	http.Redirect(w, r, "/admin/recordings/"+url.PathEscape(id)+"?deleted=1", http.StatusSeeOther)
}
