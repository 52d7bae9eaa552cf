package main_test

import (
	"strings"
	"testing"
	"time"

	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestRole_HealthWatched: the key health watch covers saved roles too
// (issue 13: "every saved key and role"). A role whose trust policy stops
// allowing the organization, with no recording running, shows failing in
// GET /v1/credentials with STS's refusal in plain words and counts in
// recsink_credentials_failing; the policy restored, it is ok again. Against
// SeaweedFS's real STS.
func TestRole_HealthWatched(t *testing.T) {
	t.Parallel()
	const period = 500 * time.Millisecond
	e := mustRoleEnv(t, func(c *main.Config) { c.CredentialCheckInterval = period })
	e.A.MustDo(t, 200, "PUT", "/v1/storage", e.Storage)
	gen := "organization/" + e.Role
	waitHealth(t, e.A, gen, func(h map[string]any) bool { return h["state"] == "ok" && h["checkedAt"] != nil }, 20*time.Second)

	var sub any
	revoked := time.Now()
	e.Weed.ReplaceIAM(t, func(c *s3test.IAMConfig) {
		cond := c.Roles[0].TrustPolicy["Statement"].([]map[string]any)[0]["Condition"].(map[string]any)["StringEquals"].(map[string]any)
		sub, cond["oidc:sub"] = cond["oidc:sub"], "org:someone-else"
	})
	back := time.Now()
	// ReplaceIAM restarts SeaweedFS: a check during the restart finds STS
	// not answering, which says nothing about the role and starts no
	// failing spell; the checks after it get the trust policy's refusal.
	h := waitHealth(t, e.A, gen, func(h map[string]any) bool {
		r, _ := h["reason"].(string)
		return h["state"] == "failing" && strings.Contains(r, "the role's trust policy does not allow this organization")
	}, 30*time.Second)
	if since, err := time.Parse(time.RFC3339Nano, h["since"].(string)); err != nil || since.Before(back.Add(-50*time.Millisecond)) {
		t.Errorf("failing since %v, before SeaweedFS was back at %s: STS not answering during its restart was reported as the role failing",
			h["since"], back.UTC().Format(time.RFC3339Nano))
	}
	t.Logf("role failing %v after its trust policy was changed (watch period %s): %v", time.Since(revoked).Round(time.Millisecond), period, h)
	if h["check"] != "AssumeRoleWithWebIdentity" {
		t.Errorf("failing check %v, want AssumeRoleWithWebIdentity", h["check"])
	}
	if n := scrape(t, e.Main)["recsink_credentials_failing"]; n != 1 {
		t.Errorf("recsink_credentials_failing = %v while the role fails, want 1", n)
	}

	e.Weed.ReplaceIAM(t, func(c *s3test.IAMConfig) {
		c.Roles[0].TrustPolicy["Statement"].([]map[string]any)[0]["Condition"].(map[string]any)["StringEquals"].(map[string]any)["oidc:sub"] = sub
	})
	restored := time.Now()
	waitHealth(t, e.A, gen, func(h map[string]any) bool { return h["state"] == "ok" && h["since"] == nil }, 30*time.Second)
	t.Logf("role ok again %v after the policy was restored", time.Since(restored).Round(time.Millisecond))
	if n := scrape(t, e.Main)["recsink_credentials_failing"]; n != 0 {
		t.Errorf("recsink_credentials_failing = %v after recovery, want 0", n)
	}
}
