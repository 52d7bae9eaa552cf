package main_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
)

// TestRole_DrainViewShowsRoleGenerations: switching an organization from a
// key to a role, and back, is a rotation like any other, and the drain view
// (GET /v1/credentials) shows the role's generation with the role ARN as its
// accessKeyId: current and holding the recording started on it, then
// draining with that recording while the key is current again, then
// drained once it is uploaded. Against SeaweedFS's real STS and S3.
func TestRole_DrainViewShowsRoleGenerations(t *testing.T) {
	t.Parallel()
	e := mustRoleEnv(t)
	keyStorage := map[string]any{
		"bucket": e.Bucket + "/recordings", "endpoint": e.Weed.Endpoint, "region": s3test.Region, "forcePathStyle": true,
		"accessKeyId": e.Weed.Admin.ID, "accessKeySecret": e.Weed.Admin.Secret,
	}
	keyGen, roleGen := "organization/"+e.Weed.Admin.ID, "organization/"+e.Role
	want := func(gen, state string, ids ...string) map[string]any {
		t.Helper()
		c := credentialsByKey(t, e.A)[gen]
		if c == nil || c["state"] != state || fmt.Sprint(activeIDs(c)) != fmt.Sprint(ids) {
			t.Fatalf("GET /v1/credentials %s: %v; want %s holding %v", gen, c, state, ids)
		}
		return c
	}

	// Key first: a recording on it.
	e.A.MustDo(t, 200, "PUT", "/v1/storage", keyStorage)
	onKey := MustStartRecording(t, e.A, mustMeeting(t, e.A))
	dataKey := randomBytes(t, 6<<20)
	onKey.MustPut(t, dataKey[:3<<20])

	// Key → role: the key drains with its recording, the role is current.
	e.A.MustDo(t, 200, "PUT", "/v1/storage", e.Storage)
	want(keyGen, recsink.CredentialDraining, onKey.ID)
	want(roleGen, recsink.CredentialCurrent)
	onRole := MustStartRecording(t, e.A, mustMeeting(t, e.A))
	dataRole := randomBytes(t, 7<<20)
	onRole.MustPut(t, dataRole[:4<<20])
	r := want(roleGen, recsink.CredentialCurrent, onRole.ID)
	t.Logf("role generation, current: %v", r)
	if got := e.A.MustDo(t, 200, "GET", "/v1/recordings/"+onRole.ID, nil)["credential"].(map[string]any)["accessKeyId"]; got != e.Role {
		t.Fatalf("the recording started after the switch holds %v, want the role %s", got, e.Role)
	}

	// Role → key: now the role's generation drains with its recording.
	e.A.MustDo(t, 200, "PUT", "/v1/storage", keyStorage)
	r = want(roleGen, recsink.CredentialDraining, onRole.ID)
	t.Logf("role generation, draining: %v", r)
	if r["safeToDeleteAfter"] == nil {
		t.Errorf("a draining role generation without safeToDeleteAfter: %v", r)
	}

	onKey.MustPut(t, dataKey[3<<20:])
	onRole.MustPut(t, dataRole[4<<20:])
	for _, rec := range []struct {
		s    Started
		data []byte
		cred string
	}{{onKey, dataKey, e.Weed.Admin.ID}, {onRole, dataRole, e.Role}} {
		e.A.MustDo(t, 200, "POST", "/v1/recordings/"+rec.s.ID+"/stop", nil)
		out := WaitState(t, e.A, rec.s.ID, recsink.RecordingUploaded, 60*time.Second)
		if got := out["credential"].(map[string]any)["accessKeyId"]; got != rec.cred {
			t.Errorf("recording %s finished on %v, want %s", rec.s.ID, got, rec.cred)
		}
		if obj := e.Weed.GetObject(t, e.Bucket, rec.s.ObjectKey); !bytes.Equal(obj, rec.data) {
			t.Errorf("object %s differs from the %d bytes sent at byte %d", rec.s.ObjectKey, len(rec.data), firstDiff(obj, rec.data))
		}
	}
	for end := time.Now().Add(10 * time.Second); ; {
		c := credentialsByKey(t, e.A)[roleGen]
		if c["state"] == recsink.CredentialDrained {
			t.Logf("role generation, drained: %v", c)
			break
		}
		if time.Now().After(end) {
			t.Fatalf("role generation after its recording was uploaded: %v, want drained", c)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}
