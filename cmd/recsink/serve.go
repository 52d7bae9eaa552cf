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
	"github.com/recsink/recsink/metrics"
	"github.com/recsink/recsink/postgres"
	"github.com/recsink/recsink/s3"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
	"github.com/recsink/recsink/sqlite"
	"github.com/recsink/recsink/webhook"
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
	server   *nethttp.Server
	ln       net.Listener
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Stderr: os.Stderr}
}

// Run opens the store, the spool and the secret box, resumes unfinished
// recordings and starts serving. It returns once the server listens.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
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
	sp, err := spool.Open(filepath.Join(cfg.Data, "spool"), cfg.SpoolLimit)
	if err != nil {
		return err
	}
	nodeID, err := loadNodeID(cfg.Data)
	if err != nil {
		return err
	}
	if m.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return err
	}
	nodeURL := cfg.NodeURL
	if nodeURL == "" {
		nodeURL = cfg.PublicURL
	}
	if nodeURL == "" {
		nodeURL = m.URL()
	}
	m.Metrics = metrics.New()
	m.Webhooks = webhook.New(webhook.Config{
		Store:          m.Store,
		Box:            box,
		Logger:         m.Logger,
		AllowEndpoints: cfg.AllowEndpoints,
		MinBackoff:     cfg.WebhookMinBackoff,
		Observer:       m.Metrics,
	})
	m.Service = service.New(service.Config{
		Store:           m.Store,
		Storage:         s3.New(s3.Config{AllowEndpoints: cfg.AllowEndpoints, Logger: m.Logger}),
		Box:             box,
		Spool:           sp,
		Logger:          m.Logger,
		MaxDuration:     cfg.MaxDuration,
		MaxIngestRate:   int64(cfg.MaxIngestMbps * 1e6 / 8),
		Notifier:        m.Webhooks,
		Observer:        m.Metrics,
		NodeID:          nodeID,
		NodeURL:         nodeURL,
		LeaseTTL:        cfg.LeaseTTL,
		NodeLossTimeout: cfg.NodeLossTimeout,
	})
	m.Metrics.SetSource(m.Service)
	if err := m.Service.Open(ctx); err != nil {
		return err
	}
	if err := m.Webhooks.Start(context.Background()); err != nil {
		return err
	}

	api := http.NewServer()
	api.OrganizationService = m.Service
	api.StorageService = m.Service
	api.MeetingService = m.Service
	api.RecordingService = m.Service
	api.IngestService = m.Service
	api.WebhookService = m.Webhooks
	api.Logger = m.Logger
	api.PublicURL = cfg.PublicURL
	api.MaxDuration = cfg.MaxDuration
	api.Handle("GET /metrics", m.Metrics.Handler())
	api.Handle("/admin/", admin.New(admin.Config{
		Store: m.Store, Storage: m.Service, Recordings: m.Service, Meetings: m.Service,
		Logger: m.Logger, AllowCustomEndpoints: len(cfg.AllowEndpoints) > 0,
		MaxDuration: cfg.MaxDuration, SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"),
	}))

	m.server = &nethttp.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		if err := m.server.Serve(m.ln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			m.Logger.Error("serve", "err", err)
		}
	}()
	m.Logger.Info("recsink listening", "url", m.URL(), "node", nodeID, "nodeURL", nodeURL, "data", cfg.Data, "db", redactDSN(cfg.dsn()), "allowEndpoints", cfg.AllowEndpoints)
	return nil
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
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.server.Shutdown(ctx); err != nil {
			m.server.Close()
		}
	}
	if m.Service != nil {
		errs = append(errs, m.Service.Close())
	}
	if m.Webhooks != nil {
		errs = append(errs, m.Webhooks.Stop())
	}
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
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
