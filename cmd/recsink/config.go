package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/recsink/recsink/http"
	"github.com/recsink/recsink/oidc"
	"github.com/recsink/recsink/s3"
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
	// S3CAFile is a PEM file of CA certificates trusted for custom S3
	// endpoints' TLS, in addition to the system's: an S3-compatible server
	// behind a private CA. "" trusts the system's only.
	S3CAFile string
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
	// CredentialCheckInterval is how often the key health watch re-checks
	// each saved key and role in use (jittered); 0 turns it off.
	CredentialCheckInterval time.Duration
	// DiskHeadroom is the free space kept on the spool's disk; negative:
	// spool.DefaultHeadroom.
	DiskHeadroom int64
	// SpoolSyncEachFile makes each recording fsync its own spool file
	// instead of the group commit (one syncfs for every waiting write).
	SpoolSyncEachFile bool

	// ReadTimeout bounds reading a request, headers and body, on the API and
	// admin routes; WriteTimeout writing its response. IngestIdleTimeout is
	// how long an ingest body may send nothing before it is cut.
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IngestIdleTimeout time.Duration
	// MetricsAddr, when set, serves /metrics on its own listener and not on
	// the public one.
	MetricsAddr string
	// Retention is how long events, parts of finished recordings and
	// webhook deliveries are kept before they are pruned; 0 keeps them.
	Retention time.Duration
	// APIRate limits each organization API key to this many requests per
	// second, with bursts of APIBurst (0: the rate rounded up); 0 turns the
	// limit off. Ingest is not limited.
	APIRate  float64
	APIBurst int
	// ClockOffset shifts this process's own clock (recsink.Now), for tests
	// that prove leases use the database's clock. Process-wide.
	ClockOffset time.Duration
	// OIDCAudience is the aud of the identity tokens recsink signs as its
	// own OIDC identity provider (role-based access); OIDCTokenTTL their
	// lifetime, OIDCKeyRotation the age at which the signing key is replaced.
	OIDCAudience    string
	OIDCTokenTTL    time.Duration
	OIDCKeyRotation time.Duration
	// RoleSessionDuration is the DurationSeconds asked of STS for a role's
	// temporary credentials; RoleRefreshMargin how long before their expiry
	// they are refreshed.
	RoleSessionDuration time.Duration
	RoleRefreshMargin   time.Duration
	// RTMPAddr and SRTAddr, when set, take live publishes with rooms'
	// stream keys; StreamGrace is how long a dropped publish may come back.
	RTMPAddr, SRTAddr string
	StreamGrace       time.Duration
	// WHIPUDPAddr, when set, takes WHIP publishes (POST /v1/whip on the
	// HTTP listener) with their media on this one UDP port.
	WHIPUDPAddr string
	// WHIPPublicIPs are the addresses publishers reach WHIPUDPAddr at from
	// outside a 1:1 NAT, offered beside the local ones.
	WHIPPublicIPs []string
}

