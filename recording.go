package recsink

import (
	"slices"
	"strings"
	"time"
)

// Recording states.
const (
	RecordingRecording = "recording" // taking media and uploading parts
	RecordingBlocked   = "blocked"   // taking media; no saved key works, uploads wait
	RecordingStopping  = "stopping"  // stopped; the tail is being uploaded
	RecordingUploaded  = "uploaded"  // the object is complete in the bucket
	RecordingFailed    = "failed"    // cannot be completed; see LastError
	RecordingDeleted   = "deleted"   // the object was deleted through recsink
)

// Recording event types.
const (
	EventStarted            = "started"
	EventStopped            = "stopped"
	EventUploaded           = "uploaded"
	EventFailed             = "failed"
	EventUploadBlocked      = "upload_blocked"
	EventUploadResumed      = "upload_resumed"
	EventCredentialSwitched = "credential_switched"
	EventRecovered          = "recovered"
	EventDeleted            = "deleted"
	// EventDeleteRequested: a bulk delete took the recording; the object
	// is deleted in the background.
	EventDeleteRequested = "delete_requested"
	// EventDeleteFailed: a bulk delete could not delete the object; the
	// message says why.
	EventDeleteFailed = "delete_failed"
)

// Stop reasons.
const (
	StopRequested   = "requested"
	StopMaxDuration = "max_duration"
)

// Recording is one recording streamed into a customer's bucket while it runs.
type Recording struct {
	ID           string `json:"recordingId"`
	OrgID        string `json:"-"`
	MeetingID    string `json:"meetingId"`
	RoomName     string `json:"roomName"`
	State        string `json:"state"`
	CredentialID string `json:"-"`
	// AccessKeyID is the ID of the key of the credential the recording holds.
	AccessKeyID string `json:"-"`
	// Destination as resolved at start; the key is the credential's.
	Destination Destination `json:"-"`
	ObjectKey   string      `json:"objectKey"`
	UploadID    string      `json:"-"`
	// ChecksumAlgorithm is the full-object checksum the multipart upload
	// asked S3 for at start (ChecksumNone when the endpoint takes none):
	// every part and the completion carry it, whichever node continues.
	ChecksumAlgorithm ChecksumAlgorithm `json:"-"`
	// PartSize is the spool layout's base part size, fixed at start so that
	// part boundaries survive a restart with other settings.
	PartSize int64 `json:"-"`
	// IngestTokenHash is the SHA-256 of the recording's ingest token.
	IngestTokenHash []byte     `json:"-"`
	StartDate       time.Time  `json:"startDate"`
	EndDate         *time.Time `json:"endDate"`
	StopReason      string     `json:"stopReason,omitempty"`
	BytesReceived   int64      `json:"bytesReceived"`
	BytesUploaded   int64      `json:"bytesUploaded"`
	SizeBytes       *int64     `json:"sizeBytes"`
	SHA256          string     `json:"sha256,omitempty"`
	// Checksum is the object's full-object checksum as S3 verified and
	// reports it, "ALGORITHM:base64" ("CRC64NVME:..."), once it is
	// complete; what `head-object --checksum-mode ENABLED` prints.
	Checksum string `json:"checksum,omitempty"`
	// Source is how the recording is received, set at start:
	// SourceHTTP (the ingest API), SourceRTMP or SourceSRT (a live publish).
	Source    string    `json:"source"`
	LastError string    `json:"lastError,omitempty"`
	UpdatedAt time.Time `json:"-"`
	// Owner is the node that runs the recording; it is changed only by
	// LeaseStore, never by UpdateRecording.
	Owner Owner `json:"-"`
}

// Finished reports whether the recording will change no more.
func (r *Recording) Finished() bool {
	return r.State == RecordingUploaded || r.State == RecordingFailed || r.State == RecordingDeleted
}

// CanTransition reports whether a recording may move from state from to
// state to: recording<->blocked, recording|blocked -> stopping, stopping ->
// blocked, any unfinished state -> uploaded|failed, uploaded|failed ->
// deleted, and same -> same. Nothing leaves deleted, and nothing goes back to
// an unfinished state from a final one. (The stores also refuse recording
// onto a row that already has an end date: a stopped recording does not
// restart.) The stores enforce the same table in SQL.
func CanTransition(from, to string) bool {
	if from == to {
		return isState(from)
	}
	switch from {
	case RecordingRecording:
		return to == RecordingBlocked || to == RecordingStopping || to == RecordingUploaded || to == RecordingFailed
	case RecordingBlocked:
		return to == RecordingRecording || to == RecordingStopping || to == RecordingUploaded || to == RecordingFailed
	case RecordingStopping:
		return to == RecordingBlocked || to == RecordingUploaded || to == RecordingFailed
	case RecordingUploaded, RecordingFailed:
		return to == RecordingDeleted
	}
	return false
}

func isState(s string) bool {
	switch s {
	case RecordingRecording, RecordingBlocked, RecordingStopping, RecordingUploaded, RecordingFailed, RecordingDeleted:
		return true
	}
	return false
}

// Holding reports whether the recording still needs its credential.
func (r *Recording) Holding() bool {
	return r.State == RecordingRecording || r.State == RecordingBlocked || r.State == RecordingStopping
}

// RecordingEvent is one thing that happened to a recording.
type RecordingEvent struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Message string    `json:"message"`
}

// RecordingFilter selects recordings in a list.
type RecordingFilter struct {
	RoomName string
	State    string
	Cursor   string
	Limit    int
	// Sort orders the list; the zero value is creation order.
	Sort RecordingSort
}

// Fields a recording list can be sorted by: Whereby's sortBy values.
const (
	SortStartDate = "startDate"
	SortRoomName  = "roomName"
	// SortDuration orders by end date minus start date; recordings that
	// have not ended sort as shorter than any that has.
	SortDuration = "duration"
	// SortSize orders by the object's size, or the bytes received so far
	// while it has none.
	SortSize = "sizeInMegaBytes"
)

// RecordingSorts are the fields of SortStartDate and the others, in the order
// the API documents them.
var RecordingSorts = []string{SortStartDate, SortRoomName, SortDuration, SortSize}

// RecordingSort is the order of a recording list: a field of RecordingSorts
// and a direction. The zero value is creation order.
type RecordingSort struct {
	Field string
	Desc  bool
}

// String returns the sort in Whereby's form, "field:asc" or "field:desc";
// "" for creation order.
func (s RecordingSort) String() string {
	if s.Field == "" {
		return ""
	}
	if s.Desc {
		return s.Field + ":desc"
	}
	return s.Field + ":asc"
}

// ParseRecordingSort parses Whereby's sortBy, "field:asc" or "field:desc"
// (a field alone is ascending). "" is creation order.
func ParseRecordingSort(v string) (RecordingSort, error) {
	if v == "" {
		return RecordingSort{}, nil
	}
	field, dir, hasDir := strings.Cut(v, ":")
	s := RecordingSort{Field: field, Desc: dir == "desc"}
	if !slices.Contains(RecordingSorts, field) || hasDir && dir != "asc" && dir != "desc" {
		return RecordingSort{}, FieldErrorf("sortBy", "sortBy must be one of %s, each followed by :asc or :desc, such as startDate:desc",
			strings.Join(RecordingSorts, ", "))
	}
	return s, nil
}

// Upload returns the recording's multipart upload: its ID and the
// full-object checksum it asked for.
func (r *Recording) Upload() Upload {
	return Upload{ID: r.UploadID, Checksum: r.ChecksumAlgorithm}
}
