// Package service implements recsink's domain services over a store, a secret
// box, the customer's S3 storage and the local spool. It holds no technology
// of its own: cmd/recsink wires the adapters into it.
package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/spool"
)

// SecretBox seals access secrets at rest (implemented by package secrets).
type SecretBox interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Open(ciphertext, associatedData []byte) ([]byte, error)
}

// Config is what the service needs. Zero durations and sizes take defaults.
type Config struct {
	Store   recsink.Store
	Storage recsink.Storage
	Box     SecretBox
	Spool   *spool.Spool
	Logger  *slog.Logger

	// MaxDuration caps a recording's length; it stops by itself then (24 h).
	MaxDuration time.Duration
	// MaxIngestRate is the highest ingest rate recsink accepts, in bytes per
	// second (50 Mbit/s); with MaxDuration it sizes the parts.
	MaxIngestRate int64
	// UploadConcurrency bounds part uploads in flight across all recordings;
	// organizations share the slots fairly (see Slots).
	UploadConcurrency int
	// PartConcurrency bounds part uploads in flight for one recording.
	PartConcurrency int
	// UploadSpread bounds the random wait of a part completed while its
	// recording is live, so that recordings started together do not upload
	// together (see spreader); DefaultUploadSpread when 0, none when
	// negative.
	UploadSpread time.Duration
	// RetryMax caps the backoff between upload retries.
	RetryMax time.Duration

	// Notifier sends webhook events; Observer counts for metrics. Both optional.
	Notifier Notifier
	Observer Observer

	// NodeID names this node; NodeURL is where other nodes reach it, to send
	// on ingest and stops of the recordings it runs.
	NodeID, NodeURL string
	// LeaseTTL is how long a node's claim on its recordings lasts without
	// renewal; after it, another node may take a recording over (15 s).
	LeaseTTL time.Duration
	// NodeLossTimeout is how long a recording whose unsent bytes are on a
	// node that is gone waits for that node before it is failed (1 h).
	NodeLossTimeout time.Duration
	// CredentialCheckInterval is how often the key health watch re-checks
	// each saved key and role in use (1 h); negative turns it off.
	CredentialCheckInterval time.Duration
}

// Service implements the recsink service interfaces.
type Service struct {
	cfg    Config
	store  recsink.Store
	log    *slog.Logger
	slots  *Slots // upload slots, shared fairly by organizations
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	recorders map[string]*recorder
	// pending holds the recordings this node is taking on and does not run
	// yet: a start before its recorder runs, a takeover from a dead node
	// (its recorder once claimed, renewed with the rest), a stray being
	// settled. nil while there is no recorder.
	pending  map[string]*recorder
	strays   map[string]int // renewed here, run nowhere: renewals seen in a row
	settling bool           // a stray is being settled
	wg       sync.WaitGroup
	started  sync.Once
}

var (
	_ recsink.OrganizationService = (*Service)(nil)
	_ recsink.StorageService      = (*Service)(nil)
	_ recsink.MeetingService      = (*Service)(nil)
	_ recsink.RecordingService    = (*Service)(nil)
	_ recsink.IngestService       = (*Service)(nil)
)

// New returns a service; call Open to resume unfinished recordings.
func New(cfg Config) *Service {
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = 24 * time.Hour
	}
	if cfg.MaxIngestRate <= 0 {
		cfg.MaxIngestRate = 50_000_000 / 8
	}
	if cfg.UploadConcurrency <= 0 {
		cfg.UploadConcurrency = 16
	}
	if cfg.PartConcurrency <= 0 {
		cfg.PartConcurrency = 4
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.UploadSpread == 0 {
		cfg.UploadSpread = DefaultUploadSpread
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 15 * time.Second
	}
	if cfg.NodeLossTimeout <= 0 {
		cfg.NodeLossTimeout = time.Hour
	}
	if cfg.CredentialCheckInterval == 0 {
		cfg.CredentialCheckInterval = time.Hour
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "local"
	}
	if cfg.Notifier == nil {
		cfg.Notifier = nopNotifier{}
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg:       cfg,
		store:     cfg.Store,
		log:       cfg.Logger,
		slots:     NewSlots(cfg.UploadConcurrency),
		ctx:       ctx,
		cancel:    cancel,
		recorders: map[string]*recorder{},
		pending:   map[string]*recorder{},
		strays:    map[string]int{},
	}
}

