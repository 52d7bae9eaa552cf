package admin_test

import (
	"context"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/storetest"
)

// TestAdminRecordingsDuration: the Recordings page's list shows each
// recording's duration: a finished one from its start to its end, a
// running one from its start until now, marked "so far".
func TestAdminRecordingsDuration(t *testing.T) {
	t.Parallel()
	app := MustApp(t, appOptions{})
	org, email, password := app.MustOrg(t)
	ctx := context.Background()
	now := time.Now().UTC()

	done := storetest.NewRecording(org.ID, "/finished-room", recsink.RecordingUploaded)
	done.StartDate = now.Add(-3 * time.Hour)
	end := done.StartDate.Add(time.Hour + 23*time.Minute + 5*time.Second)
	done.EndDate = &end
	size := int64(123 << 20)
	done.SizeBytes = &size
	live := storetest.NewRecording(org.ID, "/live-room", recsink.RecordingRecording)
	live.StartDate = now.Add(-150 * time.Second)
	short := storetest.NewRecording(org.ID, "/short-room", recsink.RecordingUploaded)
	short.StartDate = now.Add(-time.Hour)
	shortEnd := short.StartDate.Add(42 * time.Second)
	short.EndDate = &shortEnd
	short.SizeBytes = &size
	for _, r := range []*recsink.Recording{done, live, short} {
		if err := app.Store.CreateRecording(ctx, r, storetest.TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
	}

	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)
	status, body := b.Get(t, "/admin/recordings")
	if status != http.StatusOK {
		t.Fatalf("recordings: %d\n%s", status, body)
	}
	if !regexp.MustCompile(`<th scope="col">Duration</th>`).MatchString(body) {
		t.Errorf("the recordings table has no Duration column:\n%s", body)
	}
	for id, want := range map[string]string{done.ID: "1 h 23 min", short.ID: "42 s", live.ID: `2 min <span class="muted">so far</span>`} {
		// The row's cells: room, state, started, then the duration.
		re := regexp.MustCompile(`(?s)` + id + `.*?<time [^>]*>[^<]*</time></td>\s*<td>(.*?)</td>`)
		got := re.FindStringSubmatch(body)
		if got == nil || got[1] != want {
			t.Errorf("recording %s: duration cell %q, want %q", id, got, want)
		} else {
			t.Logf("recording %s: duration %q", id, got[1])
		}
	}
}
