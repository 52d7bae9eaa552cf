package recsink

import (
	"context"
	"time"
)

// AdminUser is a person who signs in to the admin page of one organization.
type AdminUser struct {
	ID           string    `json:"id"`
	OrgID        string    `json:"-"`
	Email        string    `json:"email"` // stored lowercased; unique across organizations
	PasswordHash []byte    `json:"-"`     // bcrypt
	CreatedAt    time.Time `json:"createdAt"`
}

// AdminSession is a signed-in admin's session. Only the hash of its cookie
// token is stored.
type AdminSession struct {
	TokenHash []byte
	UserID    string
	OrgID     string
	CSRFToken string // per-session token every form must carry
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AdminStore keeps admin users and sessions. Part of Store.
type AdminStore interface {
	// CreateAdminUser inserts u; a taken email is ECONFLICT.
	CreateAdminUser(ctx context.Context, u *AdminUser) error
	FindAdminUserByEmail(ctx context.Context, email string) (*AdminUser, error)
	CreateAdminSession(ctx context.Context, s *AdminSession) error
	// FindAdminSession returns the session with the token hash, or
	// ENOTFOUND (also when it has expired).
	FindAdminSession(ctx context.Context, tokenHash []byte, now time.Time) (*AdminSession, error)
	DeleteAdminSession(ctx context.Context, tokenHash []byte) error
}

// WebhookService manages an organization's webhook endpoint and shows its
// deliveries. Implemented by package webhook.
type WebhookService interface {
	// SetEndpoint sets the endpoint and returns its new signing secret, once.
	SetEndpoint(ctx context.Context, orgID, url string, events []string) (string, error)
	Endpoint(ctx context.Context, orgID string) (*WebhookEndpoint, error)
	DeleteEndpoint(ctx context.Context, orgID string) error
	// RotateSecret issues a new secret; the old one also signs for a grace period.
	RotateSecret(ctx context.Context, orgID string) (string, error)
	Deliveries(ctx context.Context, orgID, cursor string, limit int) ([]*WebhookDelivery, string, error)
}
