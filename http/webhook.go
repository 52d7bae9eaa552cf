package http

import (
	"net/http"
	"slices"
	"strings"

	"github.com/recsink/recsink"
)

// webhookInput is the body of PUT /v1/webhooks.
type webhookInput struct {
	URL string `json:"url"`
	// Events are the event types sent; empty means all of them.
	Events []string `json:"events"`
}

// webhookSecretView answers PUT /v1/webhooks: the endpoint with its
// signing secret, shown only here.
type webhookSecretView struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"`
}

// webhookView is the JSON shape of an endpoint. It never holds a secret.
type webhookView struct {
	URL                     string           `json:"url"`
	Events                  []string         `json:"events"`
	CreatedAt               recsink.APITime  `json:"createdAt"`
	UpdatedAt               recsink.APITime  `json:"updatedAt"`
	DisabledAt              *recsink.APITime `json:"disabledAt,omitempty"`
	PreviousSecretExpiresAt *recsink.APITime `json:"previousSecretExpiresAt,omitempty"`
}

// deliveryView is the JSON shape of one outbox event and its attempts.
type deliveryView struct {
	ID            string           `json:"id"`
	Type          string           `json:"type"`
	CreatedAt     recsink.APITime  `json:"createdAt"`
	State         string           `json:"state"`
	Attempts      int              `json:"attempts"`
	NextAttemptAt recsink.APITime  `json:"nextAttemptAt"`
	LastStatus    int              `json:"lastStatus,omitempty"`
	LastError     string           `json:"lastError,omitempty"`
	DeliveredAt   *recsink.APITime `json:"deliveredAt,omitempty"`
}

// webhooks returns the webhook service, or answers 501 when this server
// runs without one.
func (s *Server) webhooks(w http.ResponseWriter, r *http.Request) (recsink.WebhookService, bool) {
	if s.WebhookService == nil {
		s.Error(w, r, withStatus(http.StatusNotImplemented,
			recsink.Errorf(recsink.ENOTFOUND, "webhooks are not enabled on this recsink server")))
		return nil, false
	}
	return s.WebhookService, true
}

// handlePutWebhook handles PUT /v1/webhooks: set the organization's
// endpoint. The answer carries the new signing secret, shown only here.
func (s *Server) handlePutWebhook(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.webhooks(w, r)
	if !ok {
		return
	}
	var in webhookInput
	if _, err := decodeJSON(w, r, &in, false); err != nil {
		s.Error(w, r, err)
		return
	}
	in.URL = strings.TrimSpace(in.URL)
	if in.URL == "" {
		s.Error(w, r, recsink.FieldErrorf("url", "url is required: the http:// or https:// URL that receives events"))
		return
	}
	events := []string{}
	for _, e := range in.Events {
		if !slices.Contains(recsink.WebhookEventTypes, e) {
			s.Error(w, r, recsink.FieldErrorf("events", "unknown event type %s: events must be among %s, or empty for all",
				quoteShort(e), strings.Join(recsink.WebhookEventTypes, ", ")))
			return
		}
		if !slices.Contains(events, e) {
			events = append(events, e)
		}
	}
	orgID := orgFrom(r.Context()).ID
	secret, err := svc.SetEndpoint(r.Context(), orgID, in.URL, events)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditWebhookSet, "webhook", "endpoint "+endpointHost(in.URL)+" (new signing secret)")
	v := webhookSecretView{URL: in.URL, Events: events, Secret: secret}
	// Show what was stored where the service normalized it; the secret is
	// answered even if that lookup fails, since it cannot be shown again.
	if ep, err := svc.Endpoint(r.Context(), orgID); err == nil {
		v.URL, v.Events = ep.URL, ep.Events
	}
	if v.Events == nil {
		v.Events = []string{}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, v)
}

// handleGetWebhook handles GET /v1/webhooks.
func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.webhooks(w, r)
	if !ok {
		return
	}
	ep, err := svc.Endpoint(r.Context(), orgFrom(r.Context()).ID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	events := ep.Events
	if events == nil {
		events = []string{}
	}
	writeJSON(w, http.StatusOK, webhookView{
		URL:                     ep.URL,
		Events:                  events,
		CreatedAt:               recsink.APITime(ep.CreatedAt),
		UpdatedAt:               recsink.APITime(ep.UpdatedAt),
		DisabledAt:              recsink.APITimeOf(ep.DisabledAt),
		PreviousSecretExpiresAt: recsink.APITimeOf(ep.PreviousSecretExpiresAt),
	})
}

// handleDeleteWebhook handles DELETE /v1/webhooks.
func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.webhooks(w, r)
	if !ok {
		return
	}
	if err := svc.DeleteEndpoint(r.Context(), orgFrom(r.Context()).ID); err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditWebhookDeleted, "webhook", "endpoint removed")
	w.WriteHeader(http.StatusNoContent)
}

// handleRotateWebhookSecret handles POST /v1/webhooks/rotate-secret: a new
// secret, shown only here; the previous one also signs for a grace period.
func (s *Server) handleRotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.webhooks(w, r)
	if !ok {
		return
	}
	secret, err := svc.RotateSecret(r.Context(), orgFrom(r.Context()).ID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditWebhookSecretRotated, "webhook", "signing secret rotated")
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		Secret string `json:"secret"`
	}{secret})
}

// handleListWebhookDeliveries handles GET /v1/webhooks/deliveries?limit&cursor,
// newest first.
func (s *Server) handleListWebhookDeliveries(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.webhooks(w, r)
	if !ok {
		return
	}
	limit, err := parseLimit(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ds, next, err := svc.Deliveries(r.Context(), orgFrom(r.Context()).ID, r.URL.Query().Get("cursor"), limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	results := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		results = append(results, deliveryView{
			ID:            d.ID,
			Type:          d.Type,
			CreatedAt:     recsink.APITime(d.CreatedAt),
			State:         d.State,
			Attempts:      d.Attempts,
			NextAttemptAt: recsink.APITime(d.NextAttemptAt),
			LastStatus:    d.LastStatus,
			LastError:     d.LastError,
			DeliveredAt:   recsink.APITimeOf(d.DeliveredAt),
		})
	}
	writeJSON(w, http.StatusOK, newListView(results, next))
}

// handleIAMPolicy handles GET /v1/storage/iam-policy?bucket=NAME[/prefix]:
// the least-privilege IAM policy to give the access key, ready to paste.
func (s *Server) handleIAMPolicy(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("bucket")
	if strings.Contains(raw, "://") {
		s.Error(w, r, recsink.FieldErrorf("bucket", "bucket must be the bucket name only, not a URL: such as my-bucket or my-bucket/prefix"))
		return
	}
	d := recsink.Destination{}
	d.Bucket, d.Prefix = recsink.SplitBucket(raw)
	if err := d.Validate(); err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(recsink.IAMPolicy(d.Bucket, d.Prefix), '\n'))
}
