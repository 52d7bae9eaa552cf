package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/oidc"
)

// roleApp is the app serving recsink's own OIDC issuer on loopback, and a
// SeaweedFS whose STS trusts that issuer, with a role pinned to Org's sub
// that may read and write Bucket.
type roleApp struct {
	*App
	Weed            *s3test.SeaweedFS
	Org             *recsink.Organization
	APIKey          string
	Email, Password string
	Bucket, Role    string
}

func mustRoleApp(tb testing.TB) *roleApp {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	// The STS must know the issuer before it starts, and the role the
	// organization's sub, known once the app runs: a placeholder role
	// first, the real one once the organization exists.
	iam := &s3test.IAMConfig{}
	iam.OIDCRole("Placeholder", issuer, oidc.DefaultAudience, "org:none", "none")
	weed := s3test.MustStartSeaweedFS(tb, s3test.SeaweedFSOptions{IAM: iam})
	app := MustApp(tb, appOptions{ln: ln, allow: []string{weed.HostPort}})
	e := &roleApp{App: app, Weed: weed}
	e.Org, e.APIKey, e.Email, e.Password = app.MustOrgKey(tb)
	e.Bucket = weed.CreateBucket(tb, weed.Admin.ID)
	weed.ReplaceIAM(tb, func(c *s3test.IAMConfig) {
		c.Providers, c.Policies, c.Roles = nil, nil, nil
		e.Role = c.OIDCRole("Recordings", issuer, oidc.DefaultAudience, oidc.Subject(e.Org.ID), e.Bucket)
	})
	return e
}