// DefaultConfig returns the embedded defaults: SQLite and a data folder
// under ./recsink-data, listening on 127.0.0.1:8080.
func DefaultConfig() Config {
	return Config{
		Addr:                    "127.0.0.1:8080",
		Data:                    "recsink-data",
		MaxDuration:             24 * time.Hour,
		MaxIngestMbps:           50,
		SpoolLimit:              10 << 30,
		DiskHeadroom:            -1,
		LogLevel:                "info",
		LeaseTTL:                15 * time.Second,
		NodeLossTimeout:         time.Hour,
		CredentialCheckInterval: time.Hour,

		ReadTimeout:       http.DefaultReadTimeout,
		WriteTimeout:      http.DefaultWriteTimeout,
		IngestIdleTimeout: http.DefaultIngestIdleTimeout,
		Retention:         30 * 24 * time.Hour,

		OIDCAudience:        oidc.DefaultAudience,
		OIDCTokenTTL:        oidc.DefaultTokenTTL,
		OIDCKeyRotation:     oidc.DefaultRotateAfter,
		RoleSessionDuration: time.Hour,
		RoleRefreshMargin:   10 * time.Minute,
		// About Whereby's own budget (1,000 points a minute), with room
		// for a client's bursts.
		APIRate:     20,
		APIBurst:    100,
		StreamGrace: 30 * time.Second,
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
	fs.StringVar(&c.S3CAFile, "s3-ca-file", c.S3CAFile, "PEM file of CA certificates trusted for custom S3 endpoints (https), in addition to the system's: for an S3-compatible server whose certificate a private CA signed")
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
	fs.Func("disk-headroom", "free space kept on the spool's disk, with an optional KiB/MiB/GiB suffix (default 512MiB or 10% of the disk, whichever is smaller); below it ingest answers 503 with Retry-After, so that the database on the same disk can still record the parts that free the spool", func(s string) error {
		n, err := parseSize(s)
		c.DiskHeadroom = n
		return err
	})
	fs.BoolVar(&c.SpoolSyncEachFile, "spool-sync-each-file", false, "fsync each recording's spool file on its own before acknowledging, instead of one syncfs of the spool's file system for every write waiting (group commit, the default on Linux); set it when the spool shares its file system with heavy writers, which each group commit would also flush")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.OIDCAudience, "oidc-audience", c.OIDCAudience, "the aud of the identity tokens recsink signs for role-based access; the audience the customer's IAM identity provider names")
	fs.DurationVar(&c.OIDCTokenTTL, "oidc-token-ttl", c.OIDCTokenTTL, "lifetime of an identity token (presented to STS at once)")
	fs.DurationVar(&c.OIDCKeyRotation, "oidc-key-rotation", c.OIDCKeyRotation, "age at which the identity token signing key is replaced; the old key stays published until its tokens expire")
	fs.DurationVar(&c.RoleSessionDuration, "role-session-duration", c.RoleSessionDuration, "DurationSeconds asked of STS for a role's temporary credentials (15m to 12h)")
	fs.DurationVar(&c.RoleRefreshMargin, "role-refresh-margin", c.RoleRefreshMargin, "temporary credentials are refreshed this long before they expire")
	fs.StringVar(&c.NodeURL, "node-url", "", "base URL other recsink nodes reach this one at, to send on ingest of recordings it runs (default: --public-url, else the listen address)")
	fs.DurationVar(&c.NodeLossTimeout, "node-loss-timeout", c.NodeLossTimeout, "how long a recording whose unsent bytes are on a dead node waits for that node to come back before it is failed")
	fs.DurationVar(&c.CredentialCheckInterval, "credential-check-interval", c.CredentialCheckInterval, "how often every saved key and role in use is re-checked against its bucket (jittered); a key that starts failing sends credential.failing; 0 turns the watch off")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", c.LeaseTTL, "how long this node's claim on its recordings lasts without renewal; another node takes over a dead node's recordings after it (at least 1s)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "time to read a whole request, headers and body, on the API and admin routes; ingest streams have --ingest-idle-timeout instead")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", c.WriteTimeout, "time to write a response on the API and admin routes")
	fs.DurationVar(&c.IngestIdleTimeout, "ingest-idle-timeout", c.IngestIdleTimeout, "an ingest stream that sends nothing for this long is cut; what it sent before stays acknowledged")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "HOST:PORT to serve /metrics on, apart from the API (default: on the API's own address, open to anyone who reaches it)")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how long recording events, parts of finished recordings and webhook deliveries are kept before they are pruned; 0 keeps them forever")
	fs.Float64Var(&c.APIRate, "api-rate", c.APIRate, "requests per second each organization API key may make (more answer 429 with Retry-After); 0 turns the limit off; ingest is not limited")
	fs.IntVar(&c.APIBurst, "api-burst", c.APIBurst, "requests an API key may make at once above --api-rate")
	fs.StringVar(&c.RTMPAddr, "rtmp-addr", c.RTMPAddr, "HOST:PORT to take RTMP publishes on (rtmp://HOST:PORT/live/STREAM-KEY); off unless set")
	fs.StringVar(&c.SRTAddr, "srt-addr", c.SRTAddr, "HOST:PORT (UDP) to take SRT publishes on (srt://HOST:PORT?streamid=publish:STREAM-KEY); off unless set")
	fs.StringVar(&c.WHIPUDPAddr, "whip-udp-addr", c.WHIPUDPAddr, "HOST:PORT (UDP) for the media of WHIP publishes, which POST their offer to /v1/whip on the HTTP listener with the stream key as Bearer token; off unless set")
	fs.Func("whip-public-ip", "IP address at which WHIP publishers reach --whip-udp-addr from outside a 1:1 NAT (a cloud VM's public IP), offered beside the local addresses; repeatable, or comma-separated", func(v string) error {
		for ip := range strings.SplitSeq(v, ",") {
			if ip = strings.TrimSpace(ip); net.ParseIP(ip) == nil {
				return fmt.Errorf("%q is not an IP address", ip)
			}
			c.WHIPPublicIPs = append(c.WHIPPublicIPs, strings.TrimSpace(ip))
		}
		return nil
	})
	fs.DurationVar(&c.StreamGrace, "stream-grace", c.StreamGrace, "how long a live recording waits for a publisher whose connection dropped; one that comes back with its key within it continues the same recording")
	fs.DurationVar(&c.ClockOffset, "clock-offset", c.ClockOffset, "tests only: shift this node's own clock by this much, to show that leases follow the database's clock")
}