// startBackground starts, once, the loops that run beside the recorders:
// lease renewals, takeovers, and the watch on credentials saved by any node.
func (s *Service) startBackground() {
	s.started.Do(func() {
		for _, loop := range []func(context.Context){s.renewals, s.takeoverLoop, s.watchCredentials, s.healthWatch} {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				loop(s.ctx)
			}()
		}
	})
}

// Close stops every recording's uploader. Spooled bytes stay on disk and
// are picked up again by the next Open.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait() // each recorder closes its spool file as it ends
	return nil
}

// CreateOrganization implements recsink.OrganizationService.
func (s *Service) CreateOrganization(ctx context.Context, name string) (*recsink.Organization, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return nil, "", recsink.FieldErrorf("name", "organization name must be 1 to 100 characters")
	}
	key, hash := recsink.NewAPIKey()
	org := &recsink.Organization{ID: recsink.NewID("org"), Name: name, CreatedAt: recsink.Now()}
	if err := s.store.CreateOrganization(ctx, org, hash); err != nil {
		if recsink.ErrorCode(err) == recsink.ECONFLICT {
			return nil, "", recsink.Errorf(recsink.ECONFLICT, "an organization named %q already exists", name)
		}
		return nil, "", err
	}
	return org, key, nil
}

// Authenticate implements recsink.OrganizationService.
func (s *Service) Authenticate(ctx context.Context, apiKey string) (*recsink.Organization, error) {
	if apiKey == "" {
		return nil, recsink.Errorf(recsink.EUNAUTHORIZED, "an API key is required: Authorization: Bearer <key>")
	}
	org, err := s.store.FindOrganizationByAPIKeyHash(ctx, recsink.HashToken(apiKey))
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, recsink.Errorf(recsink.EUNAUTHORIZED, "the API key is not valid")
	}
	return org, err
}

// accessKey decrypts a credential's secret.
func (s *Service) accessKey(c *recsink.Credential) (recsink.AccessKey, error) {
	secret, err := s.cfg.Box.Open(c.SecretCiphertext, c.AssociatedData())
	if err != nil {
		return recsink.AccessKey{}, fmt.Errorf("decrypt secret of credential %s: %w", c.ID, err)
	}
	return roleSubject(c.OrgID, recsink.AccessKey{ID: c.AccessKeyID, Secret: string(secret)}), nil
}

// recordingClient returns a client for a recording's destination with the
// key of the credential it holds.
func (s *Service) recordingClient(ctx context.Context, rec *recsink.Recording) (*recsink.Credential, recsink.StorageClient, error) {
	cred, err := s.store.FindCredential(ctx, rec.OrgID, rec.CredentialID)
	if err != nil {
		return nil, nil, err
	}
	key, err := s.accessKey(cred)
	if err != nil {
		return nil, nil, err
	}
	client, err := s.cfg.Storage.Client(ctx, rec.Destination, key)
	if err != nil {
		return nil, nil, err
	}
	return cred, client, nil
}

// check runs the storage checks and fills in the region found.
func (s *Service) check(ctx context.Context, orgID string, dest *recsink.Destination, key recsink.AccessKey) (*recsink.CheckReport, error) {
	key = roleSubject(orgID, key)
	if err := dest.Validate(); err != nil {
		return nil, err
	}
	if err := recsink.ValidateAccessKey(key); err != nil {
		return nil, err
	}
	report, err := s.cfg.Storage.Check(ctx, *dest, key)
	if err != nil {
		return nil, err
	}
	if dest.Region == "" {
		dest.Region = report.Region
	}
	return report, nil
}

