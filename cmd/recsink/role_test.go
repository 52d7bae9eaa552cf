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

// roleEnv is recsink on a fixed loopback address (its issuer URL) and a
// SeaweedFS whose STS trusts that issuer, with a role pinned to organization
// A's sub, read and write on Bucket.
type roleEnv struct {
	Main    *TestMain
	Weed    *s3test.SeaweedFS
	A, B    *Client
	OrgA    string
	Role    string
	Bucket  string
	Storage map[string]any // roleBased storage body for PUT /v1/storage
}

func mustRoleEnv(tb testing.TB, opts ...func(*main.Config)) *roleEnv {
	tb.Helper()
	addr := freeAddr(tb)
	m := &TestMain{Logs: &syncBuffer{}}
	cfg := main.DefaultConfig()
	cfg.Addr, cfg.Data, cfg.LogLevel = addr, tb.TempDir(), "debug"
	for _, o := range opts {
		o(&cfg)
	}
	m.start(tb, cfg)
	tb.Cleanup(func() { m.Close() })
	e := &roleEnv{Main: m}
	e.A, e.OrgA = m.mustCreateOrgID(tb)
	e.B, _ = m.mustCreateOrgID(tb)

	iam := &s3test.IAMConfig{}
	e.Bucket = "recsink-role-" + strings.ToLower(strings.NewReplacer("_", "0", "-", "0").Replace(recsink.RandomToken(6)))
	e.Role = iam.OIDCRole("Recordings", "http://"+addr, oidc.DefaultAudience, oidc.Subject(e.OrgA), e.Bucket)
	e.Weed = s3test.MustStartSeaweedFS(tb, s3test.SeaweedFSOptions{IAM: iam})
	if _, err := e.Weed.S3Client(tb, e.Weed.Admin).CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(e.Bucket)}); err != nil {
		tb.Fatal(err)
	}
	// Allow SeaweedFS's endpoint, known only now: restart on the same address.
	m.Config.AllowEndpoints = []string{e.Weed.HostPort}
	m.Restart(tb)
	e.Storage = map[string]any{
		"bucket": e.Bucket + "/recordings", "endpoint": e.Weed.Endpoint, "region": s3test.Region, "forcePathStyle": true,
		"authenticationType": "roleBased", "oidcRoleArn": e.Role,
	}
	return e
}

// mustMeeting creates a meeting of c and returns its ID.
func mustMeeting(tb testing.TB, c *Client) string {
	tb.Helper()
	return c.MustDo(tb, 201, "POST", "/v1/meetings", map[string]any{
		"endDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "roomNamePrefix": "standup",
	})["meetingId"].(string)
}

