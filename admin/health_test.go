package admin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestAdminKeyFailingBanner: a key in use that the health watch found
// failing shows a banner on the Keys page with the failed check and its
// explanation; none once it passes again.
func TestAdminKeyFailingBanner(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	app := MustApp(t, appOptions{s3: srv})
	org, email, password := app.MustOrg(t)
	key := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, key.ID)
	bg := context.Background()
	dest := recsink.Destination{Bucket: bucket, Prefix: "recordings", Region: s3test.Region, Endpoint: srv.Endpoint, ForcePathStyle: true, FileFormat: recsink.FormatMP4}
	c, _, err := app.Service.SaveStorage(bg, org.ID, recsink.ScopeOrganization, dest, key)
	if err != nil {
		t.Fatal(err)
	}
	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)
	if _, body := b.Get(t, "/admin/keys"); strings.Contains(body, "fails its checks") {
		t.Fatalf("banner for a healthy key:\n%s", body)
	}

	reason := "S3 does not know this access key ID: it is mistyped, or the key was deleted or deactivated."
	if _, err := app.Store.SetCredentialHealth(bg, c.ID, recsink.Now(), recsink.CredentialHealth{
		State: recsink.CredentialHealthFailing, Check: "HeadBucket", Code: "InvalidAccessKeyId", Reason: reason,
	}); err != nil {
		t.Fatal(err)
	}
	_, body := b.Get(t, "/admin/keys?fragment=live")
	for _, want := range []string{`id="failing-` + key.ID + `"`, "fails its checks", "HeadBucket", "InvalidAccessKeyId", "S3 does not know this access key ID"} {
		if !strings.Contains(body, want) {
			t.Fatalf("no %q in the Keys page:\n%s", want, body)
		}
	}

	if _, err := app.Store.SetCredentialHealth(bg, c.ID, recsink.Now(), recsink.CredentialHealth{State: recsink.CredentialHealthOK}); err != nil {
		t.Fatal(err)
	}
	if _, body := b.Get(t, "/admin/keys"); strings.Contains(body, "fails its checks") {
		t.Fatalf("banner after recovery:\n%s", body)
	}
}
