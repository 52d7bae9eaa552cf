// Package oidc makes recsink its own OpenID Connect identity provider, the
// identity that customers' IAM roles trust for role-based access: it serves
// the discovery document and the JWKS under recsink's public URL, and signs
// short-lived identity tokens (RS256, with go-jose) whose subject names one
// organization, for AssumeRoleWithWebIdentity.
//
// Signing keys live in the database, sealed by the secret box like access
// secrets, so every node signs with the same key and publishes the same set.
// A rotation makes a new current key; the old one signs nothing more but stays
// in the JWKS until every token it signed has expired.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/recsink/recsink"
)

// Defaults of Config.
const (
	// DefaultAudience is the audience AWS STS expects in a web identity token.
	DefaultAudience = "sts.amazonaws.com"
	// DefaultTokenTTL is how long an identity token is valid: it is only
	// presented to STS at once, so minutes are plenty.
	DefaultTokenTTL = 5 * time.Minute
	// DefaultRotateAfter is the age after which the current key is replaced.
	DefaultRotateAfter = 30 * 24 * time.Hour
)

// Algorithm is the JWS algorithm of every token: RS256 is the one every STS
// accepts (AWS, SeaweedFS, MinIO).
const Algorithm = "RS256"

// reloadEvery is how long the keys read from the database are used before
// they are read again, so that a key made by another node is seen and used.
const reloadEvery = 10 * time.Second

// publishSlack is how long a retired key stays published beyond the
// lifetime of the last token it may have signed: covers the reload delay of
// other nodes (a node may sign with a retired key for up to reloadEvery) and
// clock skew between recsink and STS.
const publishSlack = reloadEvery + 5*time.Minute

// keyBits is the RSA key size.
const keyBits = 2048

// WellKnownPath and JWKSPath are the paths, under the issuer URL, of the
// discovery document and of the key set.
const (
	WellKnownPath = "/.well-known/openid-configuration"
	JWKSPath      = "/.well-known/jwks.json"
)

// Sealer seals private keys at rest; *secrets.Box implements it.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Open(ciphertext, associatedData []byte) ([]byte, error)
}

// Config configures a Provider.
type Config struct {
	// Issuer is the identity provider's URL, recsink's public URL: the
	// tokens' iss, and where STS fetches the discovery document.
	Issuer string
	// Audience is every token's aud; DefaultAudience when empty.
	Audience string
	// TokenTTL is how long a token is valid; DefaultTokenTTL when 0.
	TokenTTL time.Duration
	// RotateAfter is the age at which the current key is replaced when a
	// token is signed; DefaultRotateAfter when 0, never when negative.
	RotateAfter time.Duration
	Store       recsink.SigningKeyStore
	Box         Sealer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Provider signs identity tokens and serves the documents STS reads.
type Provider struct {
	cfg Config

	mu       sync.Mutex
	keys     []*key // newest first
	loadedAt time.Time
}

type key struct {
	meta *recsink.SigningKey
	priv *rsa.PrivateKey
}

// New returns a Provider. It reads or creates no key until one is needed.
func New(cfg Config) (*Provider, error) {
	if err := ValidateIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.RotateAfter == 0 {
		cfg.RotateAfter = DefaultRotateAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Store == nil || cfg.Box == nil {
		return nil, errors.New("oidc: Store and Box are required")
	}
	return &Provider{cfg: cfg}, nil
}

// ValidateIssuer checks that issuer can be an OIDC issuer that STS will
// trust: an https URL without query or fragment, or http on a loopback
// address (tests and local trials).
func ValidateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("must be an https:// URL without user, query or fragment, such as https://recsink.example.com")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("must be https: an identity provider on plain http is accepted only on a loopback address, not %s", u.Host)
	}
	return fmt.Errorf("must be an https:// URL, not %s://", u.Scheme)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	h := strings.Trim(host, "[]")
	return h == "::1" || strings.HasPrefix(h, "127.")
}

// Issuer returns the tokens' iss.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Audience returns the tokens' aud.
func (p *Provider) Audience() string { return p.cfg.Audience }

// Subject returns the sub of the tokens recsink signs for an organization:
// what a customer's trust policy pins.
func Subject(orgID string) string { return "org:" + orgID }

// Token returns an identity token for subject, signed with the current key,
// which it creates when there is none or rotates when it is older than
// RotateAfter.
func (p *Provider) Token(ctx context.Context, subject string) (string, error) {
	k, err := p.current(ctx)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.meta.ID, Algorithm: Algorithm}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("oidc: signer: %w", err)
	}
	now := p.cfg.Now()
	claims := jwt.Claims{
		Issuer:    p.cfg.Issuer,
		Subject:   subject,
		Audience:  jwt.Audience{p.cfg.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry:    jwt.NewNumericDate(now.Add(p.cfg.TokenTTL)),
		ID:        recsink.NewID("jti"),
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("oidc: sign token: %w", err)
	}
	return tok, nil
}

// Rotate makes a new current key; the previous one stays published until
// the tokens it signed have expired.
func (p *Provider) Rotate(ctx context.Context) (*recsink.SigningKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, err := p.createLocked(ctx)
	if err != nil {
		return nil, err
	}
	return k.meta, nil
}

