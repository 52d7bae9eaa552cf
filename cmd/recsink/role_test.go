package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/oidc"
)

// freeAddr returns a loopback address with a free port: recsink's issuer
// URL must be known before SeaweedFS starts, and stay the same across a
// restart.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// mustCreateOrgID creates an organization and returns its API client and ID.
func (m *TestMain) mustCreateOrgID(tb testing.TB) (*Client, string) {
	tb.Helper()
	org, key, err := m.Service.CreateOrganization(context.Background(), "org-"+recsink.RandomToken(6))
	if err != nil {
		tb.Fatal(err)
	}
	return &Client{m: m, Key: key}, org.ID
}

// TestRole_SaveAndRecord is issue 13's first proof, against SeaweedFS's real
// STS and S3 with recsink's own issuer on loopback: a role whose trust
// policy pins organization A's sub; A saves roleBased storage (every check
// passes), records 20 MiB through the normal path, and the object is
// byte-identical; organization B naming the same role is refused at save.
func TestRole_SaveAndRecord(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := &TestMain{Logs: &syncBuffer{}}
	cfg := main.DefaultConfig()
	cfg.Addr, cfg.Data, cfg.LogLevel = addr, t.TempDir(), "debug"
	m.start(t, cfg)
	t.Cleanup(func() { m.Close() })
	a, orgA := m.mustCreateOrgID(t)
	b, _ := m.mustCreateOrgID(t)

	// The discovery document and the JWKS that STS reads.
	var disc oidc.Discovery
	getJSON(t, m.URL()+oidc.WellKnownPath, &disc)
	if disc.Issuer != "http://"+addr || disc.JWKSURI != "http://"+addr+oidc.JWKSPath {
		t.Fatalf("discovery: %+v", disc)
	}

	iam := &s3test.IAMConfig{}
	bucket := "recsink-role-" + strings.ToLower(recsink.RandomToken(6))
	role := iam.OIDCRole("Recordings", "http://"+addr, oidc.DefaultAudience, oidc.Subject(orgA), bucket)
	weed := s3test.MustStartSeaweedFS(t, s3test.SeaweedFSOptions{IAM: iam})
	if _, err := weed.S3Client(t, weed.Admin).CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	// Allow SeaweedFS's endpoint, known only now: restart on the same address.
	m.Config.AllowEndpoints = []string{weed.HostPort}
	m.Restart(t)

	storage := map[string]any{
		"bucket": bucket + "/recordings", "endpoint": weed.Endpoint, "region": s3test.Region, "forcePathStyle": true,
		"authenticationType": "roleBased", "oidcRoleArn": role,
	}
	start := time.Now()
	out := a.MustDo(t, 200, "PUT", "/v1/storage", storage)
	t.Logf("roleBased storage saved in %v: %v", time.Since(start).Round(time.Millisecond), out["check"])
	if out["authenticationType"] != "roleBased" || out["oidcRoleArn"] != role {
		t.Fatalf("PUT /v1/storage: %v", out)
	}

	// Organization B names the same role: refused, in plain words.
	status, refused := b.Do(t, "PUT", "/v1/storage", storage)
	if status != 422 || refused["code"] != "destination" {
		t.Fatalf("org B: status %d, want 422: %v", status, refused)
	}
	first := refused["checks"].([]any)[1].(map[string]any)
	if first["name"] != recsink.OpAssumeRole || first["ok"] != false {
		t.Fatalf("org B: first failing check %v", first)
	}
	mustContain(t, first["message"].(string), "the role's trust policy does not allow this organization")
	t.Logf("org B refused: %v: %v", first["code"], first["message"])
	b.MustDo(t, 404, "GET", "/v1/storage", nil)

	// 20 MiB through the normal recording path, on the role's credentials.
	meeting := a.MustDo(t, 201, "POST", "/v1/meetings", map[string]any{
		"endDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "roomNamePrefix": "standup",
	})["meetingId"].(string)
	rec := MustStartRecording(t, a, meeting)
	data := randomBytes(t, 20<<20)
	rec.MustPut(t, data)
	a.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	got := WaitState(t, a, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	if got["sizeBytes"] != float64(len(data)) {
		t.Fatalf("sizeBytes %v, want %d", got["sizeBytes"], len(data))
	}
	if obj := weed.GetObject(t, bucket, rec.ObjectKey); !bytes.Equal(obj, data) {
		t.Fatalf("object %s: %d bytes, differs from the %d sent at byte %d", rec.ObjectKey, len(obj), len(data), firstDiff(obj, data))
	}
}

func getJSON(tb testing.TB, url string, v any) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatal(err)
	}
}