// Validate checks every value, naming the flag at fault: RegisterFlags
// parses each, Validate checks that they make sense together and that
// values set in code (tests) do too.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if err := checkListenAddr(c.Addr); err != nil {
		bad("addr", "%v", err)
	}
	if c.MetricsAddr != "" {
		if err := checkListenAddr(c.MetricsAddr); err != nil {
			bad("metrics-addr", "%v", err)
		} else if c.MetricsAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
			bad("metrics-addr", "must differ from --addr: /metrics gets its own listener")
		}
	}
	if c.RTMPAddr != "" {
		if err := checkListenAddr(c.RTMPAddr); err != nil {
			bad("rtmp-addr", "%v", err)
		}
	}
	if c.SRTAddr != "" {
		if err := checkListenAddr(c.SRTAddr); err != nil {
			bad("srt-addr", "%v", err)
		}
	}
	if c.WHIPUDPAddr != "" {
		if err := checkListenAddr(c.WHIPUDPAddr); err != nil {
			bad("whip-udp-addr", "%v", err)
		}
	}
	if c.StreamGrace < 0 {
		bad("stream-grace", "must not be negative, not %s", c.StreamGrace)
	}
	if c.Data == "" {
		bad("data", "must name a folder")
	}
	if _, err := loadS3CAs(c.S3CAFile); err != nil {
		bad("s3-ca-file", "%v", err)
	}
	if c.PublicURL != "" {
		if err := checkBaseURL(c.PublicURL); err != nil {
			bad("public-url", "%v", err)
		} else if err := oidc.ValidateIssuer(c.PublicURL); err != nil {
			// It is also the issuer of recsink's identity tokens, which STS
			// fetches keys from: only https is trusted outside loopback.
			bad("public-url", "%v", err)
		}
	}
	if c.OIDCAudience == "" || len(c.OIDCAudience) > 256 || strings.ContainsAny(c.OIDCAudience, " \t\r\n") {
		bad("oidc-audience", "must be 1 to 256 characters without spaces, such as %s", oidc.DefaultAudience)
	}
	if c.OIDCTokenTTL < time.Minute || c.OIDCTokenTTL > time.Hour {
		bad("oidc-token-ttl", "must be from 1m to 1h, not %v", c.OIDCTokenTTL)
	}
	if c.OIDCKeyRotation < time.Hour {
		bad("oidc-key-rotation", "must be at least 1h, not %v", c.OIDCKeyRotation)
	}
	if c.RoleSessionDuration < 15*time.Minute || c.RoleSessionDuration > 12*time.Hour {
		bad("role-session-duration", "must be from 15m to 12h (what STS accepts), not %v", c.RoleSessionDuration)
	}
	if c.RoleRefreshMargin < time.Second || c.RoleRefreshMargin >= c.RoleSessionDuration {
		bad("role-refresh-margin", "must be at least 1s and shorter than --role-session-duration, not %v", c.RoleRefreshMargin)
	}
	if c.NodeURL != "" {
		if err := checkBaseURL(c.NodeURL); err != nil {
			bad("node-url", "%v", err)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"max-recording-duration", c.MaxDuration},
		{"node-loss-timeout", c.NodeLossTimeout},
		{"read-timeout", c.ReadTimeout},
		{"write-timeout", c.WriteTimeout},
		{"ingest-idle-timeout", c.IngestIdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.flag, "must be a positive duration such as 30s or 2h, not %s", d.v)
		}
	}
	// Leases are renewed at a fraction of the TTL: below a second the
	// renewal ticker gets a period of zero and panics, and no database
	// round trip fits.
	if c.CredentialCheckInterval < 0 {
		bad("credential-check-interval", "must be 0 (off) or a positive duration such as 1h, not %s", c.CredentialCheckInterval)
	}
	if c.LeaseTTL < time.Second {
		bad("lease-ttl", "must be at least 1s, not %s", c.LeaseTTL)
	}
	if c.ReadTimeout > 0 && c.ReadTimeout < time.Second {
		bad("read-timeout", "must be at least 1s, not %s", c.ReadTimeout)
	}
	if c.IngestIdleTimeout > 0 && c.IngestIdleTimeout < time.Second {
		bad("ingest-idle-timeout", "must be at least 1s, not %s", c.IngestIdleTimeout)
	}
	if math.IsNaN(c.MaxIngestMbps) || c.MaxIngestMbps <= 0 || c.MaxIngestMbps > maxIngestMbps {
		bad("max-ingest-mbps", "must be more than 0 and at most %d", maxIngestMbps)
	} else if rate, d := c.MaxIngestMbps*1e6/8, c.MaxDuration.Seconds(); d > 0 && rate*d > maxObjectSize {
		bad("max-ingest-mbps", "%g Mbit/s for --max-recording-duration %s is more than S3's largest object, 5 TiB", c.MaxIngestMbps, c.MaxDuration)
	}
	if c.Retention < 0 {
		bad("retention", "must be a duration such as 720h, or 0 to keep history forever; not %s", c.Retention)
	}
	if c.SpoolLimit < 0 {
		bad("spool-limit", "must not be negative")
	}
	if c.WebhookMinBackoff < 0 {
		bad("webhook-min-backoff", "must not be negative")
	}
	if math.IsNaN(c.APIRate) || math.IsInf(c.APIRate, 0) || c.APIRate < 0 {
		bad("api-rate", "must be a number of requests per second, or 0 to turn the limit off; not %g", c.APIRate)
	}
	if c.APIBurst < 0 {
		bad("api-burst", "must not be negative, not %d", c.APIBurst)
	}
	if c.ClockOffset < -24*time.Hour || c.ClockOffset > 24*time.Hour {
		bad("clock-offset", "must be within ±24h, not %s", c.ClockOffset)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("log-level", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	return errors.Join(errs...)
}

const (
	// maxIngestMbps bounds --max-ingest-mbps: 10 Gbit/s for one recording.
	maxIngestMbps = 10_000
	// maxObjectSize is S3's largest object, 5 TiB.
	maxObjectSize = 5 << 40
)

// loadS3CAs returns the pool that verifies S3 endpoints' certificates: the
// system's roots and the certificates of the PEM file path; nil (the
// system's only) when path is "".
func loadS3CAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the CA certificates: %w", err)
	}
	pool, err := s3.SystemRootsWith(pem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pool, nil
}

// checkListenAddr checks a HOST:PORT to listen on; the host may be empty
// (every interface), the port 0 (any free one).
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT, such as 127.0.0.1:8080 or :8080, not %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("the port of %q must be a number from 0 to 65535", addr)
	}
	if strings.ContainsAny(host, " /?#@") {
		return fmt.Errorf("the host of %q is not a host name or IP address", addr)
	}
	return nil
}

// checkBaseURL checks a base URL such as https://recsink.example.com.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("must be a URL such as https://recsink.example.com: %v", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must start with http:// or https://, not %q", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("must name a host, such as https://recsink.example.com")
	case u.User != nil:
		return fmt.Errorf("must not carry a user name or password")
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return fmt.Errorf("must be a base URL without a query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("the port of %q must be a number from 1 to 65535", s)
		}
	}
	return nil
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
	if n > math.MaxInt64/mult {
		// n * mult would wrap round to a negative size: no limit at all.
		return 0, fmt.Errorf("size is too large: at most %d bytes", int64(math.MaxInt64))
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
