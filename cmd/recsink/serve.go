package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/admin"
	"github.com/recsink/recsink/http"
	"github.com/recsink/recsink/internal/redact"
	"github.com/recsink/recsink/metrics"
	"github.com/recsink/recsink/oidc"
	"github.com/recsink/recsink/postgres"
	"github.com/recsink/recsink/rtmp"
	"github.com/recsink/recsink/s3"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/srt"
	"github.com/recsink/recsink/webhook"
	"github.com/recsink/recsink/whip"
)

// Main is the running server: the one place that wires the adapters
// together. Tests start it on a temp dir and port 0.
type Main struct {
	Config Config
	Stderr io.Writer
	Logger *slog.Logger

	Store    recsink.Store
	Service  *service.Service
	Webhooks *webhook.Dispatcher
	Metrics  *metrics.Metrics
	Spool    *spool.Spool
	// OIDC is recsink's own identity provider, whose tokens customers'
	// roles trust.
	OIDC *oidc.Provider
	// Live runs live publishes and the rooms' stream keys; RTMP and SRT
	// are the listeners of --rtmp-addr and --srt-addr, WHIP the WHIP
	// endpoint with its media port --whip-udp-addr (live.go).
	Live   *service.Live
	RTMP   *rtmp.Server
	SRT    *srt.Server
	WHIP   *whip.Server
	server *nethttp.Server
	ln     net.Listener
	// The /metrics listener, when Config.MetricsAddr is set.
	metricsServer *nethttp.Server
	metricsLn     net.Listener
	// restoreClock undoes Config.ClockOffset at Close.
	restoreClock func()
	// stopCleaner ends the retention cleaner; cleanerDone is closed when
	// it has.
	stopCleaner func()
	cleanerDone chan struct{}
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Stderr: os.Stderr}
}

