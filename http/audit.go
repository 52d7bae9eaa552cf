package http

import (
	"context"
	"net"
	"net/http"
	"net/url"

	"github.com/recsink/recsink"
)

// audit records a change made through the API: the API key that made it
// (its fingerprint, never the key), the client's address, what changed.
// The change is already made: a failure to record it is logged, not
// answered.
func (s *Server) audit(r *http.Request, action, target, details string) {
	if s.AuditService == nil {
		return
	}
	key, _ := bearerToken(r)
	e := &recsink.AuditEvent{OrgID: orgFrom(r.Context()).ID, Actor: recsink.APIKeyActor(key), Address: ClientAddress(r),
		Action: action, Target: target, Details: details}
	if err := s.AuditService.RecordAudit(context.WithoutCancel(r.Context()), e); err != nil {
		s.logger().ErrorContext(r.Context(), "http: record audit event", "action", action, "target", target, "err", err)
	}
}

// ClientAddress returns the IP address of the request's client as the
// server saw it (no proxy header is trusted).
func ClientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// endpointHost returns a webhook URL's host: the audit trail names the
// receiver without a path or query that may carry a token.
func endpointHost(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return "(invalid URL)"
}

// auditView is the JSON shape of an audit event.
type auditView struct {
	ID      string          `json:"id"`
	Time    recsink.APITime `json:"time"`
	Actor   string          `json:"actor"`
	Address string          `json:"address"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Details string          `json:"details"`
}

// handleListAudit handles GET /v1/audit?limit=&cursor=, newest first.
func (s *Server) handleListAudit(w http.ResponseWriter, r *http.Request) {
	if s.AuditService == nil {
		s.Error(w, r, withStatus(http.StatusNotImplemented, recsink.Errorf(recsink.ENOTFOUND, "the audit trail is not enabled on this recsink server")))
		return
	}
	limit, err := parseLimit(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	es, next, err := s.AuditService.ListAudit(r.Context(), orgFrom(r.Context()).ID, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	results := make([]auditView, 0, len(es))
	for _, e := range es {
		results = append(results, auditView{ID: e.ID, Time: recsink.APITime(e.Time), Actor: e.Actor, Address: e.Address, Action: e.Action, Target: e.Target, Details: e.Details})
	}
	writeJSON(w, http.StatusOK, newListView(results, next))
}
