package recsink

import (
	"context"
	"encoding/hex"
	"time"
)

// AuditEvent is one change to an organization's settings or data: who made
// it, when, from which address and what changed. It never holds a secret:
// key IDs, bucket names and object keys only.
type AuditEvent struct {
	ID    string
	OrgID string
	Time  time.Time
	// Actor is who made the change: an API key's fingerprint
	// ("apikey:rsk_…1a2b3c4d"), an admin's email, or "cli".
	Actor string
	// AdminUserID is the admin user who made the change on the admin page;
	// the stores fill Actor with the admin's email from it when listing.
	AdminUserID string
	// Address is the client's IP address, as the server saw it.
	Address string
	// Action is one of the Audit* constants.
	Action string
	// Target is what changed: a scope, a meeting or recording ID.
	Target string
	// Details says what changed, in plain words (key IDs, bucket names).
	Details string
}

// Audited actions.
const (
	AuditStorageSaved          = "storage.saved"
	AuditStorageDeleted        = "storage.deleted"
	AuditWebhookSet            = "webhook.set"
	AuditWebhookDeleted        = "webhook.deleted"
	AuditWebhookSecretRotated  = "webhook.secret_rotated"
	AuditMeetingDeleted        = "meeting.deleted"
	AuditRecordingDeleted      = "recording.deleted"
	AuditRecordingsBulkDeleted = "recordings.bulk_delete"
	AuditAdminUserCreated      = "admin_user.created"
	AuditStreamKeySet          = "stream_key.set"
	AuditStreamKeyRevoked      = "stream_key.revoked"
)

// AuditStore keeps the audit trail. Part of Store; old events go with
// Prune.
type AuditStore interface {
	// AddAuditEvent appends e (its ID and Time set by the caller).
	AddAuditEvent(ctx context.Context, e *AuditEvent) error
	// ListAuditEvents returns up to limit events of the organization, newest
	// first, after cursor, and the cursor of the next page ("" at the end).
	ListAuditEvents(ctx context.Context, orgID, cursor string, limit int) ([]*AuditEvent, string, error)
}

// APIKeyActor names an API key in the audit trail without the key: its
// prefix and the first 8 hex digits of its SHA-256.
func APIKeyActor(key string) string {
	return "apikey:rsk_…" + hex.EncodeToString(HashToken(key)[:4])
}

// AuditService records changes and lists them.
type AuditService interface {
	// RecordAudit saves e with a new ID and the current time.
	RecordAudit(ctx context.Context, e *AuditEvent) error
	// ListAudit returns the organization's audit events, newest first.
	ListAudit(ctx context.Context, orgID, cursor string, limit int) ([]*AuditEvent, string, error)
}
