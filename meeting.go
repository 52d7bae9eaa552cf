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
	RecordingType string    `json:"-"` // "none" or "cloud"
	StartTrigger  string    `json:"-"`
	CreatedAt     time.Time `json:"-"`
}