// scopeExists checks that a meeting scope belongs to the organization.
func (s *Service) scopeExists(ctx context.Context, orgID, scope string) error {
	if scope == recsink.ScopeOrganization {
		return nil
	}
	_, err := s.store.FindMeeting(ctx, orgID, scope)
	return err
}

// SaveStorage implements recsink.StorageService.
func (s *Service) SaveStorage(ctx context.Context, orgID, scope string, dest recsink.Destination, key recsink.AccessKey) (*recsink.Credential, *recsink.CheckReport, error) {
	if err := s.scopeExists(ctx, orgID, scope); err != nil {
		return nil, nil, err
	}
	report, err := s.check(ctx, orgID, &dest, key)
	if err != nil {
		return nil, nil, err
	}
	if !report.OK {
		return nil, report, &recsink.CheckError{Report: report}
	}
	// Whether the new key can take over the scope's running recordings:
	// a warning in the answer, never a refusal.
	if report.Parity, err = s.checkParity(ctx, orgID, scope, dest, key); err != nil {
		if ctx.Err() != nil {
			return nil, nil, err
		}
		s.log.Warn("key parity check", "org", orgID, "scope", scope, "err", err)
	}
	c := &recsink.Credential{
		ID:          recsink.NewID("cred"),
		OrgID:       orgID,
		Scope:       scope,
		Destination: dest,
		AccessKeyID: key.ID,
	}
	// Drain times are on the database's clock, like leases.
	if c.CreatedAt, err = s.store.Now(ctx); err != nil {
		return nil, nil, err
	}
	if c.SecretCiphertext, err = s.cfg.Box.Seal([]byte(key.Secret), c.AssociatedData()); err != nil {
		return nil, nil, fmt.Errorf("seal secret: %w", err)
	}
	prev, err := s.store.CurrentCredential(ctx, orgID, scope)
	if err != nil && recsink.ErrorCode(err) != recsink.ENOTFOUND {
		return nil, nil, err
	}
	if err := s.store.CreateCredential(ctx, c); err != nil {
		return nil, nil, err
	}
	if prev != nil {
		s.checkDrained(orgID, prev.ID)
	}
	s.log.Info("storage saved", "org", orgID, "scope", scope, "credential", c.ID, "accessKeyId", c.AccessKeyID, "bucket", dest.Bucket)
	s.credentialsChanged(orgID)
	return c, report, nil
}

// CheckStorage implements recsink.StorageService.
func (s *Service) CheckStorage(ctx context.Context, orgID, scope string, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.CheckReport, error) {
	if dest == nil || key == nil {
		c, err := s.FindStorage(ctx, orgID, scope)
		if err != nil {
			return nil, err
		}
		k, err := s.accessKey(c)
		if err != nil {
			return nil, err
		}
		d := c.Destination
		return s.check(ctx, orgID, &d, k)
	}
	d := *dest
	return s.check(ctx, orgID, &d, *key)
}

// FindStorage implements recsink.StorageService.
func (s *Service) FindStorage(ctx context.Context, orgID, scope string) (*recsink.Credential, error) {
	if err := s.scopeExists(ctx, orgID, scope); err != nil {
		return nil, err
	}
	c, err := s.store.CurrentCredential(ctx, orgID, scope)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		if scope == recsink.ScopeOrganization {
			return nil, recsink.Errorf(recsink.ENOTFOUND, "the organization has no storage destination; set one with PUT /v1/storage")
		}
		return nil, recsink.Errorf(recsink.ENOTFOUND, "the meeting has no destination of its own; it uses the organization's")
	}
	return c, err
}

