package main_test

import (
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
)

// TestKeyHealth_FailingRecovered: a saved key deleted in versitygw, with
// no recording running, gives credential.failing within one watch period
// and shows failing in GET /v1/credentials; the same key brought back
// gives credential.recovered and shows ok again.
func TestKeyHealth_FailingRecovered(t *testing.T) {
	t.Parallel()
	const period = 500 * time.Millisecond
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
	time.Sleep(4 * period)
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
		time.Sleep(50 * time.Millisecond)
	}
}
