package admin

import (
	"context"
	"net"
	"net/http"

	"github.com/recsink/recsink"
)

// audit records a change an admin made on the page; the admin is named by
// email when the trail is read.
func (h *Handler) audit(r *http.Request, s *recsink.AdminSession, action, target, details string) {
	if h.cfg.Audit == nil {
		return
	}
	e := &recsink.AuditEvent{OrgID: s.OrgID, Actor: "admin", AdminUserID: s.UserID, Address: clientAddress(r),
		Action: action, Target: target, Details: details}
	if err := h.cfg.Audit.RecordAudit(context.WithoutCancel(r.Context()), e); err != nil {
		h.log.ErrorContext(r.Context(), "admin: record audit event", "action", action, "err", err)
	}
}

// clientAddress returns the IP address of the request's client as the
// server saw it (no proxy header is trusted), as the API records it.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type activityData struct {
	Events []*recsink.AuditEvent
	Next   string
}

// handleActivity shows the organization's audit trail, newest first.
func (h *Handler) handleActivity(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	d := &activityData{}
	if h.cfg.Audit != nil {
		es, next, err := h.cfg.Audit.ListAudit(r.Context(), s.OrgID, r.URL.Query().Get("cursor"), 50)
		if err != nil {
			h.renderError(w, r, s, err)
			return
		}
		d.Events, d.Next = es, next
	}
	h.render(w, r, http.StatusOK, "activity", &page{Title: "Activity", Nav: "activity", Session: s, Data: d})
}
