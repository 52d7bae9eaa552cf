package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/oidc"
	"github.com/recsink/recsink/s3"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/sqlite"
)

// MustIssuer serves an identity provider on loopback, its keys in a fresh
// SQLite store, and returns it with the issuer URL. audience "" is the
// default.
func MustIssuer(tb testing.TB, audience string) *oidc.Provider {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "recsink.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	mk := make([]byte, 32)
	rand.Read(mk)
	box, err := secrets.NewBox(mk)
	if err != nil {
		tb.Fatal(err)
	}
	// The issuer is the server's own URL, known once it listens.
	var p *oidc.Provider
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	tb.Cleanup(srv.Close)
	if p, err = oidc.New(oidc.Config{Issuer: srv.URL, Audience: audience, Store: db, Box: box}); err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = p.Handler()
	return p
}

// TestStorage_Role checks role-based access against SeaweedFS's real STS:
// the checks pass for the organization the role trusts, with the temporary
// credentials, and each STS refusal gets its plain words.
func TestStorage_Role(t *testing.T) {
	t.Parallel()
	issuer := MustIssuer(t, "")
	otherAud := MustIssuer(t, "someone-else")           // its own issuer, registered with the default audience
	unregistered := MustIssuer(t, oidc.DefaultAudience) // no provider in IAM names its URL

	iam := &s3test.IAMConfig{}
	bucketName := "recsink-role-" + strings.ToLower(strings.NewReplacer("_", "0", "-", "0").Replace(recsink.RandomToken(6)))
	role := iam.OIDCRole("Recordings", issuer.Issuer(), oidc.DefaultAudience, oidc.Subject("org_a"), bucketName)
	roleAud := iam.OIDCRole("OtherAudience", otherAud.Issuer(), oidc.DefaultAudience, oidc.Subject("org_a"), bucketName)
	srv := s3test.MustStartSeaweedFS(t, s3test.SeaweedFSOptions{IAM: iam})
	ctx := context.Background()
	if _, err := srv.S3Client(t, srv.Admin).CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucketName)}); err != nil {
		t.Fatal(err)
	}

	newStorage := func(p *oidc.Provider) *s3.Storage {
		return s3.New(s3.Config{AllowEndpoints: []string{srv.HostPort}, Logger: slog.New(slog.DiscardHandler), Identity: p})
	}
	dest := recsink.Destination{Bucket: bucketName, Prefix: "rec", Endpoint: srv.Endpoint, ForcePathStyle: true, Region: s3test.Region}

	for _, tt := range []struct {
		name     string
		provider *oidc.Provider
		key      recsink.AccessKey
		code     string
		message  string // "" for success
	}{
		{name: "OK", provider: issuer, key: recsink.AccessKey{ID: role, Subject: oidc.Subject("org_a")}},
		{name: "ErrTrustPolicy", provider: issuer, key: recsink.AccessKey{ID: role, Subject: oidc.Subject("org_b")},
			code: "AccessDenied", message: "the role's trust policy does not allow this organization"},
		{name: "ErrRoleNotFound", provider: issuer, key: recsink.AccessKey{ID: "arn:aws:iam::role/Missing", Subject: oidc.Subject("org_a")},
			code: "AccessDenied", message: "The role was not found"},
		{name: "ErrAudience", provider: otherAud, key: recsink.AccessKey{ID: roleAud, Subject: oidc.Subject("org_a")},
			code: "InvalidParameterValue", message: "The audience does not match"},
		// SeaweedFS checks the trust policy, which names a provider, before
		// it looks for a provider of the token's issuer: an issuer it does
		// not know reads as the trust policy's refusal (AWS says "No
		// OpenIDConnect provider found", see TestClassifyAssumeRole).
		{name: "ErrProviderNotRegistered", provider: unregistered, key: recsink.AccessKey{ID: role, Subject: oidc.Subject("org_a")},
			code: "AccessDenied", message: "must name recsink's identity provider"},
		{name: "ErrRolesNotEnabled", provider: nil, key: recsink.AccessKey{ID: role, Subject: oidc.Subject("org_a")},
			message: "roleBased access is not enabled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newStorage(tt.provider)
			if tt.provider == nil {
				st = s3.New(s3.Config{AllowEndpoints: []string{srv.HostPort}, Logger: slog.New(slog.DiscardHandler)})
			}
			report, err := st.Check(ctx, dest, tt.key)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			logReport(t, report)
			names := checkNames(report)
			want := "Endpoint,AssumeRoleWithWebIdentity,HeadBucket,PutObject,DeleteObject,CreateMultipartUpload,AbortMultipartUpload"
			if strings.Join(names, ",") != want {
				t.Fatalf("checks = %v, want %s", names, want)
			}
			failed := firstFailed(report)
			if tt.message == "" {
				if !report.OK {
					t.Fatalf("report not OK: %+v", failed)
				}
				return
			}
			if report.OK || failed == nil || failed.Name != recsink.OpAssumeRole || failed.Code != tt.code ||
				!strings.Contains(failed.Message, tt.message) || failed.Permission != "sts:AssumeRoleWithWebIdentity" {
				t.Fatalf("first failure = %+v, want AssumeRoleWithWebIdentity %q containing %q", failed, tt.code, tt.message)
			}
		})
	}

	// A client on the role: a multipart upload with the temporary
	// credentials, byte-identical.
	t.Run("Upload", func(t *testing.T) {
		st := newStorage(issuer)
		c, err := st.Client(ctx, dest, recsink.AccessKey{ID: role, Subject: oidc.Subject("org_a")})
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("recsink role "), 500_000) // 6.5 MB: two parts
		key := "rec/role-upload.mkv"
		id, err := c.CreateMultipartUpload(ctx, key, "video/x-matroska", nil)
		if err != nil {
			t.Fatal(err)
		}
		var parts []recsink.Part
		for i, off := int32(1), int64(0); off < int64(len(data)); i++ {
			n := min(int64(5<<20), int64(len(data))-off)
			part, err := c.UploadPart(ctx, key, id, i, bytes.NewReader(data[off:off+n]), n)
			if err != nil {
				t.Fatalf("UploadPart %d: %v", i, err)
			}
			part.Offset = off
			parts = append(parts, part)
			off += n
		}
		if _, err := c.CompleteMultipartUpload(ctx, key, id, parts, ""); err != nil {
			t.Fatal(err)
		}
		if got := srv.GetObject(t, bucketName, key); !bytes.Equal(got, data) {
			t.Fatalf("object differs: %d bytes, want %d", len(got), len(data))
		}
	})

	// A client whose role refuses: the S3 call fails with the STS refusal,
	// as a key refusal (another saved key may work), never as an S3 one.
	t.Run("ClientRefused", func(t *testing.T) {
		st := newStorage(issuer)
		c, err := st.Client(ctx, dest, recsink.AccessKey{ID: role, Subject: oidc.Subject("org_b")})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = c.PutObject(ctx, "rec/x", "text/plain", nil, strings.NewReader("x"), 1)
		var se *recsink.StorageError
		if !errors.As(err, &se) || se.Op != recsink.OpAssumeRole || se.Reason != recsink.RoleTrustDenied || !se.KeyRefused() || se.Retryable() {
			t.Fatalf("PutObject on a refused role = %#v (%v), want a non-retryable key-refused AssumeRoleWithWebIdentity error", err, err)
		}
		if !strings.Contains(se.Explain(), "the role's trust policy does not allow this organization") {
			t.Fatalf("Explain = %q", se.Explain())
		}
		t.Logf("refused in %v: %s", time.Since(start), se.Explain())
	})

	// A session STS no longer honours (here: SeaweedFS restarted with a new
	// STS signing key; the same answer as an expired session,
	// InvalidAccessKeyId) is not a deleted key: the error says the session,
	// is retryable, and the next call assumes the role again and works.
	t.Run("SessionLost", func(t *testing.T) {
		st := newStorage(issuer)
		c, err := st.Client(ctx, dest, recsink.AccessKey{ID: role, Subject: oidc.Subject("org_a")})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.PutObject(ctx, "rec/before", "text/plain", nil, strings.NewReader("1"), 1); err != nil {
			t.Fatal(err)
		}
		srv.ReplaceIAM(t, func(c *s3test.IAMConfig) {
			key := make([]byte, 32)
			rand.Read(key)
			c.STS.SigningKey = base64.StdEncoding.EncodeToString(key)
		})
		err = c.PutObject(ctx, "rec/after", "text/plain", nil, strings.NewReader("2"), 1)
		var se *recsink.StorageError
		if !errors.As(err, &se) || se.Reason != recsink.RoleSessionExpired || se.KeyRefused() || !se.Retryable() {
			t.Fatalf("PutObject with a lost session = %v, want a retryable session error", err)
		}
		t.Logf("lost session: %s %d: %s", se.Code, se.StatusCode, se.Explain())
		if strings.Contains(se.Explain(), "deleted") {
			t.Fatalf("a lost session explained as a deleted key: %s", se.Explain())
		}
		if err := c.PutObject(ctx, "rec/after", "text/plain", nil, strings.NewReader("2"), 1); err != nil {
			t.Fatalf("PutObject after the role was assumed again: %v", err)
		}
	})
}
