package s3test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// certValidity is how long a test server's certificate is valid: longer
// than the longest benchmark run.
const certValidity = 48 * time.Hour

// MustStartTLS starts a versitygw for tb that serves S3 and its admin API
// over TLS only, with a self-signed certificate for 127.0.0.1 made in its
// temporary folder, and stops it when tb ends. Endpoint and AdminEndpoint
// are https URLs; CA (and CAPEM) is the certificate a client must trust, as
// production S3 behind a private CA would need. Server's own helpers
// (S3Client, CreateUser, GetObject...) trust it. It skips or fails tb as
// MustStart does when the binary is absent.
func MustStartTLS(tb testing.TB) *Server {
	tb.Helper()
	return mustStart(tb, true)
}

// newTLSFiles writes a self-signed ECDSA P-256 certificate for 127.0.0.1
// and localhost, and its key, into dir; the certificate is its own CA.
// It returns the certificate's PEM and the files' paths.
func newTLSFiles(dir string) (certPEM []byte, certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "recsink s3test versitygw", Organization: []string{"recsink tests"}},
		NotBefore:             now.Add(-time.Hour), // a clock a little behind still accepts it
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", "", fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", "", err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile = filepath.Join(dir, "tls-cert.pem"), filepath.Join(dir, "tls-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, "", "", err
	}
	return certPEM, certFile, keyFile, nil
}

// setupTLS makes the server's certificate and points s at https: its
// helper client trusts the certificate, and versitygw is started with it
// on both its ports.
func (s *Server) setupTLS(tb testing.TB) {
	tb.Helper()
	certPEM, certFile, keyFile, err := newTLSFiles(s.dir)
	if err != nil {
		tb.Fatalf("s3test: make a TLS certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		tb.Fatal("s3test: the generated certificate does not parse")
	}
	s.CA, s.CAPEM, s.CertFile, s.KeyFile = pool, certPEM, certFile, keyFile
	s.http = &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
		Timeout:   30 * time.Second,
	}
}

// tlsArgs returns versitygw's flags that serve TLS, or none. --cert alone
// leaves the admin API on plain HTTP (seen with v1.8.0): it gets the same
// certificate with its own flags.
func (s *Server) tlsArgs() []string {
	if s.CertFile == "" {
		return nil
	}
	return []string{"--cert", s.CertFile, "--key", s.KeyFile, "--admin-cert", s.CertFile, "--admin-cert-key", s.KeyFile}
}

// scheme returns the URL scheme of the server's endpoints.
func (s *Server) scheme() string {
	if s.CertFile != "" {
		return "https"
	}
	return "http"
}
