package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// CredentialWakeLimit is how soon a watcher on one store handle must hear
// of a credential saved through another: issue 11's "within a second".
const CredentialWakeLimit = time.Second

// RunWatchCredentials checks that a credential saved or replaced through
// store handle a reaches a watcher on handle b (another node on the same
// database) within CredentialWakeLimit, and that the watch ends with its
// context. It reports the measured delays.
func RunWatchCredentials(t *testing.T, a, b recsink.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.WatchCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// await waits for orgID (an "" says anything may have changed, but the
	// organization must still come, unless orEmpty) and returns how long it
	// took.
	await := func(orgID string, orEmpty bool, limit time.Duration) time.Duration {
		t.Helper()
		began := time.Now()
		timer := time.NewTimer(limit)
		defer timer.Stop()
		for {
			select {
			case got, ok := <-ch:
				if !ok {
					t.Fatal("the watch ended early")
				}
				if got == orgID || orEmpty && got == "" {
					return time.Since(began)
				}
			case <-timer.C:
				t.Fatalf("organization %s not heard of within %v", orgID, limit)
			}
		}
	}

	// The first change may come before the listener is set up: a watch
	// that may have missed it says "" (anything may have changed) once it
	// listens. Either way, once the first word comes, it listens.
	warm := MustCreateOrganization(t, a)
	MustCreateCredential(t, a, warm.ID, recsink.ScopeOrganization, at(0))
	await(warm.ID, true, 10*time.Second)

	org := MustCreateOrganization(t, a)
	MustCreateCredential(t, a, org.ID, recsink.ScopeOrganization, at(0))
	saved := await(org.ID, false, CredentialWakeLimit)
	if err := a.ReplaceCurrentCredential(context.Background(), org.ID, recsink.ScopeOrganization, at(1)); err != nil {
		t.Fatal(err)
	}
	replaced := await(org.ID, false, CredentialWakeLimit)
	t.Logf("credential change heard on the other handle after %v (saved), %v (replaced)", saved, replaced)

	cancel()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("the watch did not end with its context")
		}
	}
}