// Run opens the store, the spool and the secret box, resumes unfinished
// recordings and starts serving. It returns once the server listens.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
	}
	// Every log line passes the redactor: an error that quotes a signed
	// request or a DSN does not put its secret in the log.
	m.Logger = redact.Logger(m.Logger)
	if cfg.ClockOffset != 0 {
		m.Logger.Warn("--clock-offset shifts this node's clock: for tests only", "offset", cfg.ClockOffset)
		// recsink.Now is the process's clock (a var func in the root
		// package): shifting it is process-wide, so in-process tests that
		// use this run one node at a time. Close puts it back.
		prev := recsink.Now
		recsink.Now = func() time.Time { return prev().Add(cfg.ClockOffset) }
		m.restoreClock = func() { recsink.Now = prev }
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	masterKey, err := secrets.LoadMasterKey(m.Logger, os.Getenv("RECSINK_MASTER_KEY"), cfg.MasterKeyFile, cfg.Data)
	if err != nil {
		return err
	}
	box, err := secrets.NewBox(masterKey)
	if err != nil {
		return err
	}
	if m.Store, err = openStore(ctx, cfg); err != nil {
		return err
	}
	sp, err := spool.OpenConfig(spool.Config{Dir: filepath.Join(cfg.Data, "spool"), Limit: cfg.SpoolLimit, Headroom: cfg.DiskHeadroom,
		SyncEachFile: cfg.SpoolSyncEachFile, Logger: m.Logger})
	if err != nil {
		return err
	}
	m.Spool = sp
	raiseProcs(m.Logger)
	tuneGC(m.Logger, memoryTotal())
	nodeID, err := loadNodeID(cfg.Data)
	if err != nil {
		return err
	}
	if m.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if m.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	nodeURL := cfg.NodeURL
	if nodeURL == "" {
		nodeURL = cfg.PublicURL
	}
	if nodeURL == "" {
		nodeURL = m.URL()
	}
	m.Metrics = metrics.New()
	// The spool reports its disk's free space and headroom once it keeps
	// one (the spool lane's DiskFree and Headroom).
	if d, ok := any(sp).(metrics.Disk); ok {
		m.Metrics.SetDisk(d)
	}
	m.Webhooks = webhook.New(webhook.Config{
		Store:          m.Store,
		Box:            box,
		Logger:         m.Logger,
		AllowEndpoints: cfg.AllowEndpoints,
		MinBackoff:     cfg.WebhookMinBackoff,
		Observer:       m.Metrics,
	})
	// recsink is its own OIDC identity provider for role-based access. Its
	// issuer is the public URL; without one, the listen address, which only
	// an STS on this machine can reach (tests, local trials).
	issuer := cfg.PublicURL
	if issuer == "" {
		issuer = m.URL()
	}
	if m.OIDC, err = oidc.New(oidc.Config{
		Issuer: issuer, Audience: cfg.OIDCAudience, TokenTTL: cfg.OIDCTokenTTL, RotateAfter: cfg.OIDCKeyRotation,
		Store: m.Store, Box: box,
	}); err != nil {
		return fmt.Errorf("--public-url: %w", err)
	}
	// Validate read the file already; it is read again here, where the
	// pool is used.
	s3CAs, err := loadS3CAs(cfg.S3CAFile)
	if err != nil {
		return fmt.Errorf("--s3-ca-file: %w", err)
	}
	m.Service = service.New(service.Config{
		Store: m.Store,
		Storage: s3.New(s3.Config{
			AllowEndpoints: cfg.AllowEndpoints, RootCAs: s3CAs, Logger: m.Logger, Options: s3.Options{ResponseHeaderTimeout: cfg.S3Timeout},
			Identity: m.OIDC, RoleSessionDuration: cfg.RoleSessionDuration, RoleRefreshMargin: cfg.RoleRefreshMargin,
		}),
		Box:                     box,
		Spool:                   sp,
		Logger:                  m.Logger,
		MaxDuration:             cfg.MaxDuration,
		MaxIngestRate:           int64(cfg.MaxIngestMbps * 1e6 / 8),
		Notifier:                m.Webhooks,
		Observer:                m.Metrics,
		NodeID:                  nodeID,
		NodeURL:                 nodeURL,
		LeaseTTL:                cfg.LeaseTTL,
		NodeLossTimeout:         cfg.NodeLossTimeout,
		CredentialCheckInterval: credentialCheckInterval(cfg.CredentialCheckInterval),
	})
	m.Metrics.SetSource(m.Service)
	if err := m.Service.Open(ctx); err != nil {
		return err
	}
	if err := m.Webhooks.Start(context.Background()); err != nil {
		return err
	}
	// History older than --retention is pruned at start and hourly.
	cctx, stop := context.WithCancel(context.Background())
	m.stopCleaner, m.cleanerDone = stop, make(chan struct{})
	go func() {
		defer close(m.cleanerDone)
		(&service.Cleaner{Store: m.Store, Retention: cfg.Retention, Logger: m.Logger}).Run(cctx)
	}()

	api := http.NewServer()
	api.OrganizationService = m.Service
	api.StorageService = m.Service
	api.MeetingService = m.Service
	api.RecordingService = m.Service
	api.IngestService = m.Service
	api.WebhookService = m.Webhooks
	api.AuditService = m.Service
	api.Logger = m.Logger
	api.PublicURL = cfg.PublicURL
	api.OIDCIssuer, api.OIDCAudience = m.OIDC.Issuer(), m.OIDC.Audience()
	api.MaxDuration = cfg.MaxDuration
	api.ReadTimeout = cfg.ReadTimeout
	api.WriteTimeout = cfg.WriteTimeout
	api.IngestIdleTimeout = cfg.IngestIdleTimeout
	api.APIRate, api.APIBurst = cfg.APIRate, cfg.APIBurst
	if err := m.startLive(cfg, api); err != nil {
		return err
	}
	if m.metricsLn == nil {
		m.Logger.Warn("/metrics is served on the public listener, open to anyone who reaches it: set --metrics-addr to serve it apart", "addr", cfg.Addr)
		api.Handle("GET /metrics", m.Metrics.Handler())
	}
	wellKnown, jwks := m.OIDC.Paths()
	api.Handle("GET "+wellKnown, m.OIDC.Handler())
	api.Handle("GET "+jwks, m.OIDC.Handler())
	api.Handle("/admin/", admin.New(admin.Config{
		Store: m.Store, Storage: m.Service, Recordings: m.Service, Meetings: m.Service, Audit: m.Service,
		Logger: m.Logger, AllowCustomEndpoints: len(cfg.AllowEndpoints) > 0,
		OIDCIssuer: m.OIDC.Issuer(), OIDCAudience: m.OIDC.Audience(),
		MaxDuration: cfg.MaxDuration, SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"),
		// The sign-in form replaces the server's read deadline with its own:
		// never a longer one.
		SignInReadTimeout: min(cfg.ReadTimeout, admin.DefaultSignInReadTimeout),
		Live:              admin.LiveConfig{StreamKeys: m.Live, RTMPAddr: api.RTMPAddr, SRTAddr: api.SRTAddr, PublicURL: cfg.PublicURL, WHIP: api.WHIP},
	}))

	m.server = api.HTTPServer()
	go func() {
		if err := m.server.Serve(m.ln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			m.Logger.Error("serve", "err", err)
		}
	}()
	if m.metricsLn != nil {
		mux := nethttp.NewServeMux()
		mux.Handle("GET /metrics", m.Metrics.Handler())
		m.metricsServer = &nethttp.Server{
			Handler:           mux,
			ReadHeaderTimeout: min(http.ReadHeaderTimeout, cfg.ReadTimeout),
			ReadTimeout:       cfg.ReadTimeout,
			WriteTimeout:      cfg.WriteTimeout,
			IdleTimeout:       http.IdleTimeout,
			MaxHeaderBytes:    http.MaxHeaderBytes,
		}
		go func() {
			if err := m.metricsServer.Serve(m.metricsLn); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
				m.Logger.Error("serve metrics", "err", err)
			}
		}()
	}
	m.Logger.Info("recsink listening", "url", m.URL(), "metricsURL", m.MetricsURL(), "node", nodeID, "nodeURL", nodeURL, "data", cfg.Data, "db", redactDSN(cfg.dsn()), "allowEndpoints", cfg.AllowEndpoints,
		"readTimeout", cfg.ReadTimeout, "writeTimeout", cfg.WriteTimeout, "ingestIdleTimeout", cfg.IngestIdleTimeout)
	return nil
}

