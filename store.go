package recsink

import (
	"context"
	"time"
)

// Store keeps recsink's state. Implemented by the sqlite package (and later
// postgres); one conformance suite (storetest) runs against each. Lookups of
// rows that do not exist, or belong to another organization, return an
// ENOTFOUND *Error.
type Store interface {
	Close() error
	WebhookStore
	LeaseStore
	AdminStore
	SigningKeyStore
	AuditStore
	CredentialHealthStore

	CreateOrganization(ctx context.Context, org *Organization, apiKeyHash []byte) error
	FindOrganizationByAPIKeyHash(ctx context.Context, hash []byte) (*Organization, error)
	FindOrganizationByName(ctx context.Context, name string) (*Organization, error)

	// CreateCredential inserts c as the new current generation of its scope
	// and marks the previous current one replaced at c.CreatedAt, atomically.
	CreateCredential(ctx context.Context, c *Credential) error
	FindCredential(ctx context.Context, orgID, id string) (*Credential, error)
	// CurrentCredential returns the scope's generation with no ReplacedAt.
	CurrentCredential(ctx context.Context, orgID, scope string) (*Credential, error)
	// ReplaceCurrentCredential marks the scope's current generation replaced
	// (settings deleted); ENOTFOUND when there is none.
	ReplaceCurrentCredential(ctx context.Context, orgID, scope string, at time.Time) error
	// ListCredentials returns all generations of the organization, oldest first.
	ListCredentials(ctx context.Context, orgID string) ([]*Credential, error)
	// WatchCredentials sends the organization ID of every credential saved
	// or replaced by any node, until ctx ends; "" means "anything may have
	// changed" (after a reconnect). PostgreSQL: LISTEN/NOTIFY sent in the
	// same transaction as the write, with a poll while the listening
	// connection is down; SQLite: in-process. A slow reader misses no
	// change: sends that would block are folded into one "".
	WatchCredentials(ctx context.Context) (<-chan string, error)

	// CreateMeeting inserts m; a duplicate room name is ECONFLICT.
	CreateMeeting(ctx context.Context, m *Meeting) error
	FindMeeting(ctx context.Context, orgID, id string) (*Meeting, error)
	// ListMeetings returns up to limit meetings after cursor in creation
	// order, and the cursor of the next page ("" at the end).
	ListMeetings(ctx context.Context, orgID, cursor string, limit int) ([]*Meeting, string, error)
	DeleteMeeting(ctx context.Context, orgID, id string) error

	// CreateRecording inserts r owned by r.Owner.Node/URL with a lease of
	// ttl on the database's clock, row and owner and lease in one statement,
	// and sets r.Owner (Epoch 1, LeaseExpiresAt). A second recording with
	// the same (destination endpoint, bucket, object key) as any recording
	// not deleted is ECONFLICT with Field "objectKey".
	CreateRecording(ctx context.Context, r *Recording, ttl time.Duration) error
	FindRecording(ctx context.Context, orgID, id string) (*Recording, error)
	// FindRecordingByID finds a recording in any organization: for ingest,
	// which is authenticated by the recording's own token.
	FindRecordingByID(ctx context.Context, id string) (*Recording, error)
	// UpdateRecording saves every mutable field of r (state, end date, stop
	// reason, byte counts, size, sha256, last error, credential, upload ID)
	// where r.Owner.Node and r.Owner.Epoch still hold the row (else
	// ErrLeaseLost) and CanTransition(row state, r.State) (else ECONFLICT);
	// ENOTFOUND when there is no such row.
	UpdateRecording(ctx context.Context, r *Recording) error
	// MarkRecordingDeleted moves a finished recording to deleted, from any
	// node; idempotent; ECONFLICT when the recording is unfinished.
	MarkRecordingDeleted(ctx context.Context, orgID, id string) error
	ListRecordings(ctx context.Context, orgID string, f RecordingFilter) ([]*Recording, string, error)
	// ListUnfinishedRecordings returns recordings of every organization in
	// the states recording, blocked and stopping: what to resume at start.
	ListUnfinishedRecordings(ctx context.Context) ([]*Recording, error)
	// ListHoldingRecordings returns the organization's recordings that hold
	// a credential (recording, blocked, stopping).
	ListHoldingRecordings(ctx context.Context, orgID string) ([]*Recording, error)
	AddRecordingEvent(ctx context.Context, recordingID string, e RecordingEvent) error
	ListRecordingEvents(ctx context.Context, recordingID string) ([]RecordingEvent, error)

	// PutPart records a part confirmed by S3 (insert or replace by number).
	PutPart(ctx context.Context, recordingID string, p Part) error
	// ListParts returns the recording's confirmed parts by number.
	ListParts(ctx context.Context, recordingID string) ([]Part, error)

	// Prune deletes what is older than before: the events and parts of
	// recordings finished before it, webhook deliveries finished before it,
	// and audit events. It works in bounded batches so that no statement holds locks long.
	Prune(ctx context.Context, before time.Time) (PruneStats, error)
}

// PruneStats counts the rows that Store.Prune deleted.
type PruneStats struct {
	RecordingEvents   int64
	Parts             int64
	WebhookDeliveries int64
	AuditEvents       int64
}