// apiGet calls the REST API with the organization's key.
func (e *roleApp) apiGet(tb testing.TB, path string) map[string]any {
	tb.Helper()
	req, _ := http.NewRequest("GET", e.Server.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.APIKey)
	resp, err := e.Server.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(tb testing.TB, a, b string) bool {
	tb.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		tb.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		tb.Fatalf("%v: %s", err, b)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// TestAdminRoleStorage drives the Storage page in Chromium against
// SeaweedFS's real STS, with recsink's own issuer on loopback: choosing
// "Role (no key)" shows what to create in IAM (the identity provider URL,
// the audience, the trust policy with this organization's sub, as GET
// /v1/storage/role-setup answers them, and the permission policy); a wrong
// role ARN is refused with STS's refusal in plain words on the role ARN
// field; the right one is saved (AssumeRoleWithWebIdentity, then the S3
// checks, pass), and the page says it can take over the 2 recordings running
// on the access key it replaces. Another organization naming the same role is refused with
// "the role's trust policy does not allow this organization".
func TestAdminRoleStorage(t *testing.T) {
	t.Parallel()
	ctx := MustBrowser(t)
	e := mustRoleApp(t)
	base := e.Server.URL
	bg := context.Background()
	// Two recordings run on an access key: the role saved later must be
	// able to take them over.
	key := e.Weed.CreateUserFor(t, e.Bucket)
	dest := recsink.Destination{Bucket: e.Bucket, Prefix: "recordings", Region: s3test.Region, Endpoint: e.Weed.Endpoint, ForcePathStyle: true, FileFormat: recsink.FormatMKV}
	if _, _, err := e.Service.SaveStorage(bg, e.Org.ID, recsink.ScopeOrganization, dest, key); err != nil {
		t.Fatal(err)
	}
	meeting, err := e.Service.CreateMeeting(bg, e.Org.ID, &recsink.Meeting{RoomName: "/roles", EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := e.Service.StartRecording(bg, e.Org.ID, meeting.ID); err != nil {
			t.Fatal(err)
		}
	}

	must(t, ctx,
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), e.Email),
		chromedp.SendKeys(chromedp.CSS("#password"), e.Password),
		submit(`form[action="/admin/signin"] button[type=submit]`),
		chromedp.WaitVisible(chromedp.CSS("#auth-role")),
	)
	// The saved access key is shown: the role's parts are hidden.
	visible := func(sel string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(function(){var e=document.querySelector(`+jsString(sel)+`); return !!e && e.offsetParent !== null})()`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if !visible("#accessKeyId") || visible("#oidcRoleArn") || visible("#role-setup") {
		t.Fatalf("access key chosen: key field visible %v, role ARN visible %v, role setup visible %v", visible("#accessKeyId"), visible("#oidcRoleArn"), visible("#role-setup"))
	}
	must(t, ctx,
		chromedp.Click(chromedp.CSS("#auth-role")),
		chromedp.WaitVisible(chromedp.CSS("#oidcRoleArn")),
		chromedp.WaitVisible(chromedp.CSS("#trust-policy")),
		screenshot(t, "11-storage-role-setup"),
	)
	if visible("#accessKeyId") || visible("#accessKeySecret") {
		t.Fatal("role chosen: the access key fields are still shown")
	}

	// What the page shows is what GET /v1/storage/role-setup answers.
	setup := e.apiGet(t, "/v1/storage/role-setup")
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(s)
	}
	if got := text("#role-issuer"); got != base || got != setup["identityProviderUrl"] {
		t.Errorf("identity provider URL %q, want recsink's issuer %q (REST: %v)", got, base, setup["identityProviderUrl"])
	}
	if got := text("#role-audience"); got != oidc.DefaultAudience || got != setup["audience"] {
		t.Errorf("audience %q, want %q (REST: %v)", got, oidc.DefaultAudience, setup["audience"])
	}
	if got := text("#role-subject"); got != "org:"+e.Org.ID {
		t.Errorf("subject %q, want org:%s", got, e.Org.ID)
	}
	trust := text("#trust-policy")
	restTrust, _ := json.Marshal(setup["trustPolicy"])
	if !sameJSON(t, trust, string(restTrust)) {
		t.Errorf("trust policy on the page differs from GET /v1/storage/role-setup:\npage: %s\nREST: %s", trust, restTrust)
	}
	host := strings.TrimPrefix(base, "http://")
	mustContain(t, trust, `"`+host+`:sub": "org:`+e.Org.ID+`"`)
	mustContain(t, trust, `"`+host+`:aud": "`+oidc.DefaultAudience+`"`)
	mustContain(t, trust, `oidc-provider/`+host)
	if !visible("#policy") {
		t.Error("role chosen: the permission policy is not shown")
	}

	fill := func(arn string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.SetValue(chromedp.CSS("#bucket"), e.Bucket+"/recordings"),
			chromedp.SetValue(chromedp.CSS("#oidcRoleArn"), arn),
			chromedp.SetValue(chromedp.CSS("#region"), s3test.Region),
			chromedp.SetValue(chromedp.CSS("#endpoint"), e.Weed.Endpoint),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("forcePathStyle").checked = true`),
		)
	}

	// A wrong role ARN: not saved, STS's refusal in plain words on the field.
	must(t, ctx,
		fill("arn:aws:iam::role/NoSuchRole"),
		submit(`button[value="save"]`),
		waitText("Not saved"),
		screenshot(t, "12-storage-role-wrong-arn"),
	)
	page := mainText(t, ctx)
	fieldErr := text("#oidcRoleArn-err")
	t.Logf("wrong role ARN, on the field: %s", fieldErr)
	mustContain(t, fieldErr, "STS refused this role: The role was not found: no IAM role has this ARN.")
	mustContain(t, page, recsink.OpAssumeRole)
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("auth-role").checked && document.getElementById("oidcRoleArn").getAttribute("aria-invalid") === "true"`)); err != nil || !v {
		t.Errorf("after the refusal: role still chosen and its field marked invalid: %v %v", v, err)
	}
	if c, err := e.Service.FindStorage(bg, e.Org.ID, recsink.ScopeOrganization); err != nil || c.AccessKeyID != key.ID {
		t.Fatalf("a refused role was saved: %+v %v", c, err)
	}

	// The role: AssumeRoleWithWebIdentity and the S3 checks pass; saved.
	start := time.Now()
	must(t, ctx,
		fill(e.Role),
		submit(`button[value="save"]`),
		waitText("Saved. Every check passed"),
		screenshot(t, "13-storage-role-saved"),
	)
	t.Logf("role saved through the page in %v", time.Since(start).Round(time.Millisecond))
	page = mainText(t, ctx)
	mustContain(t, page, "recordings that start from now on use role "+e.Role)
	mustContain(t, page, "In use: "+e.Bucket+"/recordings with role "+e.Role)
	// Permission parity, proven with the role's own credentials on the
	// running uploads (ListParts, a probe PutObject and DeleteObject).
	parity := text("#parity")
	t.Logf("parity on the page: %s", parity)
	mustContain(t, parity, "The new role can take over the 2 running recordings.")
	c, err := e.Service.FindStorage(bg, e.Org.ID, recsink.ScopeOrganization)
	if err != nil || c.AccessKeyID != e.Role || c.Destination.Bucket != e.Bucket {
		t.Fatalf("saved storage: %+v, %v", c, err)
	}
	if rest := e.apiGet(t, "/v1/storage"); rest["authenticationType"] != recsink.AuthRoleBased || rest["oidcRoleArn"] != e.Role {
		t.Fatalf("GET /v1/storage after the page saved a role: %v", rest)
	}
	// Reloaded, the page opens on the saved role.
	must(t, ctx, chromedp.Navigate(base+"/admin/storage"), chromedp.WaitVisible(chromedp.CSS("#oidcRoleArn")))
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#oidcRoleArn"))); err != nil || v != e.Role {
		t.Fatalf("role ARN field after reload: %q %v", v, err)
	}

	// Another organization names the same role: the trust policy pins A's
	// sub, so STS refuses, and the page says so in plain words.
	_, email, password := e.MustOrg(t)
	b := e.NewBrowser(t)
	b.MustSignIn(t, email, password)
	_, body := b.Get(t, "/admin/storage")
	resp, body := b.Post(t, "/admin/storage", url.Values{
		"csrf": {CSRF(t, body)}, "action": {"save"}, "authenticationType": {recsink.AuthRoleBased}, "oidcRoleArn": {e.Role},
		"bucket": {e.Bucket + "/recordings"}, "region": {s3test.Region}, "endpoint": {e.Weed.Endpoint}, "forcePathStyle": {"1"}, "fileFormat": {"mp4"},
	})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("other organization: %d, want 422", resp.StatusCode)
	}
	for _, want := range []string{"Not saved", `id="oidcRoleArn-err"`, "the role&#39;s trust policy does not allow this organization"} {
		if !strings.Contains(body, want) {
			t.Fatalf("other organization's page lacks %q:\n%s", want, body)
		}
	}
}

// jsString quotes s for a script.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// mustContain fails tb unless s contains sub.
func mustContain(tb testing.TB, s, sub string) {
	tb.Helper()
	if !strings.Contains(s, sub) {
		tb.Fatalf("%q not in:\n%s", sub, s)
	}
}
