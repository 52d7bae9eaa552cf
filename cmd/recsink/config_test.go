package main_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestConfigValidate checks that each flag's bad values are refused at
// start-up with an error that names the flag.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		args []string
		flag string // the flag the error names; "" for a valid command line
	}{
		{"OK", nil, ""},
		{"OKEverything", []string{"--addr", ":9000", "--metrics-addr", "127.0.0.1:9100", "--public-url", "https://rec.example.com/base",
			"--node-url", "http://10.0.0.2:8080", "--read-timeout", "5s", "--write-timeout", "10s", "--ingest-idle-timeout", "1m",
			"--retention", "2160h", "--lease-ttl", "1s", "--spool-limit", "512MiB", "--max-ingest-mbps", "0.5", "--clock-offset", "-90s"}, ""},
		{"OKLargest", []string{"--spool-limit", "8388607TiB", "--max-ingest-mbps", "400"}, ""},
		{"SpoolLimitOverflow", []string{"--spool-limit", "8388608TiB"}, "spool-limit"},
		{"SpoolLimitOverflowBytes", []string{"--spool-limit", "99999999999999999999"}, "spool-limit"},
		{"SpoolLimitNegative", []string{"--spool-limit", "-1GiB"}, "spool-limit"},
		{"SpoolLimitText", []string{"--spool-limit", "lots"}, "spool-limit"},
		{"LeaseTTLTiny", []string{"--lease-ttl", "1ns"}, "lease-ttl"},
		{"APIRateNegative", []string{"--api-rate", "-1"}, "api-rate"},
		{"APIRateNaN", []string{"--api-rate", "NaN"}, "api-rate"},
		{"APIBurstNegative", []string{"--api-burst", "-3"}, "api-burst"},
		{"APIRateOff", []string{"--api-rate", "0"}, ""},
		{"LeaseTTLZero", []string{"--lease-ttl", "0s"}, "lease-ttl"},
		{"LeaseTTLNegative", []string{"--lease-ttl", "-5s"}, "lease-ttl"},
		{"MaxDurationZero", []string{"--max-recording-duration", "0s"}, "max-recording-duration"},
		{"NodeLossNegative", []string{"--node-loss-timeout", "-1h"}, "node-loss-timeout"},
		{"ReadTimeoutZero", []string{"--read-timeout", "0s"}, "read-timeout"},
		{"ReadTimeoutTiny", []string{"--read-timeout", "10ms"}, "read-timeout"},
		{"WriteTimeoutNegative", []string{"--write-timeout", "-1s"}, "write-timeout"},
		{"IngestIdleZero", []string{"--ingest-idle-timeout", "0"}, "ingest-idle-timeout"},
		{"RetentionOff", []string{"--retention", "0s"}, ""},
		{"RetentionNegative", []string{"--retention", "-1h"}, "retention"},
		{"ClockOffsetHuge", []string{"--clock-offset", "48h"}, "clock-offset"},
		{"MbpsZero", []string{"--max-ingest-mbps", "0"}, "max-ingest-mbps"},
		{"MbpsNegative", []string{"--max-ingest-mbps", "-3"}, "max-ingest-mbps"},
		{"MbpsNaN", []string{"--max-ingest-mbps", "NaN"}, "max-ingest-mbps"},
		{"MbpsInf", []string{"--max-ingest-mbps", "+Inf"}, "max-ingest-mbps"},
		{"MbpsTooHigh", []string{"--max-ingest-mbps", "20000"}, "max-ingest-mbps"},
		{"MbpsObjectTooLarge", []string{"--max-ingest-mbps", "1000", "--max-recording-duration", "24h"}, "max-ingest-mbps"},
		{"AddrNoPort", []string{"--addr", "localhost"}, "addr"},
		{"AddrBadPort", []string{"--addr", "127.0.0.1:99999"}, "addr"},
		{"AddrURL", []string{"--addr", "http://127.0.0.1:8080"}, "addr"},
		{"MetricsAddrNoPort", []string{"--metrics-addr", "127.0.0.1"}, "metrics-addr"},
		{"MetricsAddrSameAsAddr", []string{"--addr", "127.0.0.1:8080", "--metrics-addr", "127.0.0.1:8080"}, "metrics-addr"},
		{"PublicURLNoScheme", []string{"--public-url", "rec.example.com"}, "public-url"},
		{"PublicURLFTP", []string{"--public-url", "ftp://rec.example.com"}, "public-url"},
		{"PublicURLNoHost", []string{"--public-url", "https://"}, "public-url"},
		{"PublicURLQuery", []string{"--public-url", "https://rec.example.com/?a=b"}, "public-url"},
		{"PublicURLUser", []string{"--public-url", "https://u:p@rec.example.com"}, "public-url"},
		{"PublicURLBadPort", []string{"--public-url", "https://rec.example.com:0"}, "public-url"},
		{"PublicURLSpace", []string{"--public-url", "https://rec example.com"}, "public-url"},
		{"PublicURLPlainHTTP", []string{"--public-url", "http://rec.example.com"}, "public-url"},
		{"OIDCAudienceSpace", []string{"--oidc-audience", "a b"}, "oidc-audience"},
		{"OIDCTokenTTLShort", []string{"--oidc-token-ttl", "10s"}, "oidc-token-ttl"},
		{"OIDCKeyRotationShort", []string{"--oidc-key-rotation", "1m"}, "oidc-key-rotation"},
		{"RoleSessionDurationShort", []string{"--role-session-duration", "5m"}, "role-session-duration"},
		{"RoleRefreshMarginTooLong", []string{"--role-session-duration", "15m", "--role-refresh-margin", "15m"}, "role-refresh-margin"},
		{"NodeURLNoScheme", []string{"--node-url", "10.0.0.2:8080"}, "node-url"},
		{"LogLevel", []string{"--log-level", "loud"}, "log-level"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := main.ParseServeFlags(tt.args)
			if err == nil {
				err = cfg.Validate()
			}
			switch {
			case tt.flag == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.flag == "":
				return
			case err == nil:
				t.Fatalf("accepted; want an error naming --%s", tt.flag)
			case !strings.Contains(err.Error(), "-"+tt.flag+":") && !strings.Contains(err.Error(), "flag -"+tt.flag+": "):
				t.Fatalf("error does not name --%s: %v", tt.flag, err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestConfigDefaults checks the defaults of the new flags and that they
// are valid as they stand. Not parallel: it sets the environment.
func TestConfigDefaults(t *testing.T) {
	cfg, err := main.ParseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReadTimeout != 30*time.Second || cfg.WriteTimeout != time.Minute || cfg.IngestIdleTimeout != 30*time.Second ||
		cfg.Retention != 720*time.Hour || cfg.MetricsAddr != "" || cfg.ClockOffset != 0 {
		t.Errorf("defaults %+v", cfg)
	}
	if err := main.DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
	t.Setenv("RECSINK_INGEST_IDLE_TIMEOUT", "45s")
	if cfg, err := main.ParseServeFlags(nil); err != nil || cfg.IngestIdleTimeout != 45*time.Second {
		t.Errorf("from the environment: %v, %s", err, cfg.IngestIdleTimeout)
	}
}

// TestConfigRunRefuses checks that Run refuses a bad configuration before
// it touches anything, naming the flag.
func TestConfigRunRefuses(t *testing.T) {
	t.Parallel()
	m := main.NewMain()
	m.Stderr = io.Discard
	m.Config.Data = t.TempDir()
	m.Config.Addr = "127.0.0.1:0"
	m.Config.LeaseTTL = time.Nanosecond
	err := m.Run(context.Background())
	defer m.Close()
	if err == nil || !strings.Contains(err.Error(), "--lease-ttl") {
		t.Fatalf("Run: %v", err)
	}
}

// runMain starts recsink on a temp folder and SQLite, without S3.
func runMain(tb testing.TB, edit func(*main.Config)) (*main.Main, *syncBuffer) {
	tb.Helper()
	logs := &syncBuffer{}
	m := main.NewMain()
	m.Stderr = logs
	m.Config.Data = tb.TempDir()
	m.Config.Addr = "127.0.0.1:0"
	edit(&m.Config)
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		tb.Fatalf("run: %v\n%s", err, logs)
	}
	tb.Cleanup(func() { m.Close() })
	return m, logs
}

func mustGetStatus(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFlagMetricsAddr checks that --metrics-addr moves /metrics off the
// public listener, and that without it start-up warns that it is public.
func TestFlagMetricsAddr(t *testing.T) {
	t.Parallel()
	t.Run("Apart", func(t *testing.T) {
		t.Parallel()
		m, logs := runMain(t, func(c *main.Config) { c.MetricsAddr = "127.0.0.1:0" })
		if m.MetricsURL() == m.URL() {
			t.Fatalf("metrics on %s, the API's address", m.MetricsURL())
		}
		if st, _ := mustGetStatus(t, m.URL()+"/metrics"); st != http.StatusNotFound {
			t.Errorf("/metrics on the public listener: status %d", st)
		}
		st, body := mustGetStatus(t, m.MetricsURL()+"/metrics")
		if st != 200 || !strings.Contains(body, "recsink_spool_bytes") {
			t.Errorf("/metrics on its own listener: status %d:\n%.300s", st, body)
		}
		if strings.Contains(logs.String(), "/metrics is served on the public listener") {
			t.Errorf("warned although /metrics is apart:\n%s", logs)
		}
	})
	t.Run("Public", func(t *testing.T) {
		t.Parallel()
		m, logs := runMain(t, func(*main.Config) {})
		if st, _ := mustGetStatus(t, m.URL()+"/metrics"); st != 200 {
			t.Errorf("/metrics: status %d", st)
		}
		if !strings.Contains(logs.String(), "level=WARN msg=\"/metrics is served on the public listener") {
			t.Errorf("no warning that /metrics is public:\n%s", logs)
		}
	})
}

// TestFlagClockOffset checks that --clock-offset shifts recsink.Now while
// the node runs and that Close puts it back. Not parallel: the clock is
// the process's.
func TestFlagClockOffset(t *testing.T) {
	m, logs := runMain(t, func(c *main.Config) { c.ClockOffset = time.Hour })
	if d := recsink.Now().Sub(time.Now()); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("recsink.Now is %s ahead, want 1h", d)
	}
	if !strings.Contains(logs.String(), "clock-offset") {
		t.Errorf("no warning about --clock-offset:\n%s", logs)
	}
	m.Close()
	if d := recsink.Now().Sub(time.Now()); d > time.Minute || d < -time.Minute {
		t.Errorf("after Close, recsink.Now is %s off", d)
	}
}

// TestFlagReadTimeout checks the server limits as recsink serve wires
// them: a request whose body is refused is answered and closed at once, and
// the sign-in form, read before anyone is signed in, is waited for no
// longer than --read-timeout.
func TestFlagReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = time.Second
	m, _ := runMain(t, func(c *main.Config) { c.ReadTimeout = readTimeout })
	addr := strings.TrimPrefix(m.URL(), "http://")
	for _, tt := range []struct {
		name, head string
		status     int
		min, max   time.Duration
	}{
		{"APINoKey", "PUT /v1/storage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000", 401, 0, readTimeout / 2},
		{"IngestWrongToken", "PUT /v1/recordings/rec_x/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 1000", 401, 0, readTimeout / 2},
		{"SignInNoCookie", "POST /admin/signin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000", 403, 0, readTimeout / 2},
		{"SignInSilentBody", "POST /admin/signin HTTP/1.1\r\nHost: x\r\nCookie: recsink_admin_signin=t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000", 408, readTimeout, readTimeout + 2*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			io.WriteString(conn, tt.head+"\r\n\r\n")
			conn.SetDeadline(time.Now().Add(readTimeout + 5*time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			_, err = br.ReadByte()
			took := time.Since(start)
			if resp.StatusCode != tt.status || !errors.Is(err, io.EOF) || took < tt.min || took > tt.max {
				t.Errorf("status %d (want %d), closed: %v, after %s (want %s to %s)", resp.StatusCode, tt.status, err, took, tt.min, tt.max)
			}
		})
	}
}

// TestConfigLogRedacted checks that the server's logger redacts secret
// material, whatever logs it.
func TestConfigLogRedacted(t *testing.T) {
	t.Parallel()
	m, logs := runMain(t, func(*main.Config) {})
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	m.Logger.Error("upload failed", "err", fmt.Errorf("s3: sign with %s: Authorization: Bearer rsk_abcdefABCDEF123", secret))
	if out := logs.String(); strings.Contains(out, "K7MDENG") || strings.Contains(out, "rsk_abcdef") || !strings.Contains(out, "upload failed") {
		t.Errorf("log:\n%s", out)
	}
}

// TestConfigS3CAFile checks --s3-ca-file: a PEM file of CA certificates is
// taken, from the flag or RECSINK_S3_CA_FILE; a missing file, or one with
// no certificate, is refused at start-up naming the flag and the file.
// Not parallel: it sets the environment.
func TestConfigS3CAFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, append(mustCAPEM(t), mustCAPEM(t)...), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tt := range []struct {
		name string
		file string
		ok   bool
	}{
		{"OK", good, true},
		{"OKNone", "", true},
		{"ErrMissing", missing, false},
		{"ErrNoCertificate", empty, false},
		{"ErrFolder", dir, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := main.ParseServeFlags([]string{"--s3-ca-file", tt.file})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.S3CAFile != tt.file {
				t.Fatalf("S3CAFile = %q, want %q", cfg.S3CAFile, tt.file)
			}
			err = cfg.Validate()
			switch {
			case tt.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.ok:
				return
			case err == nil:
				t.Fatal("accepted; want an error naming --s3-ca-file")
			case !strings.Contains(err.Error(), "--s3-ca-file:") || !strings.Contains(err.Error(), tt.file):
				t.Fatalf("error does not name --s3-ca-file and %s: %v", tt.file, err)
			}
			t.Logf("%v", err)
		})
	}

	t.Run("Environment", func(t *testing.T) {
		t.Setenv("RECSINK_S3_CA_FILE", good)
		if cfg, err := main.ParseServeFlags(nil); err != nil || cfg.S3CAFile != good || cfg.Validate() != nil {
			t.Errorf("from the environment: %v, %q", err, cfg.S3CAFile)
		}
	})

	t.Run("RunRefuses", func(t *testing.T) {
		m := main.NewMain()
		m.Stderr = io.Discard
		m.Config.Data = t.TempDir()
		m.Config.Addr = "127.0.0.1:0"
		m.Config.S3CAFile = empty
		err := m.Run(context.Background())
		defer m.Close()
		if err == nil || !strings.Contains(err.Error(), "--s3-ca-file") {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestFlagS3CAFile records into a versitygw that serves https with a
// certificate of its own CA: with the CA in --s3-ca-file the storage check
// passes and the recording is uploaded byte-identical; without it the
// storage is refused.
func TestFlagS3CAFile(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStartTLS(t)
	caFile := filepath.Join(t.TempDir(), "s3-ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Env{S3: srv, Main: MustRunMain(t, srv, func(c *main.Config) { c.S3CAFile = caFile })}
	e.Org = e.Main.MustCreateOrg(t)
	e.Key = srv.CreateUser(t, "user")
	e.Bucket = srv.CreateBucket(t, e.Key.ID)
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("endpoint %s, want https", srv.Endpoint)
	}

	t.Run("ErrWithoutCA", func(t *testing.T) {
		m := MustRunMain(t, srv)
		org := m.MustCreateOrg(t)
		status, out := org.Do(t, "PUT", "/v1/storage", e.Storage(e.Bucket, e.Key))
		if status != 422 || out["code"] != "destination" {
			t.Fatalf("without the CA: status %d, want 422 destination: %v", status, out)
		}
		// The customer reads a certificate problem and the operator's
		// flag, not an endpoint that "does not answer".
		var failed map[string]any
		for _, c := range out["checks"].([]any) {
			if c := c.(map[string]any); c["ok"] == false && c["skipped"] != true {
				failed = c
				break
			}
		}
		if failed == nil || failed["code"] != recsink.CodeCertificateNotTrusted {
			t.Fatalf("failing check %v, want code %s", failed, recsink.CodeCertificateNotTrusted)
		}
		mustContain(t, failed["message"].(string), "--s3-ca-file")
	})

	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket, e.Key))
	rec := MustStartRecording(t, e.Org, e.MustMeeting(t, e.Org))
	data := make([]byte, 6<<20+11)
	rand.Read(data)
	rec.MustPut(t, data)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, srv, e.Bucket, rec.ObjectKey, data)

	// The operator restarts without --s3-ca-file: a recording in progress
	// is blocked at its first upload, saying which certificate and which
	// flag, keeps its bytes in the spool, and is uploaded once the CA is
	// given back.
	rec = MustStartRecording(t, e.Org, e.MustMeeting(t, e.Org))
	data = randomBytes(t, 6<<20+11)
	rec.MustPut(t, data)
	e.Main.Config.S3CAFile = ""
	e.Main.Restart(t)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	blocked := WaitState(t, e.Org, rec.ID, recsink.RecordingBlocked, 30*time.Second)
	msg, _ := blocked["lastError"].(string)
	mustContain(t, msg, "--s3-ca-file")
	e.Main.Config.S3CAFile = caFile
	e.Main.Restart(t)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 30*time.Second)
	checkObject(t, srv, e.Bucket, rec.ObjectKey, data)
}

// mustCAPEM returns a new self-signed CA certificate in PEM.
func mustCAPEM(tb testing.TB) []byte {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "recsink test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
