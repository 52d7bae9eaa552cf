package main_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestKeyHealth_FailingRecovered: a saved key deleted in versitygw, with
// no recording running, gives credential.failing within one watch period
// and shows failing in GET /v1/credentials; the same key brought back
// gives credential.recovered and shows ok again.
func TestKeyHealth_FailingRecovered(t *testing.T) {
	t.Parallel()
	const period = time.Second
	e, _, rcv, _ := mustWebhookEnv(t, func(c *main.Config) { c.CredentialCheckInterval = period })
	b := e.S3.CreateUser(t, "user")
	e.S3.PutBucketPolicy(t, e.Bucket, e.Key, e.Key.ID, b.ID)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	forB := func(d map[string]any) bool { return d["accessKeyId"] == b.ID }

	// A passing check first: the key is watched and found ok.
	waitHealth(t, e.Org, "organization/"+b.ID, func(h map[string]any) bool { return h["state"] == "ok" && h["checkedAt"] != nil }, 10*period)

	deleted := time.Now()
	e.S3.DeleteUser(t, b.ID)
	ev := rcv.WaitEvent(t, recsink.WebhookCredentialFailing, forB, 20*time.Second)
	t.Logf("credential.failing %s after the key was deleted (watch period %s): %v", time.Since(deleted).Round(time.Millisecond), period, ev["data"])
	if took := time.Since(deleted); took > 3*period {
		t.Errorf("credential.failing %s after the key was deleted; want about one watch period (%s)", took, period)
	}
	d := ev["data"].(map[string]any)
	// Usually HeadBucket; a later step when the key went during a check.
	if d["check"] == "" || d["code"] != "InvalidAccessKeyId" || d["state"] != "failing" {
		t.Fatalf("credential.failing: %v", d)
	}
	mustContain(t, d["message"].(string), "S3 does not know this access key ID")
	h := waitHealth(t, e.Org, "organization/"+b.ID, func(h map[string]any) bool { return h["state"] == "failing" }, 5*time.Second)
	if h["since"] == nil || h["reason"] == "" || h["check"] != d["check"] {
		t.Fatalf("health: %v", h)
	}
	t.Logf("GET /v1/credentials health: %v", h)
	if n := scrape(t, e.Main)["recsink_credentials_failing"]; n != 1 {
		t.Errorf("recsink_credentials_failing = %v while key B fails, want 1", n)
	}

	// Several more periods of failing send no second credential.failing.
	time.Sleep(4 * period) // several watch periods, in which no second credential.failing may be sent
	if evs, _ := rcv.eventsFor(recsink.WebhookCredentialFailing, forB); len(evs) != 1 {
		t.Fatalf("%d credential.failing events in one failing spell, want 1", len(evs))
	}

	e.S3.CreateUserWithKey(t, "user", b)
	rcv.WaitEvent(t, recsink.WebhookCredentialRecovered, forB, 20*time.Second)
	waitHealth(t, e.Org, "organization/"+b.ID, func(h map[string]any) bool { return h["state"] == "ok" && h["since"] == nil }, 5*time.Second)
	if n := scrape(t, e.Main)["recsink_credentials_failing"]; n != 0 {
		t.Errorf("recsink_credentials_failing = %v after recovery, want 0", n)
	}
}