// MetricsURL returns the base URL of the /metrics listener: its own when
// --metrics-addr is set, else the API's.
func (m *Main) MetricsURL() string {
	if m.metricsLn == nil {
		return m.URL()
	}
	return "http://" + m.metricsLn.Addr().String()
}

// URL returns the server's base URL.
func (m *Main) URL() string {
	if m.ln == nil {
		return ""
	}
	return "http://" + m.ln.Addr().String()
}

// Close stops serving, lets uploads stop at a safe point and closes the
// store. Spooled bytes stay on disk for the next start.
func (m *Main) Close() error {
	var errs []error
	if m.server == nil && m.ln != nil {
		m.ln.Close() // Run failed after listening
	}
	if m.metricsServer == nil && m.metricsLn != nil {
		m.metricsLn.Close()
	}
	if m.metricsServer != nil {
		m.metricsServer.Close()
	}
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.server.Shutdown(ctx); err != nil {
			m.server.Close()
		}
	}
	m.closeLive()
	if m.Service != nil {
		errs = append(errs, m.Service.Close())
	}
	if m.stopCleaner != nil {
		m.stopCleaner()
		<-m.cleanerDone
		m.stopCleaner = nil
	}
	if m.Webhooks != nil {
		errs = append(errs, m.Webhooks.Stop())
	}
	if m.Spool != nil {
		errs = append(errs, m.Spool.Close())
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	if m.restoreClock != nil {
		m.restoreClock()
		m.restoreClock = nil
	}
	return errors.Join(errs...)
}

// loadNodeID returns this node's ID, kept in the data folder: a node that
// comes back with its data folder is the same node and takes back the
// recordings whose spool it holds.
func loadNodeID(dir string) (string, error) {
	path := filepath.Join(dir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id := recsink.NewID("node")
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}

// openStore opens the store that the DSN names.
func openStore(ctx context.Context, cfg Config) (recsink.Store, error) {
	dsn := cfg.dsn()
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		return sqlite.Open(ctx, path)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn)
	}
	return nil, fmt.Errorf("--db: unknown DSN scheme; use sqlite:PATH or postgres://USER@HOST/DB")
}

// newOrgService returns the service for commands that only touch the store.
func newOrgService(store recsink.Store) recsink.OrganizationService {
	return service.New(service.Config{Store: store})
}

// redactDSN drops a password from a DSN before it is logged.
func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 {
		if j := strings.Index(dsn, "://"); j > 0 && j < i {
			return dsn[:j+3] + "***" + dsn[i:]
		}
	}
	return dsn
}

// credentialCheckInterval maps the flag's 0 (off) to the service's negative.
func credentialCheckInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
