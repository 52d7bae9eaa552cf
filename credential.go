package recsink

import "time"

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
}

// AssociatedData returns the data that a credential's ciphertext is bound
// to, so that a secret copied onto another row does not decrypt.
func (c *Credential) AssociatedData() []byte {
	return []byte("recsink credential v1\x00" + c.OrgID + "\x00" + c.ID + "\x00" + c.AccessKeyID)
}
