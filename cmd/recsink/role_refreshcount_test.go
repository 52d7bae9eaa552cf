package main_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/oidc"
)

// TestRole_RefreshesCountedAcrossRestartAndKeyRotation states issue 13's
// proofs 2 and 4 with their figures: a recording on a role whose
// credentials go stale 2 s after each assumption runs through at least five
// refreshes (assumptions beyond the recording's first one and the first one
// after the restart), at least one of them after a restart in the middle;
// recsink's signing key is rotated mid-recording and the assumptions after
// it, with tokens signed by the new key, are accepted by SeaweedFS's STS;
// nothing is blocked and the object is byte-identical.
func TestRole_RefreshesCountedAcrossRestartAndKeyRotation(t *testing.T) {
	t.Parallel()
	e := mustRoleEnv(t, func(c *main.Config) {
		c.RoleSessionDuration = 15 * time.Minute // SeaweedFS's shortest
		c.RoleRefreshMargin = 15*time.Minute - 2*time.Second
		c.MaxDuration = 10 * time.Minute // 5 MiB parts
	})
	e.A.MustDo(t, 200, "PUT", "/v1/storage", e.Storage)
	assumed := func() int { return strings.Count(e.Main.Logs.String(), `msg="role assumed"`) }
	atStart := assumed()
	rec := MustStartRecording(t, e.A, mustMeeting(t, e.A))
	const chunks, rotateAt, restartAt = 9, 2, 5
	chunk := 6 << 20 // over one part: each chunk uploads a part
	data := randomBytes(t, chunks*chunk)
	var atRotation, atRestart int
	var newKID string
	for i := range chunks {
		switch i {
		case rotateAt:
			atRotation = assumed()
			k, err := e.Main.OIDC.Rotate(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			newKID = k.ID
		case restartAt:
			e.Main.Restart(t)
			atRestart = assumed()
		}
		off := int64(i * chunk)
		if resp := rec.Patch(t, off, bytes.NewReader(data[off:off+int64(chunk)])); resp.StatusCode != 204 {
			t.Fatalf("PATCH chunk %d: %d", i, resp.StatusCode)
		}
		total := off + int64(chunk)
		waitUploaded(t, e.A, rec.ID, total-total%(5<<20))
		time.Sleep(2500 * time.Millisecond) // pacing, as a live recorder: the credentials go stale in between
	}
	e.A.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	WaitState(t, e.A, rec.ID, recsink.RecordingUploaded, 60*time.Second)
	end := assumed()

	// The log runs on across the restart.
	beforeRestart, afterRestart := atRestart-atStart, end-atRestart
	refreshes := end - atStart - 2 // the recording's first assumption and the first after the restart are not refreshes
	t.Logf("role assumptions: %d before the restart, %d after (%d refreshes); %d after the signing key was rotated to %s",
		beforeRestart, afterRestart, refreshes, end-atRotation, newKID)
	if refreshes < 5 {
		t.Errorf("%d refreshes, want at least 5", refreshes)
	}
	if afterRestart < 2 {
		t.Errorf("%d assumptions after the restart, want the first and at least one refresh", afterRestart)
	}
	if end-atRotation < 2 {
		t.Errorf("%d assumptions after the signing key was rotated, want at least 2", end-atRotation)
	}
	if strings.Contains(e.Main.Logs.String(), "uploads are blocked") || strings.Contains(e.Main.Logs.String(), "assume role refused") {
		t.Errorf("a refusal or a block during the refreshes:\n%s", e.Main.Logs)
	}
	// The tokens recsink signs now carry the new key's ID.
	tok, err := e.Main.OIDC.Token(context.Background(), oidc.Subject(e.OrgA))
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil || h.KID != newKID {
		t.Errorf("token header %s: kid %q, want the rotated key %s", raw, h.KID, newKID)
	}
	if obj := e.Weed.GetObject(t, e.Bucket, rec.ObjectKey); !bytes.Equal(obj, data) {
		t.Fatalf("object differs from the %d bytes sent at byte %d", len(data), firstDiff(obj, data))
	}
}
