package storetest

import (
	"context"
	"testing"

	"github.com/recsink/recsink"
)

// testBadText gives the store IDs and names that are not text it can keep
// (invalid UTF-8, NUL): the answer is "not found" or "invalid", never an
// internal error. (PostgreSQL refuses such text; SQLite keeps any bytes.)
func testBadText(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Parallel()
	s, ctx := open(t), context.Background()
	org := MustCreateOrganization(t, s)
	for _, bad := range []string{"rec_\xff", "rec_\x00", "\xc3\x28", "a\x00b"} {
		calls := map[string]error{}
		_, calls["FindRecording"] = s.FindRecording(ctx, org.ID, bad)
		_, calls["FindRecordingByID"] = s.FindRecordingByID(ctx, bad)
		_, calls["FindMeeting"] = s.FindMeeting(ctx, org.ID, bad)
		_, calls["FindOrganizationByName"] = s.FindOrganizationByName(ctx, bad)
		_, calls["CurrentCredential"] = s.CurrentCredential(ctx, org.ID, bad)
		_, _, calls["ListRecordings"] = s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{RoomName: bad, Limit: 10})
		calls["MarkRecordingDeleted"] = s.MarkRecordingDeleted(ctx, org.ID, bad)
		for name, err := range calls {
			switch code := recsink.ErrorCode(err); code {
			case "", recsink.ENOTFOUND, recsink.EINVALID:
			default:
				t.Errorf("%s(%q): %v, want not found or invalid", name, bad, err)
			}
		}
	}
}
