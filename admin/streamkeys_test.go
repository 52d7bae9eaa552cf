package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/s3test"
	"github.com/recsink/recsink/storetest"
)

var streamKeyRE = regexp.MustCompile(`rsl_[A-Za-z0-9_-]+`)

// TestAdminStreamKey: the Rooms page shows a room's stream key as not set;
// Replace shows the new key once with its publish URLs; the page then shows
// it set without the key; Revoke brings back "not set"; the audit trail has
// both with the admin as actor; another organization's admin can neither
// replace nor revoke it.
func TestAdminStreamKey(t *testing.T) {
	t.Parallel()
	app := MustApp(t, appOptions{})
	ctx := context.Background()
	org, email, password := app.MustOrg(t)
	m := storetest.NewMeeting(org.ID)
	m.EndDate = time.Now().Add(time.Hour)
	if err := app.Store.CreateMeeting(ctx, m); err != nil {
		t.Fatal(err)
	}
	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)

	rooms := func() string {
		t.Helper()
		status, body := b.Get(t, "/admin/rooms")
		if status != http.StatusOK {
			t.Fatalf("rooms: %d\n%s", status, body)
		}
		return body
	}
	body := rooms()
	if !strings.Contains(body, "not set") || !strings.Contains(body, "Replace stream key") {
		t.Fatalf("rooms page without a stream key:\n%s", body)
	}
	if strings.Contains(body, "/stream-key/revoke") {
		t.Errorf("Revoke shown for a room without a key")
	}

	// Without the CSRF token nothing is created.
	if resp, _ := b.Post(t, "/admin/rooms/"+m.ID+"/stream-key", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("replace without CSRF: %d, want 403", resp.StatusCode)
	}
	if _, err := app.Store.FindStreamKey(ctx, org.ID, m.ID); recsink.ErrorCode(err) != recsink.ENOTFOUND {
		t.Fatalf("key created without CSRF: %v", err)
	}

	resp, answer := b.Post(t, "/admin/rooms/"+m.ID+"/stream-key", url.Values{"csrf": {CSRF(t, body)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("replace: %d\n%s", resp.StatusCode, answer)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	key := streamKeyRE.FindString(answer)
	if key == "" {
		t.Fatalf("no key on the answer page:\n%s", answer)
	}
	for _, want := range []string{"rtmp://127.0.0.1:1935/live/" + key, "srt://127.0.0.1:9000?streamid=publish:" + key, recsink.WHIPPath + "</code>", "Authorization: Bearer"} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer page lacks %q:\n%s", want, answer)
		}
	}
	k, err := app.Store.FindStreamKeyByHash(ctx, recsink.HashToken(key))
	if err != nil || k.MeetingID != m.ID {
		t.Fatalf("the key shown is not the room's: %v %+v", err, k)
	}

	body = rooms()
	if strings.Contains(body, key) || streamKeyRE.MatchString(body) {
		t.Errorf("rooms page shows the key again")
	}
	if strings.Contains(body, "not set") || !strings.Contains(body, ">set<") || !strings.Contains(body, "last publish never") {
		t.Errorf("rooms page does not show the key set:\n%s", body)
	}

	// Another organization's admin can neither replace nor revoke it.
	_, email2, password2 := app.MustOrg(t)
	other := app.NewBrowser(t)
	other.MustSignIn(t, email2, password2)
	_, otherRooms := other.Get(t, "/admin/rooms")
	if resp, _ := other.Post(t, "/admin/rooms/"+m.ID+"/stream-key", url.Values{"csrf": {CSRF(t, otherRooms)}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("other organization's replace: %d, want 404", resp.StatusCode)
	}
	other.Post(t, "/admin/rooms/"+m.ID+"/stream-key/revoke", url.Values{"csrf": {CSRF(t, otherRooms)}})
	if _, err := app.Store.FindStreamKeyByHash(ctx, recsink.HashToken(key)); err != nil {
		t.Fatalf("another organization's admin changed the key: %v", err)
	}

	resp, answer = b.Post(t, "/admin/rooms/"+m.ID+"/stream-key/revoke", url.Values{"csrf": {CSRF(t, body)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/rooms" {
		t.Fatalf("revoke: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), answer)
	}
	if body = rooms(); !strings.Contains(body, "not set") {
		t.Errorf("rooms page after revoke:\n%s", body)
	}
	if _, err := app.Store.FindStreamKeyByHash(ctx, recsink.HashToken(key)); recsink.ErrorCode(err) != recsink.ENOTFOUND {
		t.Errorf("revoked key still found: %v", err)
	}

	events, _, err := app.Service.ListAudit(ctx, org.ID, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if e.Actor != email || e.Target != m.ID {
			t.Errorf("audit event %+v: want the admin as actor and the room as target", e)
		}
		got = append(got, e.Action)
	}
	if want := []string{recsink.AuditStreamKeyRevoked, recsink.AuditStreamKeySet}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("audit trail %v, want %v", got, want)
	}
}

// TestAdminRecordingSource: the Recordings page says how each recording was
// received: HTTP for one started through the API, RTMP for a live publish's.
func TestAdminRecordingSource(t *testing.T) {
	t.Parallel()
	srv := s3test.MustStart(t)
	app := MustApp(t, appOptions{s3: srv})
	org, email, password := app.MustOrg(t)
	key := srv.CreateUser(t, "user")
	bucket := srv.CreateBucket(t, key.ID)
	ctx := context.Background()
	dest := recsink.Destination{Bucket: bucket, Region: s3test.Region, Endpoint: srv.Endpoint, ForcePathStyle: true, FileFormat: recsink.FormatMKV}
	if _, _, err := app.Service.SaveStorage(ctx, org.ID, recsink.ScopeOrganization, dest, key); err != nil {
		t.Fatal(err)
	}
	m, err := app.Service.CreateMeeting(ctx, org.ID, &recsink.Meeting{RoomName: "/http-room", EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := app.Service.StartRecording(ctx, org.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Source != recsink.SourceHTTP {
		t.Errorf("source %q, want %q", rec.Source, recsink.SourceHTTP)
	}
	m2, err := app.Service.CreateMeeting(ctx, org.ID, &recsink.Meeting{RoomName: "/live-room", EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	live, _, err := app.Service.StartRecording(recsink.WithSource(ctx, recsink.SourceRTMP), org.ID, m2.ID)
	if err != nil {
		t.Fatal(err)
	}

	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)
	status, body := b.Get(t, "/admin/recordings")
	if status != http.StatusOK {
		t.Fatalf("recordings: %d\n%s", status, body)
	}
	for id, want := range map[string]string{rec.ID: "HTTP", live.ID: "RTMP"} {
		re := regexp.MustCompile(`(?s)` + id + `.*?<td class="source">([^<]*)</td>`)
		got := re.FindStringSubmatch(body)
		if got == nil || got[1] != want {
			t.Errorf("recording %s received by %v, want %s:\n%s", id, got, want, body)
		}
	}
}

// liveNow reports every room as live on SRT.
type liveNow struct{ recsink.StreamKeyService }

func (liveNow) LiveStatus(string) (bool, string) { return true, recsink.SourceSRT }

// TestAdminStreamKeyLive: a room with a publish live on its key shows "live
// now" with the protocol, and its last publish.
func TestAdminStreamKeyLive(t *testing.T) {
	t.Parallel()
	app := MustApp(t, appOptions{streamKeys: func(s recsink.StreamKeyService) recsink.StreamKeyService { return liveNow{s} }})
	ctx := context.Background()
	org, email, password := app.MustOrg(t)
	m := storetest.NewMeeting(org.ID)
	m.EndDate = time.Now().Add(time.Hour)
	if err := app.Store.CreateMeeting(ctx, m); err != nil {
		t.Fatal(err)
	}
	b := app.NewBrowser(t)
	b.MustSignIn(t, email, password)
	if _, body := b.Get(t, "/admin/rooms"); strings.Contains(body, "live now") {
		t.Errorf("a room without a key shows live now")
	}
	k := &recsink.StreamKey{OrgID: org.ID, MeetingID: m.ID, Hash: recsink.HashToken(recsink.NewStreamKey()), CreatedAt: time.Now().UTC()}
	if err := app.Store.PutStreamKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := app.Store.TouchStreamKey(ctx, m.ID, at); err != nil {
		t.Fatal(err)
	}
	_, body := b.Get(t, "/admin/rooms?fragment=live")
	for _, want := range []string{"live now (SRT)", `last publish <time datetime="2026-03-04T05:06:07Z"`} {
		if !strings.Contains(body, want) {
			t.Errorf("rooms page lacks %q:\n%s", want, body)
		}
	}
}
