package admin_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// mustVideo makes a 4 s VP9 video in MP4 with ffmpeg: a codec every
// Chromium build plays.
func mustVideo(tb testing.TB) []byte {
	tb.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		msg := "admin: ffmpeg not found (apt-get install ffmpeg)"
		if os.Getenv(s3test.EnvRequireTools) == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	out := filepath.Join(tb.TempDir(), "talk.mp4")
	cmd := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=duration=4:size=320x240:rate=25",
		"-c:v", "libvpx-vp9", "-deadline", "realtime", "-b:v", "300k", "-movflags", "+faststart", "-f", "mp4", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestAdminRecordingPlayDelete: an admin opens a finished recording from the
// list, the video plays from the bucket (its currentTime advances) under a
// CSP that allows media from the bucket's origin only, and deletes it after
// confirming: the object is gone from the bucket.
func TestAdminRecordingPlayDelete(t *testing.T) {
	t.Parallel()
	ctx := MustBrowser(t)
	media := mustVideo(t)
	srv := s3test.MustStart(t)
	app := MustApp(t, appOptions{s3: srv})
	org, email, password := app.MustOrg(t)
	key := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, key.ID)
	bg := context.Background()
	dest := recsink.Destination{Bucket: bucket, Prefix: "recordings", Region: s3test.Region, Endpoint: srv.Endpoint, ForcePathStyle: true, FileFormat: recsink.FormatMP4}
	if _, _, err := app.Service.SaveStorage(bg, org.ID, recsink.ScopeOrganization, dest, key); err != nil {
		t.Fatal(err)
	}
	meeting, err := app.Service.CreateMeeting(bg, org.ID, &recsink.Meeting{RoomName: "/design-review", EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, token, err := app.Service.StartRecording(bg, org.ID, meeting.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Service.Append(bg, rec.ID, token, 0, bytes.NewReader(media)); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Service.StopRecording(bg, org.ID, rec.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, _, err := app.Service.FindRecording(bg, org.ID, rec.ID)
		if err == nil && r.State == recsink.RecordingUploaded {
			rec = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not uploaded: %+v, %v", r, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}

	// The page's CSP names the bucket's origin for media, and nothing more.
	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)
	resp, err := b.client.Get(app.Server.URL + "/admin/recordings/" + rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || !strings.HasSuffix(csp, "; media-src "+srv.Endpoint) || strings.Count(csp, "media-src") != 1 {
		t.Fatalf("status %d, CSP %q", resp.StatusCode, csp)
	}

	base := app.Server.URL
	must(t, ctx,
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		submit(`form[action="/admin/signin"] button[type=submit]`),
		chromedp.Navigate(base+"/admin/recordings"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/admin/recordings/`+rec.ID+`"]`)),
		submit(`a[href="/admin/recordings/`+rec.ID+`"]`),
		chromedp.WaitVisible(chromedp.CSS("#player")),
		// Muted, so that the browser lets a script start it.
		chromedp.Evaluate[chromedp.Void](`(() => { const v = document.getElementById("player"); v.muted = true; v.play(); })()`),
		waitJS(`document.getElementById("player").currentTime > 1`),
		screenshot(t, "10-recording-playing"),
	)
	text := mainText(t, ctx)
	for _, want := range []string{rec.SHA256, rec.ObjectKey, key.ID, "Download", "started"} {
		if !strings.Contains(text, want) {
			t.Errorf("recording page lacks %q:\n%s", want, text)
		}
	}
	// The facts' labels are upper case by the style sheet.
	if !strings.Contains(strings.ToLower(text), "received by\nhttp") {
		t.Errorf("recording page does not say it was received by HTTP:\n%s", text)
	}

	// Delete: refused without the confirmation, done with it.
	must(t, ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("confirm-delete").required = false`),
		submit("#delete"),
		waitText("Tick the box to confirm"),
		chromedp.Click(chromedp.CSS("#confirm-delete")),
		submit("#delete"),
		waitText("Deleted: the object is no longer in the bucket"),
		screenshot(t, "11-recording-deleted"),
	)
	if left := srv.ListObjects(t, bucket, "recordings/"); len(left) != 0 {
		t.Fatalf("objects left after the delete: %v", left)
	}
	if r, _, err := app.Service.FindRecording(bg, org.ID, rec.ID); err != nil || r.State != recsink.RecordingDeleted {
		t.Fatalf("after the delete: %+v, %v", r, err)
	}

	// The Activity page shows who deleted it, from where.
	must(t, ctx,
		chromedp.Navigate(base+"/admin/activity"),
		waitText(recsink.AuditRecordingDeleted),
		screenshot(t, "12-activity"),
	)
	text = mainText(t, ctx)
	for _, want := range []string{email, "127.0.0.1", recsink.AuditRecordingDeleted, rec.ID} {
		if !strings.Contains(text, want) {
			t.Errorf("Activity page lacks %q:\n%s", want, text)
		}
	}
}