// TestKeyHealth_ReplacedRecovered is issue 13's fifth proof as a customer
// lives it: a saved key deleted in versitygw, with no recording running,
// gives credential.failing within one watch period and the banner on the
// admin page (Storage and Keys); the admin saves a new working key on the
// Storage page, and the banner goes away and credential.recovered arrives
// for the failing key, naming the key that replaced it.
func TestKeyHealth_ReplacedRecovered(t *testing.T) {
	t.Parallel()
	const period = time.Second
	e, _, rcv, _ := mustWebhookEnv(t, func(c *main.Config) { c.CredentialCheckInterval = period })
	b := e.S3.CreateUser(t, "user")
	c := e.S3.CreateUser(t, "user")
	e.S3.PutBucketPolicy(t, e.Bucket, e.Key, e.Key.ID, b.ID, c.ID)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	forB := func(d map[string]any) bool { return d["accessKeyId"] == b.ID }
	waitHealth(t, e.Org, "organization/"+b.ID, func(h map[string]any) bool { return h["state"] == "ok" && h["checkedAt"] != nil }, 10*period)
	page := MustAdminPage(t, e.Main, e.Org)
	banner := `id="failing-` + b.ID + `"`

	deleted := time.Now()
	e.S3.DeleteUser(t, b.ID)
	ev := rcv.WaitEvent(t, recsink.WebhookCredentialFailing, forB, 20*time.Second)
	took := time.Since(deleted)
	t.Logf("credential.failing %s after the key was deleted (watch period %s)", took.Round(time.Millisecond), period)
	if took > 3*period {
		t.Errorf("credential.failing %s after the key was deleted; want about one watch period (%s)", took, period)
	}
	if d := ev["data"].(map[string]any); d["state"] != "failing" || d["code"] != "InvalidAccessKeyId" {
		t.Fatalf("credential.failing: %v", d)
	}
	for _, path := range []string{"/admin/storage", "/admin/keys"} {
		_, body := page.Get(t, path)
		for _, want := range []string{banner, "fails its checks", "InvalidAccessKeyId", "S3 does not know this access key ID"} {
			if !strings.Contains(body, want) {
				t.Fatalf("%s while key B fails lacks %q:\n%s", path, want, body)
			}
		}
	}

	// The admin saves key C on the Storage page.
	saved := time.Now()
	status, body := page.Post(t, "/admin/storage", url.Values{
		"action": {"save"}, "authenticationType": {"accessKey"}, "bucket": {e.Bucket + "/recordings"},
		"accessKeyId": {c.ID}, "accessKeySecret": {c.Secret}, "region": {s3test.Region},
		"endpoint": {e.S3.Endpoint}, "forcePathStyle": {"1"}, "fileFormat": {"mkv"},
	}, "/admin/storage")
	if status != 200 || !strings.Contains(body, "Saved. Every check passed; recordings that start from now on use key") {
		t.Fatalf("saving key C on the Storage page: %d\n%s", status, body)
	}
	if strings.Contains(body, banner) {
		t.Fatalf("the banner for key B is still shown once key C is saved:\n%s", body)
	}
	ev = rcv.WaitEvent(t, recsink.WebhookCredentialRecovered, forB, 20*time.Second)
	t.Logf("credential.recovered %s after key C was saved: %v", time.Since(saved).Round(time.Millisecond), ev["data"])
	d := ev["data"].(map[string]any)
	by, _ := d["replacedBy"].(map[string]any)
	if d["state"] != "ok" || by == nil || by["accessKeyId"] != c.ID {
		t.Fatalf("credential.recovered: %v", d)
	}
	mustContain(t, d["message"].(string), "it was replaced by key "+c.ID)
	for _, path := range []string{"/admin/storage", "/admin/keys"} {
		if _, body := page.Get(t, path); strings.Contains(body, "fails its checks") {
			t.Fatalf("%s after key C was saved still shows a failing banner:\n%s", path, body)
		}
	}
	waitHealth(t, e.Org, "organization/"+b.ID, func(h map[string]any) bool { return h["state"] == "ok" && h["since"] == nil }, 5*time.Second)
	if n := scrape(t, e.Main)["recsink_credentials_failing"]; n != 0 {
		t.Errorf("recsink_credentials_failing = %v once key C replaced key B, want 0", n)
	}
	// Key C is watched in turn and passes; B, replaced and held by no
	// recording, is watched no more and reported once.
	waitHealth(t, e.Org, "organization/"+c.ID, func(h map[string]any) bool { return h["state"] == "ok" && h["checkedAt"] != nil }, 10*period)
	time.Sleep(4 * period) // several watch periods, in which nothing more may be sent for B
	if evs, _ := rcv.eventsFor(recsink.WebhookCredentialFailing, forB); len(evs) != 1 {
		t.Errorf("%d credential.failing events for key B, want 1", len(evs))
	}
	if evs, _ := rcv.eventsFor(recsink.WebhookCredentialRecovered, forB); len(evs) != 1 {
		t.Errorf("%d credential.recovered events for key B, want 1", len(evs))
	}
}

// TestKeyHealth_ReplacedWhileRecording: a failing key that a running
// recording holds stays on the banner after a new key is saved (recordings
// still depend on it), and credential.recovered comes once the recording
// has moved to the new key and ended, so that no recording holds the failing
// key any more; the object is byte-identical.
func TestKeyHealth_ReplacedWhileRecording(t *testing.T) {
	t.Parallel()
	const period = time.Second
	e, meeting, rcv, _ := mustWebhookEnv(t, func(c *main.Config) { c.CredentialCheckInterval = period })
	b := e.S3.CreateUser(t, "user")
	c := e.S3.CreateUser(t, "user")
	e.S3.PutBucketPolicy(t, e.Bucket, e.Key, e.Key.ID, b.ID, c.ID)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	forB := func(d map[string]any) bool { return d["accessKeyId"] == b.ID }
	rec := MustStartRecording(t, e.Org, meeting)
	page := MustAdminPage(t, e.Main, e.Org)

	e.S3.DeleteUser(t, b.ID)
	rcv.WaitEvent(t, recsink.WebhookCredentialFailing, forB, 20*time.Second)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", c))
	// B is draining and still failing: the banner stays, no recovered yet.
	time.Sleep(2 * period) // a recovered sent at the save would have arrived by now
	if evs, _ := rcv.eventsFor(recsink.WebhookCredentialRecovered, forB); len(evs) != 0 {
		t.Fatalf("credential.recovered while a recording holds the failing key: %v", evs)
	}
	if _, body := page.Get(t, "/admin/keys"); !strings.Contains(body, `id="failing-`+b.ID+`"`) {
		t.Fatalf("no banner for the failing key a recording holds:\n%s", body)
	}

	// The recording's parts are refused with B: it moves to C and ends.
	data := randomBytes(t, 6<<20)
	rec.MustPut(t, data)
	e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	checkObject(t, e.S3, e.Bucket, rec.ObjectKey, data)
	ev := rcv.WaitEvent(t, recsink.WebhookCredentialRecovered, forB, 20*time.Second)
	d := ev["data"].(map[string]any)
	if by, _ := d["replacedBy"].(map[string]any); by == nil || by["accessKeyId"] != c.ID {
		t.Fatalf("credential.recovered: %v", d)
	}
	t.Logf("credential.recovered once the recording left key B: %v", d["message"])
	if _, body := page.Get(t, "/admin/keys"); strings.Contains(body, "fails its checks") {
		t.Fatalf("banner once no recording holds the failing key:\n%s", body)
	}
}

// waitHealth waits until the health of the credential "scope/accessKeyId"
// in GET /v1/credentials satisfies ok, and returns it.
func waitHealth(tb testing.TB, c *Client, key string, ok func(map[string]any) bool, within time.Duration) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		h, _ := credentialsByKey(tb, c)[key]["health"].(map[string]any)
		if h != nil && ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			tb.Fatalf("health of %s within %s: %v", key, within, h)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}
