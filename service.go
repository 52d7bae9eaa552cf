package recsink

import (
	"context"
	"io"
	"time"
)

// OrganizationService manages organizations and their REST API keys.
type OrganizationService interface {
	// CreateOrganization creates an organization and returns its new API key,
	// which is stored only as a hash and cannot be shown again.
	CreateOrganization(ctx context.Context, name string) (*Organization, string, error)
	// Authenticate returns the organization that owns apiKey, or EUNAUTHORIZED.
	Authenticate(ctx context.Context, apiKey string) (*Organization, error)
}

// StorageService manages the storage settings (destination and access key)
// of an organization (scope ScopeOrganization) and of its rooms (scope = the
// meeting ID).
type StorageService interface {
	// SaveStorage checks dest and key against the real bucket and saves them
	// as the scope's new current generation only when every check passes;
	// otherwise it returns a *CheckError with the report.
	SaveStorage(ctx context.Context, orgID, scope string, dest Destination, key AccessKey) (*Credential, *CheckReport, error)
	// CheckStorage runs the checks on dest and key, or on the scope's saved
	// settings when dest is nil, and saves nothing.
	CheckStorage(ctx context.Context, orgID, scope string, dest *Destination, key *AccessKey) (*CheckReport, error)
	// FindStorage returns the scope's current generation, or ENOTFOUND.
	FindStorage(ctx context.Context, orgID, scope string) (*Credential, error)
	// DeleteStorage removes the scope's settings; running recordings keep theirs.
	DeleteStorage(ctx context.Context, orgID, scope string) error
	// ListCredentials returns every generation of the organization and its
	// rooms with the recordings that hold each.
	ListCredentials(ctx context.Context, orgID string) ([]*CredentialUsage, error)
}

// MeetingService manages meeting rooms.
type MeetingService interface {
	// CreateMeeting creates a room; when dest and key are given they are
	// checked and saved as the room's override first.
	CreateMeeting(ctx context.Context, orgID string, m *Meeting, dest *Destination, key *AccessKey) (*Meeting, error)
	FindMeeting(ctx context.Context, orgID, id string) (*Meeting, error)
	ListMeetings(ctx context.Context, orgID, cursor string, limit int) ([]*Meeting, string, error)
	DeleteMeeting(ctx context.Context, orgID, id string) error
}

// RecordingService starts, stops and reports recordings.
type RecordingService interface {
	// StartRecording resolves the meeting's destination, binds its current
	// key, creates the multipart upload and returns the recording with its
	// ingest token (shown once).
	StartRecording(ctx context.Context, orgID, meetingID string) (*Recording, string, error)
	// StopRecording ends the recording; it returns once the state is
	// "stopping" or later. The object completes in the background.
	StopRecording(ctx context.Context, orgID, id string) (*Recording, error)
	FindRecording(ctx context.Context, orgID, id string) (*Recording, []RecordingEvent, error)
	ListRecordings(ctx context.Context, orgID string, f RecordingFilter) ([]*Recording, string, error)
	// DeleteRecording deletes the object through the recording's own
	// destination and key. Idempotent.
	DeleteRecording(ctx context.Context, orgID, id string) error
	// AccessLink returns a presigned GET of an uploaded recording's object,
	// valid for validFor, signed with a key that can still read it: the
	// recording's own, else the current key of its scope, then of the
	// organization, on the same bucket. EDESTINATION when none can.
	AccessLink(ctx context.Context, orgID, id string, validFor time.Duration) (*AccessLink, error)
	// BulkDeleteRecordings takes up to MaxBulkDelete recordings to delete and
	// returns at once; each object is deleted in the background, and the
	// outcome shows on the recording (state deleted, or an event that says
	// why not). IDs that do not exist, or are already deleted, are skipped:
	// a repeated call changes nothing.
	BulkDeleteRecordings(ctx context.Context, orgID string, ids []string) error
}

// MaxBulkDelete is the most recordings one bulk delete takes.
const MaxBulkDelete = 100

// AccessLink is a time-limited URL to download a recording's object.
type AccessLink struct {
	URL     string
	Expires time.Time
	// AccessKeyID is the key that signed the URL.
	AccessKeyID string
}

// Bounds of an access link's validity, as Whereby's validForSeconds.
const (
	DefaultAccessLinkValidity = time.Hour
	MaxAccessLinkValidity     = 12 * time.Hour
)

// IngestService takes media from recorders, authenticated by a recording's
// ingest token.
type IngestService interface {
	// Offset returns the number of bytes durably received.
	Offset(ctx context.Context, recordingID, token string) (int64, error)
	// Append appends body to the recording at offset (or at the end when
	// offset < 0) and returns the new durable offset. Every byte of body is
	// synced to disk before it returns nil. A wrong offset is ECONFLICT; a
	// full spool is EUNAVAILABLE with RetryAfter.
	Append(ctx context.Context, recordingID, token string, offset int64, body io.Reader) (int64, error)
}

// An InterruptibleBody is an ingest body whose blocked Read another
// goroutine can end, as a deadline ends a read of a network connection.
// Append reads such a body directly and interrupts it when a newer request
// or a stop takes the recording over; any other body is read through a
// goroutine and a buffer per Read, which a blocked Read cannot hold up.
type InterruptibleBody interface {
	io.Reader
	// CanInterrupt reports whether Interrupt works for this body.
	CanInterrupt() bool
	// Interrupt ends a Read in progress, and every later Read fails at once.
	Interrupt()
}

// CheckError is returned when a destination fails its checks on save. It is
// the customer's error (EDESTINATION) and carries the report to show.
type CheckError struct {
	Report *CheckReport
}

// Error implements error.
func (e *CheckError) Error() string {
	for _, c := range e.Report.Checks {
		if !c.OK && !c.Skipped && c.Permission == "" {
			return "storage check failed: " + c.Name + ": " + c.Message
		}
		if !c.OK && !c.Skipped {
			return "storage check failed: " + c.Name + " (" + c.Permission + "): " + c.Message
		}
	}
	return "storage check failed"
}
