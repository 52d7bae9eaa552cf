package recsink

import "time"

// Meeting is a meeting room, in the shape of Whereby's REST API. A room may
// override its organization's destination with its own (a Credential whose
// scope is the meeting ID).
type Meeting struct {
	ID            string    `json:"meetingId"`
	OrgID         string    `json:"-"`
	RoomName      string    `json:"roomName"`
	StartDate     time.Time `json:"startDate"`
	EndDate       time.Time `json:"endDate"`
	RecordingType string    `json:"-"` // RecordingTypeNone, RecordingTypeLocal or RecordingTypeCloud
	StartTrigger  string    `json:"-"`
	CreatedAt     time.Time `json:"-"`
}

// Recording types of a meeting, as Whereby's recording.type.
const (
	// RecordingTypeNone: recording is disabled in the room.
	RecordingTypeNone = "none"
	// RecordingTypeLocal: Whereby records in the browser; recsink, which
	// receives recordings from a recorder in the cloud, has nothing to do.
	RecordingTypeLocal = "local"
	// RecordingTypeCloud: recordings go to the room's destination, else the
	// organization's; the default.
	RecordingTypeCloud = "cloud"
)

// CanRecord returns nil when recordings may be started in the room, else an
// ECONFLICT error that says why.
func (m *Meeting) CanRecord() error {
	switch m.RecordingType {
	case RecordingTypeNone:
		return &Error{Code: ECONFLICT, Field: "recording.type",
			Message: "recording is disabled in this room: it was created with recording.type \"none\""}
	case RecordingTypeLocal:
		return &Error{Code: ECONFLICT, Field: "recording.type",
			Message: "this room records in the browser (recording.type \"local\"): recsink takes only cloud recordings"}
	}
	return nil
}
