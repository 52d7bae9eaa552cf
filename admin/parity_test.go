package admin_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/chromedp"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestAdminParity: with two recordings running on key A, the Storage page
// in Chromium saves key B, which may write only under another prefix, and
// says which permission it lacks to take over the running recordings; then
// key C, with A's access, with "can take over the 2 running recordings", as
// the REST save answers (TestRotation_Parity).
func TestAdminParity(t *testing.T) {
	t.Parallel()
	ctx := MustBrowser(t)
	srv := s3test.MustStart(t)
	app := MustApp(t, appOptions{s3: srv})
	org, email, password := app.MustOrg(t)
	bg := context.Background()
	a := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, a.ID)
	b := srv.CreateUser(t, "user")
	c := srv.CreateUser(t, "user")
	// B: the bucket, and objects under other/ only; A (the owner: a policy
	// binds it too in versitygw) and C: anything.
	policy, err := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{"Effect": "Allow", "Principal": map[string]any{"AWS": []string{b.ID}}, "Action": []string{"s3:*"},
				"Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/other/*"}},
			{"Effect": "Allow", "Principal": map[string]any{"AWS": []string{a.ID, c.ID}}, "Action": []string{"s3:*"},
				"Resource": []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.S3Client(t, a).PutBucketPolicy(bg, &awss3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(string(policy))}); err != nil {
		t.Fatal(err)
	}
	dest := recsink.Destination{Bucket: bucket, Prefix: "recordings", Region: s3test.Region, Endpoint: srv.Endpoint, ForcePathStyle: true, FileFormat: recsink.FormatMP4}
	if _, _, err := app.Service.SaveStorage(bg, org.ID, recsink.ScopeOrganization, dest, a); err != nil {
		t.Fatal(err)
	}
	meeting, err := app.Service.CreateMeeting(bg, org.ID, &recsink.Meeting{RoomName: "/all-hands", EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := app.Service.StartRecording(bg, org.ID, meeting.ID); err != nil {
			t.Fatal(err)
		}
	}

	save := func(prefix string, key recsink.AccessKey) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(app.Server.URL+"/admin/storage"),
			chromedp.WaitVisible(chromedp.CSS("#accessKeyId")),
			chromedp.SetValue(chromedp.CSS("#bucket"), bucket+"/"+prefix),
			chromedp.SetValue(chromedp.CSS("#accessKeyId"), key.ID),
			chromedp.SetValue(chromedp.CSS("#accessKeySecret"), key.Secret),
			submit(`button[value="save"]`),
			waitText("Saved. Every check passed; recordings that start from now on use key "+key.ID),
		)
	}
	parity := func() (string, string) {
		t.Helper()
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#parity")))
		if err != nil {
			t.Fatal(err)
		}
		class, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("parity").className`))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(text), class
	}

	must(t, ctx,
		chromedp.Navigate(app.Server.URL+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		submit(`form[action="/admin/signin"] button[type=submit]`),
		chromedp.WaitVisible(chromedp.CSS("#accessKeyId")),
	)
	// Without an OIDC issuer, the server offers access keys only.
	if v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById("auth-role") && !document.getElementById("oidcRoleArn") && !document.getElementById("role-setup")`)); err != nil || !v {
		t.Errorf("role choice shown on a server without an OIDC issuer: %v %v", v, err)
	}
	must(t, ctx,
		save("other", b),
		screenshot(t, "14-storage-parity-missing"),
	)
	text, class := parity()
	t.Logf("key B, on the page: %s", text)
	for _, want := range []string{"permission missing", "The new key cannot take over the 2 running recordings", "s3:ListMultipartUploadParts", "ListParts"} {
		mustContain(t, text, want)
	}
	if !strings.Contains(class, "alert-warn") {
		t.Errorf("parity warning shown as %q", class)
	}

	must(t, ctx,
		save("recordings", c),
		screenshot(t, "15-storage-parity-ok"),
	)
	text, class = parity()
	t.Logf("key C, on the page: %s", text)
	mustContain(t, text, "The new key can take over the 2 running recordings.")
	if !strings.Contains(class, "alert-ok") {
		t.Errorf("parity shown as %q", class)
	}
}
