package recsink

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Organization is a customer of the video platform: it owns meetings,
// storage settings and recordings, and one REST API key.
type Organization struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// NewAPIKey returns a new random REST API key and the hash that is stored in
// its place. The key is shown once.
func NewAPIKey() (key string, hash []byte) {
	key = "rsk_" + RandomToken(32)
	return key, HashToken(key)
}

// HashToken returns the SHA-256 of a high-entropy token (API keys, ingest
// tokens). A fast hash is right here: the tokens are random, not passwords.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// RandomToken returns n random bytes in URL-safe base64.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewID returns a new random identifier with a type prefix, such as "rec_...".
func NewID(prefix string) string {
	return prefix + "_" + RandomToken(12)
}