// DeleteStorage implements recsink.StorageService.
func (s *Service) DeleteStorage(ctx context.Context, orgID, scope string) error {
	if err := s.scopeExists(ctx, orgID, scope); err != nil {
		return err
	}
	prev, err := s.store.CurrentCredential(ctx, orgID, scope)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil // already gone: deleting is idempotent
	} else if err != nil {
		return err
	}
	now, err := s.store.Now(ctx)
	if err != nil {
		return err
	}
	err = s.store.ReplaceCurrentCredential(ctx, orgID, scope, now)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	s.checkDrained(orgID, prev.ID)
	return nil
}

// ListCredentials implements recsink.StorageService. A key is safe to
// delete once no recording holds it. While recordings hold it, the view
// says until when at the latest (a running recording's maximum duration, on
// the database's clock), or that no time can be promised (a blocked or
// stopping recording may need the key for as long as its upload takes).
func (s *Service) ListCredentials(ctx context.Context, orgID string) ([]*recsink.CredentialUsage, error) {
	creds, err := s.store.ListCredentials(ctx, orgID)
	if err != nil {
		return nil, err
	}
	holding, err := s.store.ListHoldingRecordings(ctx, orgID)
	if err != nil {
		return nil, err
	}
	health, err := s.store.ListCredentialHealth(ctx, orgID)
	if err != nil {
		return nil, err
	}
	now, err := s.store.Now(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*recsink.CredentialUsage, 0, len(creds))
	for _, c := range creds {
		u := &recsink.CredentialUsage{Credential: *c, ActiveRecordings: []string{}, Health: health[c.ID]}
		if u.Health.State == "" {
			u.Health.State = recsink.CredentialHealthOK
		}
		var open *recsink.Recording // a holder with no end that can be promised
		var last *recsink.Recording // the running holder that may run longest
		for _, r := range holding {
			if r.CredentialID != c.ID {
				continue
			}
			u.ActiveRecordings = append(u.ActiveRecordings, r.ID)
			end := r.StartDate.Add(s.cfg.MaxDuration)
			switch {
			case r.State != recsink.RecordingRecording || !end.After(now):
				if open == nil {
					open = r
				}
			case last == nil || end.After(last.StartDate.Add(s.cfg.MaxDuration)):
				last = r
			}
		}
		switch {
		case open != nil && open.State == recsink.RecordingRecording:
			u.SafeToDeleteReason = fmt.Sprintf("recording %s reached its maximum duration and is uploading its last part with this key", open.ID)
		case open != nil:
			u.SafeToDeleteReason = fmt.Sprintf("recording %s is %s and may need this key to finish its upload", open.ID, open.State)
		case last != nil:
			end := last.StartDate.Add(s.cfg.MaxDuration)
			u.SafeToDeleteAfter = &end
			u.SafeToDeleteReason = fmt.Sprintf("recording %s may run until %s (its maximum duration) and needs this key until its upload is complete", last.ID, end.Format(time.RFC3339))
		}
		switch {
		case c.ReplacedAt == nil:
			u.State = recsink.CredentialCurrent
		case len(u.ActiveRecordings) > 0:
			u.State = recsink.CredentialDraining
		default:
			u.State = recsink.CredentialDrained
		}
		out = append(out, u)
	}
	return out, nil
}

// CreateMeeting implements recsink.MeetingService.
func (s *Service) CreateMeeting(ctx context.Context, orgID string, m *recsink.Meeting, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.Meeting, error) {
	now := recsink.Now()
	if !m.EndDate.After(now) {
		return nil, recsink.FieldErrorf("endDate", "endDate must be in the future")
	}
	if m.RoomName == "" {
		return nil, recsink.FieldErrorf("roomNamePrefix", "a room name is required")
	}
	m.ID = recsink.NewID("mtg")
	m.OrgID = orgID
	m.StartDate = now
	m.CreatedAt = now
	if m.RecordingType == "" {
		m.RecordingType = recsink.RecordingTypeCloud
	}
	var report *recsink.CheckReport
	if dest != nil && key != nil {
		// Check before creating anything: a room whose destination does not
		// work is not created at all.
		var err error
		if report, err = s.check(ctx, orgID, dest, *key); err != nil {
			return nil, err
		}
		if !report.OK {
			return nil, &recsink.CheckError{Report: report}
		}
	}
	if err := s.store.CreateMeeting(ctx, m); err != nil {
		return nil, err
	}
	if dest != nil && key != nil {
		if _, _, err := s.SaveStorage(ctx, orgID, m.ID, *dest, *key); err != nil {
			_ = s.store.DeleteMeeting(ctx, orgID, m.ID)
			return nil, err
		}
	}
	return m, nil
}

