package recsink

import (
	"context"
	"time"
)

// SigningKey is one of the keys with which recsink, as its own OpenID
// Connect identity provider, signs the identity tokens that customers' IAM
// roles trust. The private key is stored only sealed by the secret box,
// bound to the key's ID.
type SigningKey struct {
	ID        string // the JWK "kid"
	Algorithm string // "RS256"
	// PrivateCiphertext is the PKCS #8 private key sealed by the secret box
	// with AssociatedData.
	PrivateCiphertext []byte
	CreatedAt         time.Time
	// RetiredAt is when a newer key replaced it: it signs nothing after, and
	// stays published until every token it signed has expired. Nil for the
	// current key.
	RetiredAt *time.Time
}

// AssociatedData returns the data the private key's ciphertext is bound to.
func (k *SigningKey) AssociatedData() []byte {
	return []byte("recsink oidc signing key v1\x00" + k.ID + "\x00" + k.Algorithm)
}

// SigningKeyStore keeps the identity provider's signing keys, shared by every
// node. Implemented by the sqlite and postgres stores.
type SigningKeyStore interface {
	// ListSigningKeys returns every stored key, newest first.
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// CreateSigningKey inserts k as the current key and, in the same
	// transaction, retires the previous current key at k.CreatedAt.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// DeleteSigningKeys deletes the keys retired before before.
	DeleteSigningKeys(ctx context.Context, before time.Time) error
}
