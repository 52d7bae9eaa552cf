package admin

import (
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// recordingRow is one recording as the recordings table shows it.
type recordingRow struct {
	*recsink.Recording
	Room     string
	Duration time.Duration
	Live     bool
}

type recordingsData struct {
	Rows    []recordingRow
	Blocked int
	State   string // the state filter
	Next    string // the cursor of the next page
	States  []string
}

func (h *Handler) handleRecordings(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	q := r.URL.Query()
	d := &recordingsData{
		State: q.Get("state"),
		States: []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
			recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted},
	}
	// Newest first across pages: the store sorts, so that "Older
	// recordings" continues where this page stops.
	recs, next, err := h.cfg.Recordings.ListRecordings(r.Context(), s.OrgID, recsink.RecordingFilter{State: d.State, Cursor: q.Get("cursor"), Limit: 50,
		Sort: recsink.RecordingSort{Field: recsink.SortStartDate, Desc: true}})
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d.Next = next
	now := h.now()
	for _, rec := range recs {
		row := recordingRow{Recording: rec, Room: strings.TrimPrefix(rec.RoomName, "/"), Live: rec.Holding()}
		if rec.EndDate != nil {
			row.Duration = rec.EndDate.Sub(rec.StartDate)
		} else {
			row.Duration = now.Sub(rec.StartDate)
		}
		if rec.State == recsink.RecordingBlocked {
			d.Blocked++
		}
		d.Rows = append(d.Rows, row)
	}
	h.render(w, r, http.StatusOK, "recordings", &page{Title: "Recordings", Nav: "recordings", Session: s, Data: d})
}

// roomRow is one room with the destination and keys it uses.
type roomRow struct {
	*recsink.Meeting
	Room     string
	Own      *recsink.CredentialUsage   // the room's own current destination, if any
	Draining []*recsink.CredentialUsage // the room's replaced keys still held
	Stream   *roomStreamKey             // nil when live ingest is off
}

type roomsData struct {
	Rows      []roomRow
	OwnCount  int
	OrgKey    string // the organization's current key ID, used by rooms without their own
	OrgBucket string
	Live      bool // live ingest is on: the stream key columns show
}

func (h *Handler) handleRooms(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	_, meetings, err := h.roomNames(r, s)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	usages, err := h.cfg.Storage.ListCredentials(r.Context(), s.OrgID)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d := &roomsData{Live: h.cfg.Live.StreamKeys != nil}
	byScope := map[string][]*recsink.CredentialUsage{}
	for _, u := range usages {
		byScope[u.Scope] = append(byScope[u.Scope], u)
		if u.Scope == recsink.ScopeOrganization && u.State == recsink.CredentialCurrent {
			d.OrgKey, d.OrgBucket = u.AccessKeyID, u.Destination.BucketPath()
		}
	}
	for _, m := range meetings {
		row := roomRow{Meeting: m, Room: strings.TrimPrefix(m.RoomName, "/")}
		for _, u := range byScope[m.ID] {
			switch u.State {
			case recsink.CredentialCurrent:
				row.Own = u
			case recsink.CredentialDraining:
				row.Draining = append(row.Draining, u)
			}
		}
		if row.Stream, err = h.streamKeyOf(r, s, m.ID); err != nil {
			h.renderError(w, r, s, err)
			return
		}
		if row.Own != nil {
			d.OwnCount++
		}
		d.Rows = append(d.Rows, row)
	}
	// Rooms with their own destination first.
	sort.SliceStable(d.Rows, func(i, j int) bool { return d.Rows[i].Own != nil && d.Rows[j].Own == nil })
	h.render(w, r, http.StatusOK, "rooms", &page{Title: "Rooms", Nav: "rooms", Session: s, Data: d})
}
