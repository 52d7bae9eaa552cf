package recsink

import (
	"context"
	"time"
)

// ScopeOrganization is the scope of an organization's default destination;
// any other scope is a meeting ID (a room's override).
const ScopeOrganization = "organization"

// Credential states.
const (
	CredentialCurrent  = "current"  // used by recordings that start now
	CredentialDraining = "draining" // replaced, still held by running recordings
	CredentialDrained  = "drained"  // replaced and held by none: safe to delete
)

// Credential is one generation of a scope's storage settings: a destination
// and the access key used to reach it. Each save makes a new generation; a
// recording holds the generation current when it started for its whole life.
type Credential struct {
	ID          string      `json:"id"`
	OrgID       string      `json:"-"`
	Scope       string      `json:"scope"` // ScopeOrganization or a meeting ID
	Destination Destination `json:"destination"`
	AccessKeyID string      `json:"accessKeyId"`
	// SecretCiphertext is the access secret sealed by the secret box, bound to
	// this record's ID, organization and key ID. Never the plain secret.
	SecretCiphertext []byte    `json:"-"`
	CreatedAt        time.Time `json:"createdAt"`
	// ReplacedAt is when a newer generation was saved for the scope, or the
	// scope's settings were deleted. Nil for the current generation.
	ReplacedAt *time.Time `json:"replacedAt,omitempty"`
}

// CredentialUsage is a generation with the recordings that hold it: the
// rotation view.
type CredentialUsage struct {
	Credential
	State            string   `json:"state"`
	ActiveRecordings []string `json:"activeRecordings"`
	// SafeToDeleteAfter is the latest moment a holding recording can still
	// run, on the database's clock; nil once none holds the key, and nil
	// while a blocked or stopping recording holds it, as no time can be
	// promised then (SafeToDeleteReason says which).
	SafeToDeleteAfter *time.Time `json:"safeToDeleteAfter"`
	// SafeToDeleteReason says in plain words why the key is not yet safe to
	// delete; empty when no recording holds it.
	SafeToDeleteReason string `json:"safeToDeleteReason,omitempty"`
	// Health is what the key health watch last found.
	Health CredentialHealth `json:"health"`
}

// AssociatedData returns the data that a credential's ciphertext is bound
// to, so that a secret copied onto another row does not decrypt.
func (c *Credential) AssociatedData() []byte {
	return []byte("recsink credential v1\x00" + c.OrgID + "\x00" + c.ID + "\x00" + c.AccessKeyID)
}

// Credential health states, as the key health watch last found them.
const (
	CredentialHealthOK      = "ok"
	CredentialHealthFailing = "failing"
)

// CredentialHealth is what the key health watch last found of a saved key
// or role that recordings use or will use: it is re-checked on a schedule,
// so that a key deleted or stripped of a permission is known before the
// next meeting fails.
type CredentialHealth struct {
	State string `json:"state"` // CredentialHealthOK or CredentialHealthFailing
	// Since is when the check started failing, on the database's clock.
	Since *time.Time `json:"since,omitempty"`
	// Check is the step that failed ("HeadBucket", "PutObject", ...), Code
	// S3's error code, and Reason the plain explanation.
	Check     string     `json:"check,omitempty"`
	Code      string     `json:"code,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	CheckedAt *time.Time `json:"checkedAt,omitempty"` // nil until first checked
}

// CredentialHealthStore keeps the key health watch's state in the database,
// so that it survives restarts and reads the same from every node.
type CredentialHealthStore interface {
	// ListWatchedCredentials returns, across organizations, every
	// credential that is current or held by an unfinished recording.
	ListWatchedCredentials(ctx context.Context) ([]*Credential, error)
	// ClaimCredentialCheck sets the credential's last check time to now
	// where it was never checked or last checked before before, and reports
	// whether it did: one node checks each credential per period.
	ClaimCredentialCheck(ctx context.Context, id string, now, before time.Time) (bool, error)
	// SetCredentialHealth records a check's outcome at now: h.State failing
	// starts a failing spell (Since = now) unless one is under way, in which
	// case it keeps Since and records the latest failed check, code and
	// reason (the cause may change within a spell); ok ends it. It reports
	// whether the state changed, so that exactly one node reports each
	// change.
	SetCredentialHealth(ctx context.Context, id string, now time.Time, h CredentialHealth) (bool, error)
	// ListCredentialHealth returns the health of the organization's
	// credentials by ID.
	ListCredentialHealth(ctx context.Context, orgID string) (map[string]CredentialHealth, error)
	// CountFailingCredentials counts watched credentials in a failing spell.
	CountFailingCredentials(ctx context.Context) (int, error)
}