// TestRole_SaveAndRecord is issue 13's first proof, against SeaweedFS's real
// STS and S3 with recsink's own issuer on loopback: a role whose trust
// policy pins organization A's sub; A saves roleBased storage (every check
// passes), records 20 MiB through the normal path, and the object is
// byte-identical; organization B naming the same role is refused at save.
func TestRole_SaveAndRecord(t *testing.T) {
	t.Parallel()
	e := mustRoleEnv(t)
	a, b := e.A, e.B

	// The discovery document and the JWKS that STS reads.
	var disc oidc.Discovery
	getJSON(t, e.Main.URL()+oidc.WellKnownPath, &disc)
	if disc.Issuer != e.Main.URL() || disc.JWKSURI != e.Main.URL()+oidc.JWKSPath {
		t.Fatalf("discovery: %+v", disc)
	}

	// What the customer creates in IAM.
	setup := a.MustDo(t, 200, "GET", "/v1/storage/role-setup", nil)
	if setup["identityProviderUrl"] != e.Main.URL() || setup["audience"] != oidc.DefaultAudience || setup["subject"] != "org:"+e.OrgA {
		t.Fatalf("role setup: %v", setup)
	}
	policy, _ := json.Marshal(setup["trustPolicy"])
	mustContain(t, string(policy), `:sub":"org:`+e.OrgA+`"`)

	start := time.Now()
	out := a.MustDo(t, 200, "PUT", "/v1/storage", e.Storage)
	t.Logf("roleBased storage saved in %v: %v", time.Since(start).Round(time.Millisecond), out["check"])
	if out["authenticationType"] != "roleBased" || out["oidcRoleArn"] != e.Role {
		t.Fatalf("PUT /v1/storage: %v", out)
	}

	// Organization B names the same role: refused, in plain words.
	status, refused := b.Do(t, "PUT", "/v1/storage", e.Storage)
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

	// The room destination route takes a role too.
	room := mustMeeting(t, a)
	if out := a.MustDo(t, 200, "PUT", "/v1/meetings/"+room+"/recording/destination", e.Storage); out["authenticationType"] != "roleBased" {
		t.Fatalf("room destination: %v", out)
	}
	b.MustDo(t, 422, "PUT", "/v1/meetings/"+mustMeeting(t, b)+"/recording/destination", e.Storage)

	// 20 MiB through the normal recording path, on the role's credentials
	// (the room's destination).
	rec := MustStartRecording(t, a, room)
	data := randomBytes(t, 20<<20)
	rec.MustPut(t, data)
	a.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	got := WaitState(t, a, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	if got["sizeBytes"] != float64(len(data)) {
		t.Fatalf("sizeBytes %v, want %d", got["sizeBytes"], len(data))
	}
	if obj := e.Weed.GetObject(t, e.Bucket, rec.ObjectKey); !bytes.Equal(obj, data) {
		t.Fatalf("object %s: %d bytes, differs from the %d sent at byte %d", rec.ObjectKey, len(obj), len(data), firstDiff(obj, data))
	}
}

// TestRole_Refresh is the second proof: with a refresh margin that makes
// the temporary credentials stale every 2 s, a recording that runs through
// at least five refreshes, with recsink's signing key rotated and recsink
// restarted in the middle, uploads every part and completes byte-identical.
func TestRole_Refresh(t *testing.T) {
	t.Parallel()
	e := mustRoleEnv(t, func(c *main.Config) {
		// SeaweedFS's shortest session is 15 min; refreshed 2 s after each assume.
		c.RoleSessionDuration = 15 * time.Minute
		c.RoleRefreshMargin = 15*time.Minute - 2*time.Second
		// 5 MiB parts (the minimum), so that parts upload while it records.
		c.MaxDuration = 10 * time.Minute
	})
	e.A.MustDo(t, 200, "PUT", "/v1/storage", e.Storage)
	rec := MustStartRecording(t, e.A, mustMeeting(t, e.A))
	chunk := 6 << 20 // over one part, so that each chunk uploads
	data := randomBytes(t, 8*chunk)
	assumed := func() int { return strings.Count(e.Main.Logs.String(), `msg="role assumed"`) }
	before := assumed()
	began := time.Now()
	for i := range 8 {
		switch i {
		case 2:
			// Proof 4: the signing key rotated mid-recording; STS fetches
			// the JWKS again for the new kid, nothing is refused.
			k, err := e.Main.OIDC.Rotate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("signing key rotated to %s", k.ID)
		case 4:
			e.Main.Restart(t) // the same address: the ingest URL still works
		}
		off := int64(i * chunk)
		if got := rec.Offset(t); got != off {
			t.Fatalf("offset %d before chunk %d, want %d", got, i, off)
		}
		if resp := rec.Patch(t, off, bytes.NewReader(data[off:off+int64(chunk)])); resp.StatusCode != 204 {
			t.Fatalf("PATCH chunk %d: %d", i, resp.StatusCode)
		}
		total := off + int64(chunk)
		waitUploaded(t, e.A, rec.ID, total-total%(5<<20))
		time.Sleep(2500 * time.Millisecond) // pacing the recorder, as a live one is: let the credentials go stale
	}
	e.A.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.A, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	n := assumed() - before
	t.Logf("%d role assumptions (credentials refreshed) in %v, across a restart", n, time.Since(began).Round(time.Second))
	if n < 5 {
		t.Fatalf("%d assumptions, want at least 5 refreshes", n)
	}
	if strings.Contains(e.Main.Logs.String(), "uploads are blocked") {
		t.Errorf("the recording was blocked during refreshes:\n%s", e.Main.Logs)
	}
	if obj := e.Weed.GetObject(t, e.Bucket, rec.ObjectKey); !bytes.Equal(obj, data) {
		t.Fatalf("object differs from the %d bytes sent at byte %d", len(data), firstDiff(obj, data))
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

// TestRole_Revoked is the third proof: the role's trust policy stops
// allowing the organization mid-recording; at the next refresh the
// recording goes blocked with STS's refusal in plain words, media keeps
// arriving; restored, it resumes by itself, and the object is
// byte-identical.
func TestRole_Revoked(t *testing.T) {
	t.Parallel()
	e := mustRoleEnv(t, func(c *main.Config) {
		c.RoleSessionDuration = 15 * time.Minute
		c.RoleRefreshMargin = 15*time.Minute - 2*time.Second
		c.MaxDuration = 10 * time.Minute
	})
	e.A.MustDo(t, 200, "PUT", "/v1/storage", e.Storage)
	rec := MustStartRecording(t, e.A, mustMeeting(t, e.A))
	chunk := int64(6 << 20)
	data := randomBytes(t, int(3*chunk))
	send := func(i int64) {
		t.Helper()
		if resp := rec.Patch(t, i*chunk, bytes.NewReader(data[i*chunk:(i+1)*chunk])); resp.StatusCode != 204 {
			t.Fatalf("PATCH chunk %d: %d", i, resp.StatusCode)
		}
	}
	send(0)
	waitUploaded(t, e.A, rec.ID, 5<<20)

	var sub any
	e.Weed.ReplaceIAM(t, func(c *s3test.IAMConfig) {
		cond := c.Roles[0].TrustPolicy["Statement"].([]map[string]any)[0]["Condition"].(map[string]any)["StringEquals"].(map[string]any)
		sub, cond["oidc:sub"] = cond["oidc:sub"], "org:someone-else"
	})
	time.Sleep(2500 * time.Millisecond) // let the credentials go stale: the next upload must assume the role again
	send(1)
	blocked := WaitState(t, e.A, rec.ID, recsink.RecordingBlocked, 30*time.Second)
	mustContain(t, blocked["lastError"].(string), "the role's trust policy does not allow this organization")
	t.Logf("blocked: %v", blocked["lastError"])

	e.Weed.ReplaceIAM(t, func(c *s3test.IAMConfig) {
		c.Roles[0].TrustPolicy["Statement"].([]map[string]any)[0]["Condition"].(map[string]any)["StringEquals"].(map[string]any)["oidc:sub"] = sub
	})
	restored := time.Now()
	WaitState(t, e.A, rec.ID, recsink.RecordingRecording, 60*time.Second)
	t.Logf("resumed %v after the trust policy was restored", time.Since(restored).Round(time.Millisecond))
	send(2)
	e.A.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.A, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	if obj := e.Weed.GetObject(t, e.Bucket, rec.ObjectKey); !bytes.Equal(obj, data) {
		t.Fatalf("object differs from the %d bytes sent at byte %d", len(data), firstDiff(obj, data))
	}
}
