package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestStartRecording_RecordingType: a room created with Whereby's
// recording.type "none" (or "local") takes no recording, with a 409 that
// says why; a room created without recording options records.
func TestStartRecording_RecordingType(t *testing.T) {
	t.Parallel()
	n := MustOpenNode(t, MustOpenStore(t), newFakeS3(), "node-1", nil)
	orgID, defaultRoom := MustSetUp(t, n, "AKIATYPE")
	ctx := context.Background()

	for _, tt := range []struct {
		typ  string
		want string // "" means the start succeeds
	}{
		{"", ""},
		{recsink.RecordingTypeCloud, ""},
		{recsink.RecordingTypeNone, `recording.type "none"`},
		{recsink.RecordingTypeLocal, `recording.type "local"`},
	} {
		t.Run("Type"+tt.typ, func(t *testing.T) {
			m, err := n.CreateMeeting(ctx, orgID, &recsink.Meeting{RoomName: "/t-" + recsink.RandomToken(4), EndDate: time.Now().Add(time.Hour), RecordingType: tt.typ}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec, _, err := n.StartRecording(ctx, orgID, m.ID)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				if _, err := n.StopRecording(ctx, orgID, rec.ID); err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *recsink.Error
			if !errors.As(err, &e) || e.Code != recsink.ECONFLICT || e.Field != "recording.type" || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("start: %v, want a conflict naming %s", err, tt.want)
			}
		})
	}
	if m, err := n.FindMeeting(ctx, orgID, defaultRoom); err != nil || m.RecordingType != recsink.RecordingTypeCloud {
		t.Fatalf("a room created without a type: %+v, %v", m, err)
	}
}
