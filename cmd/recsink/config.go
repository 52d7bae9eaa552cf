package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the server's configuration, from flags and RECSINK_* variables.
type Config struct {
	Addr           string
	Data           string
	DB             string
	AllowEndpoints []string
	MasterKeyFile  string
	PublicURL      string
	MaxDuration    time.Duration
	MaxIngestMbps  float64
	SpoolLimit     int64
	LogLevel       string
	// S3Timeout, when set, replaces the S3 client's floor for response
	// headers (s3.Options.ResponseHeaderTimeout, default 15 s); tests only.
	S3Timeout time.Duration
	// WebhookMinBackoff is the first wait before a failed webhook delivery
	// is tried again (tests make it short).
	WebhookMinBackoff time.Duration
	// NodeURL is where other nodes reach this one; LeaseTTL how long its
	// claim on a recording lasts without renewal.
	NodeURL  string
	LeaseTTL time.Duration
	// NodeLossTimeout is how long recordings wait for a dead node that holds
	// their unsent bytes before they are failed.
	NodeLossTimeout time.Duration
}

// DefaultConfig returns the embedded defaults: SQLite and a data folder
// under ./recsink-data, listening on 127.0.0.1:8080.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		Data:            "recsink-data",
		MaxDuration:     24 * time.Hour,
		MaxIngestMbps:   50,
		SpoolLimit:      10 << 30,
		LogLevel:        "info",
		LeaseTTL:        15 * time.Second,
		NodeLossTimeout: time.Hour,
	}
}

// RegisterFlags adds the serve flags to fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	*c = DefaultConfig()
	fs.StringVar(&c.Addr, "addr", c.Addr, "address to listen on")
	fs.StringVar(&c.Data, "data", c.Data, "data folder: the SQLite file, the spool and a generated master key")
	fs.StringVar(&c.DB, "db", c.DB, "database DSN (default sqlite:<data>/recsink.db)")
	fs.Func("allow-endpoint", "HOST:PORT of a custom S3 endpoint customers may use (repeatable; by default only AWS's own endpoints)", func(s string) error {
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				c.AllowEndpoints = append(c.AllowEndpoints, v)
			}
		}
		return nil
	})
	fs.StringVar(&c.MasterKeyFile, "master-key-file", "", "file with the base64 master key that encrypts access secrets (default: RECSINK_MASTER_KEY, else <data>/master.key, generated)")
	fs.StringVar(&c.PublicURL, "public-url", "", "base URL recorders reach this server at, for ingest URLs (default: from the request)")
	fs.DurationVar(&c.MaxDuration, "max-recording-duration", c.MaxDuration, "recordings stop by themselves after this long")
	fs.Float64Var(&c.MaxIngestMbps, "max-ingest-mbps", c.MaxIngestMbps, "highest ingest rate of one recording in Mbit/s; sizes the parts so a recording at this rate for the maximum duration fits in S3's 10,000 parts")
	fs.DurationVar(&c.S3Timeout, "s3-timeout", 0, "tests only: how long an S3 endpoint may take to answer before the attempt is cut (default 15s)")
	fs.Func("spool-limit", "bytes of the local spool across recordings, with an optional KiB/MiB/GiB suffix (default 10GiB); ingest answers 503 with Retry-After when full", func(s string) error {
		n, err := parseSize(s)
		c.SpoolLimit = n
		return err
	})
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.NodeURL, "node-url", "", "base URL other recsink nodes reach this one at, to send on ingest of recordings it runs (default: --public-url, else the listen address)")
	fs.DurationVar(&c.NodeLossTimeout, "node-loss-timeout", c.NodeLossTimeout, "how long a recording whose unsent bytes are on a dead node waits for that node to come back before it is failed")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", c.LeaseTTL, "how long this node's claim on its recordings lasts without renewal; another node takes over a dead node's recordings after it")
}

// parseFlags parses args, then fills every flag not given on the command
// line from its RECSINK_<NAME> environment variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "RECSINK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !set[f.Name] && err == nil {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}

// parseSize parses "1048576", "512MiB", "10GiB".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size must be a number of bytes with an optional KiB, MiB, GiB or TiB suffix")
	}
	return n * mult, nil
}

// dsn returns the database DSN, defaulting to SQLite in the data folder.
func (c Config) dsn() string {
	if c.DB != "" {
		return c.DB
	}
	return "sqlite:" + filepath.Join(c.Data, "recsink.db")
}