// FindMeeting implements recsink.MeetingService.
func (s *Service) FindMeeting(ctx context.Context, orgID, id string) (*recsink.Meeting, error) {
	return s.store.FindMeeting(ctx, orgID, id)
}

// ListMeetings implements recsink.MeetingService.
func (s *Service) ListMeetings(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.Meeting, string, error) {
	return s.store.ListMeetings(ctx, orgID, cursor, limit)
}

// DeleteMeeting implements recsink.MeetingService. Recordings of the room
// that are running go on with the key they hold; the room's key drains like
// a replaced one, and credential.drained says when no recording holds it.
func (s *Service) DeleteMeeting(ctx context.Context, orgID, id string) error {
	if _, err := s.store.FindMeeting(ctx, orgID, id); err != nil {
		return err
	}
	prev, err := s.store.CurrentCredential(ctx, orgID, id)
	if err != nil && recsink.ErrorCode(err) != recsink.ENOTFOUND {
		return err
	}
	if prev != nil {
		now, err := s.store.Now(ctx)
		if err != nil {
			return err
		}
		if err := s.store.ReplaceCurrentCredential(ctx, orgID, id, now); err != nil && recsink.ErrorCode(err) != recsink.ENOTFOUND {
			return err
		}
	}
	if err := s.store.DeleteMeeting(ctx, orgID, id); err != nil {
		return err
	}
	if prev != nil {
		s.checkDrained(orgID, prev.ID)
	}
	return nil
}

// dbNow returns the database's clock, for the times other nodes read (a
// recording's end beside its start). Should the database not answer, this
// node's clock stands in: the write that follows fails anyway then.
func (s *Service) dbNow(ctx context.Context) time.Time {
	now, err := s.store.Now(ctx)
	if err != nil {
		return recsink.Now()
	}
	return now
}

// tokenMatches compares an ingest token with the stored hash in constant time.
func tokenMatches(token string, hash []byte) bool {
	return token != "" && subtle.ConstantTimeCompare(recsink.HashToken(token), hash) == 1
}

// isCanceled reports whether err is a cancellation, which is neither retried
// nor logged as an error.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled)
}

// ActiveRecordings counts running recordings by state, for metrics.
func (s *Service) ActiveRecordings() map[string]int {
	s.mu.Lock()
	rs := make([]*recorder, 0, len(s.recorders))
	for _, r := range s.recorders {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	out := map[string]int{}
	for _, r := range rs {
		r.mu.Lock()
		out[r.rec.State]++
		r.mu.Unlock()
	}
	return out
}

// SpoolBytes returns the spool's bytes in use and its limit, for metrics.
func (s *Service) SpoolBytes() (used, limit int64) {
	return s.cfg.Spool.Used(), s.cfg.Spool.Limit()
}

// DrainingCredentials counts replaced keys that running recordings still
// hold, for metrics.
func (s *Service) DrainingCredentials(ctx context.Context) (int, error) {
	s.mu.Lock()
	held := map[string]string{} // credential ID → org ID
	for _, r := range s.recorders {
		r.mu.Lock()
		held[r.rec.CredentialID] = r.rec.OrgID
		r.mu.Unlock()
	}
	s.mu.Unlock()
	n := 0
	for id, org := range held {
		c, err := s.store.FindCredential(ctx, org, id)
		if err != nil {
			return 0, err
		}
		if c.ReplacedAt != nil {
			n++
		}
	}
	return n, nil
}
