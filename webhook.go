package recsink

import (
	"context"
	"time"
)

// Webhook event types.
const (
	WebhookRecordingStarted       = "recording.started"
	WebhookRecordingFinished      = "recording.finished"
	WebhookRecordingFailed        = "recording.failed"
	WebhookRecordingUploadBlocked = "recording.upload_blocked"
	WebhookRecordingUploadResumed = "recording.upload_resumed"
	WebhookCredentialDrained      = "credential.drained"
	WebhookCredentialFailing      = "credential.failing"
	WebhookCredentialRecovered    = "credential.recovered"
)

// WebhookEventTypes lists every event type an endpoint may subscribe to.
var WebhookEventTypes = []string{
	WebhookRecordingStarted, WebhookRecordingFinished, WebhookRecordingFailed,
	WebhookRecordingUploadBlocked, WebhookRecordingUploadResumed, WebhookCredentialDrained,
	WebhookCredentialFailing, WebhookCredentialRecovered,
}

// WebhookEndpoint is an organization's webhook receiver. Its signing secret
// is sealed like access secrets; after a rotation the previous secret also
// signs until PreviousSecretExpiresAt.
type WebhookEndpoint struct {
	OrgID                    string     `json:"-"`
	URL                      string     `json:"url"`
	Events                   []string   `json:"events"`
	SecretCiphertext         []byte     `json:"-"`
	PreviousSecretCiphertext []byte     `json:"-"`
	PreviousSecretExpiresAt  *time.Time `json:"previousSecretExpiresAt,omitempty"`
	// DisabledAt is set when the receiver answered 410 Gone.
	DisabledAt *time.Time `json:"disabledAt,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	UpdatedAt  time.Time  `json:"updatedAt"`
}

// AssociatedData binds a webhook secret's ciphertext to its endpoint.
func (e *WebhookEndpoint) AssociatedData() []byte {
	return []byte("recsink webhook secret v1\x00" + e.OrgID)
}

// Webhook delivery states.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // the receiver answered 2xx
	DeliveryFailed    = "failed"    // gave up after the retry window
	DeliveryDisabled  = "disabled"  // the endpoint was disabled (410) or removed
)

// WebhookDelivery is one event in the durable outbox, with its attempts.
type WebhookDelivery struct {
	ID            string     `json:"id"` // the event ID receivers use to drop repeats
	OrgID         string     `json:"-"`
	Type          string     `json:"type"`
	Payload       []byte     `json:"-"` // the exact JSON body that is signed and sent
	CreatedAt     time.Time  `json:"createdAt"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"nextAttemptAt"`
	LastStatus    int        `json:"lastStatus,omitempty"`
	LastError     string     `json:"lastError,omitempty"`
	DeliveredAt   *time.Time `json:"deliveredAt,omitempty"`
}

// WebhookStore keeps webhook endpoints and the outbox. Part of Store.
type WebhookStore interface {
	// PutWebhookEndpoint inserts or replaces the organization's endpoint.
	PutWebhookEndpoint(ctx context.Context, e *WebhookEndpoint) error
	FindWebhookEndpoint(ctx context.Context, orgID string) (*WebhookEndpoint, error)
	DeleteWebhookEndpoint(ctx context.Context, orgID string) error
	// CreateWebhookDelivery adds an event to the outbox (state pending).
	CreateWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	// ClaimWebhookDeliveries returns up to limit pending deliveries due at
	// now (NextAttemptAt <= now), oldest first, and moves their
	// NextAttemptAt to leaseUntil in the same transaction, so that another
	// worker or node does not send them at the same time.
	ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*WebhookDelivery, error)
	// UpdateWebhookDelivery saves state, attempts, next attempt, last
	// status and error, delivered time.
	UpdateWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	// ListWebhookDeliveries pages through the organization's deliveries,
	// newest first.
	ListWebhookDeliveries(ctx context.Context, orgID, cursor string, limit int) ([]*WebhookDelivery, string, error)
}
