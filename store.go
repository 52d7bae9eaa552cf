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

	// CreateMeeting inserts m; a duplicate room name is ECONFLICT.
	CreateMeeting(ctx context.Context, m *Meeting) error
	FindMeeting(ctx context.Context, orgID, id string) (*Meeting, error)
	// ListMeetings returns up to limit meetings after cursor in creation
	// order, and the cursor of the next page ("" at the end).
	ListMeetings(ctx context.Context, orgID, cursor string, limit int) ([]*Meeting, string, error)
	DeleteMeeting(ctx context.Context, orgID, id string) error

	CreateRecording(ctx context.Context, r *Recording) error
	FindRecording(ctx context.Context, orgID, id string) (*Recording, error)
	// FindRecordingByID finds a recording in any organization: for ingest,
	// which is authenticated by the recording's own token.
	FindRecordingByID(ctx context.Context, id string) (*Recording, error)
	// UpdateRecording saves every mutable field of r (state, end date, stop
	// reason, byte counts, size, sha256, last error, credential, upload ID).
	UpdateRecording(ctx context.Context, r *Recording) error
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
}