// current returns the key to sign with.
func (p *Provider) current(ctx context.Context) (*key, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(ctx, false); err != nil {
		return nil, err
	}
	now := p.cfg.Now()
	if len(p.keys) > 0 && p.keys[0].meta.RetiredAt == nil &&
		(p.cfg.RotateAfter < 0 || now.Sub(p.keys[0].meta.CreatedAt) < p.cfg.RotateAfter) {
		return p.keys[0], nil
	}
	return p.createLocked(ctx)
}

// createLocked makes, seals and stores a new key, and reloads the set.
func (p *Provider) createLocked(ctx context.Context) (*key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("oidc: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("oidc: encode key: %w", err)
	}
	meta := &recsink.SigningKey{ID: recsink.NewID("kid"), Algorithm: Algorithm, CreatedAt: p.cfg.Now().UTC()}
	if meta.PrivateCiphertext, err = p.cfg.Box.Seal(der, meta.AssociatedData()); err != nil {
		return nil, fmt.Errorf("oidc: seal key: %w", err)
	}
	if err := p.cfg.Store.CreateSigningKey(ctx, meta); err != nil {
		return nil, fmt.Errorf("oidc: store key: %w", err)
	}
	// Keys retired so long ago that no token they signed is still valid are
	// no longer published: delete them.
	if err := p.cfg.Store.DeleteSigningKeys(ctx, meta.CreatedAt.Add(-p.cfg.TokenTTL-publishSlack)); err != nil {
		return nil, fmt.Errorf("oidc: delete old keys: %w", err)
	}
	if err := p.loadLocked(ctx, true); err != nil {
		return nil, err
	}
	for _, k := range p.keys {
		if k.meta.ID == meta.ID {
			return k, nil
		}
	}
	return &key{meta: meta, priv: priv}, nil
}

// loadLocked reads the keys from the store when they are older than
// reloadEvery, or always when force.
func (p *Provider) loadLocked(ctx context.Context, force bool) error {
	now := p.cfg.Now()
	if !force && !p.loadedAt.IsZero() && now.Sub(p.loadedAt) < reloadEvery && now.After(p.loadedAt) {
		return nil
	}
	metas, err := p.cfg.Store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("oidc: list keys: %w", err)
	}
	old := make(map[string]*key, len(p.keys))
	for _, k := range p.keys {
		old[k.meta.ID] = k
	}
	keys := make([]*key, 0, len(metas))
	for _, m := range metas {
		if k, ok := old[m.ID]; ok {
			keys = append(keys, &key{meta: m, priv: k.priv})
			continue
		}
		der, err := p.cfg.Box.Open(m.PrivateCiphertext, m.AssociatedData())
		if err != nil {
			return fmt.Errorf("oidc: decrypt key %s: %w", m.ID, err)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("oidc: parse key %s: %w", m.ID, err)
		}
		priv, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("oidc: key %s is not an RSA key", m.ID)
		}
		keys = append(keys, &key{meta: m, priv: priv})
	}
	p.keys, p.loadedAt = keys, now
	return nil
}

// JWKS returns the published keys: the current one, and each retired one
// until every token it may have signed has expired.
func (p *Provider) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadLocked(ctx, false); err != nil {
		return jose.JSONWebKeySet{}, err
	}
	now := p.cfg.Now()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range p.keys {
		if r := k.meta.RetiredAt; r != nil && now.After(r.Add(p.cfg.TokenTTL+publishSlack)) {
			continue
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.meta.ID, Algorithm: Algorithm, Use: "sig"})
	}
	return set, nil
}

// Discovery is the OpenID Provider metadata recsink publishes: the fields
// STS reads, and the ones the specification requires.
type Discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	AuthorizationEndpoint            string   `json:"authorization_endpoint"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                  []string `json:"claims_supported"`
}

// Discovery returns the metadata document.
func (p *Provider) Discovery() Discovery {
	return Discovery{
		Issuer:  p.cfg.Issuer,
		JWKSURI: p.cfg.Issuer + JWKSPath,
		// recsink authorizes no end user: the field is required by the
		// specification, and no client is ever sent there.
		AuthorizationEndpoint:            p.cfg.Issuer + "/oidc/authorize",
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: []string{Algorithm},
		ClaimsSupported:                  []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti"},
	}
}

// Paths returns the request paths the Handler answers, under the issuer's
// own path (for a public URL such as https://example.com/recsink).
func (p *Provider) Paths() (wellKnown, jwks string) {
	base := ""
	if u, err := url.Parse(p.cfg.Issuer); err == nil {
		base = strings.TrimRight(u.Path, "/")
	}
	return base + WellKnownPath, base + JWKSPath
}

// Handler serves the discovery document and the JWKS at Paths. Both are
// public, as STS fetches them without credentials.
func (p *Provider) Handler() http.Handler {
	wellKnown, jwksPath := p.Paths()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, `{"error":"method not allowed","code":"invalid"}`, http.StatusMethodNotAllowed)
			return
		}
		var body any
		switch r.URL.Path {
		case wellKnown:
			body = p.Discovery()
		case jwksPath:
			set, err := p.JWKS(r.Context())
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"error":"the signing keys are unavailable; try again","code":"unavailable"}` + "\n"))
				return
			}
			body = set
		default:
			http.NotFound(w, r)
			return
		}
		b, err := json.Marshal(body)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// Short: a rotated key must reach STS caches quickly.
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(append(b, '\n'))
	})
}
