package admin

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// maxHolding bounds the recordings fetched for one key's timeline.
const maxHolding = 50

// keyView is one access key, over every generation that used it: an access
// key is what the admin deletes in IAM, so that is the unit shown.
type keyView struct {
	AccessKeyID string
	State       string   // recsink.CredentialCurrent, Draining or Drained
	Scopes      []string // where it is or was used: "Organization", "Room ..."
	Bucket      string
	SavedAt     time.Time
	ReplacedAt  *time.Time
	Holding     []*recsink.Recording
	HoldingMore int // holding recordings beyond those fetched
	SafeAfter   *time.Time
	Timeline    *timeline
	// Failing is what the key health watch found wrong with a generation
	// in use (current or draining); nil while its checks pass.
	Failing *recsink.CredentialHealth
}

// step is one of the spec's four rotation steps, with its live state.
type step struct {
	Title  string
	Detail string
	State  string // "done", "active", "todo"
}

type keysData struct {
	Keys      []*keyView
	Steps     []step
	Current   *keyView // the organization's current key
	Old       *keyView // the organization's previous key, when one was rotated out
	Rotating  bool
	NoStorage bool
	// Failing lists the keys in use whose last health check failed: the
	// banner above the page.
	Failing []*keyView
}

// loadKeys builds the keys view of the organization from ListCredentials,
// with the holding recordings of each key.
func (h *Handler) loadKeys(r *http.Request, s *recsink.AdminSession, rooms map[string]string) (*keysData, []*recsink.CredentialUsage, error) {
	usages, err := h.cfg.Storage.ListCredentials(r.Context(), s.OrgID)
	if err != nil {
		return nil, nil, err
	}
	now := h.now()
	byKey := map[string]*keyView{}
	var order []*keyView
	recs := map[string]*recsink.Recording{}
	for _, u := range usages {
		k := byKey[u.AccessKeyID]
		if k == nil {
			k = &keyView{AccessKeyID: u.AccessKeyID, State: recsink.CredentialDrained}
			byKey[u.AccessKeyID] = k
			order = append(order, k)
		}
		if label := scopeLabel(u.Scope, rooms); !slices.Contains(k.Scopes, label) {
			k.Scopes = append(k.Scopes, label)
		}
		if !u.CreatedAt.Before(k.SavedAt) {
			k.SavedAt, k.Bucket = u.CreatedAt, u.Destination.BucketPath()
		}
		switch u.State {
		case recsink.CredentialCurrent:
			k.State, k.ReplacedAt = recsink.CredentialCurrent, nil
		case recsink.CredentialDraining:
			if k.State != recsink.CredentialCurrent {
				k.State = recsink.CredentialDraining
			}
		}
		if k.State != recsink.CredentialCurrent && u.ReplacedAt != nil && (k.ReplacedAt == nil || u.ReplacedAt.After(*k.ReplacedAt)) {
			k.ReplacedAt = u.ReplacedAt
		}
		if u.Health.State == recsink.CredentialHealthFailing && u.State != recsink.CredentialDrained && k.Failing == nil {
			hl := u.Health
			k.Failing = &hl
		}
		if u.SafeToDeleteAfter != nil && (k.SafeAfter == nil || u.SafeToDeleteAfter.After(*k.SafeAfter)) {
			t := *u.SafeToDeleteAfter
			k.SafeAfter = &t
		}
		for _, id := range u.ActiveRecordings {
			if len(k.Holding) >= maxHolding {
				k.HoldingMore++
				continue
			}
			rec, ok := recs[id]
			if !ok {
				rec, _, err = h.cfg.Recordings.FindRecording(r.Context(), s.OrgID, id)
				if recsink.ErrorCode(err) == recsink.ENOTFOUND {
					continue // finished and gone between the two reads
				} else if err != nil {
					return nil, nil, err
				}
				recs[id] = rec
			}
			k.Holding = append(k.Holding, rec)
		}
	}
	for _, k := range order {
		sort.Slice(k.Holding, func(i, j int) bool { return k.Holding[i].StartDate.Before(k.Holding[j].StartDate) })
		if len(k.Holding) > 0 {
			k.Timeline = h.newTimeline(k, now)
		}
	}
	// Current first, then draining, then drained; newest first within each.
	rank := map[string]int{recsink.CredentialCurrent: 0, recsink.CredentialDraining: 1, recsink.CredentialDrained: 2}
	sort.SliceStable(order, func(i, j int) bool {
		if rank[order[i].State] != rank[order[j].State] {
			return rank[order[i].State] < rank[order[j].State]
		}
		return order[i].SavedAt.After(order[j].SavedAt)
	})
	d := &keysData{Keys: order}
	for _, k := range order {
		if k.Failing != nil {
			d.Failing = append(d.Failing, k)
		}
	}
	d.Current, d.Old = orgKeys(usages, byKey)
	d.NoStorage = d.Current == nil
	d.Rotating = d.Old != nil
	d.Steps = h.steps(d, now)
	return d, usages, nil
}

// orgKeys returns the organization scope's current key and the key it
// replaced most recently (nil when it has never been rotated).
func orgKeys(usages []*recsink.CredentialUsage, byKey map[string]*keyView) (cur, old *keyView) {
	for _, u := range usages {
		if u.Scope == recsink.ScopeOrganization && u.ReplacedAt == nil {
			cur = byKey[u.AccessKeyID]
		}
	}
	var oldAt time.Time
	for _, u := range usages {
		// The previous key is the newest replaced one that is not the
		// current key again (a save that only changed the bucket keeps the
		// key).
		if u.Scope == recsink.ScopeOrganization && u.ReplacedAt != nil && (cur == nil || u.AccessKeyID != cur.AccessKeyID) &&
			(old == nil || !u.CreatedAt.Before(oldAt)) {
			old, oldAt = byKey[u.AccessKeyID], u.CreatedAt
		}
	}
	return cur, old
}

// steps returns the spec's four rotation steps, reflecting the live state.
func (h *Handler) steps(d *keysData, now time.Time) []step {
	maxDur := fmtDuration(h.cfg.MaxDuration)
	if d.Current == nil {
		return []step{
			{Title: "Create a new access key and secret", Detail: "In IAM, for a user with the same permissions as the key in use (see the policy on the Storage page).", State: "todo"},
			{Title: "Save the new key here", Detail: "No storage is saved yet: save a bucket and key on the Storage page first.", State: "todo"},
			{Title: "Wait until every recording that started before has finished", Detail: "At most " + maxDur + " (the longest a recording may run).", State: "todo"},
			{Title: "Delete or deactivate the old key", Detail: "In IAM, once no recording holds it.", State: "todo"},
		}
	}
	if d.Old == nil {
		return []step{
			{Title: "Create a new access key and secret", Detail: "In IAM, for a user with the same permissions as " + d.Current.AccessKeyID + ". Do it a day before the old key must go.", State: "active"},
			{Title: "Save the new key here", Detail: "On the Storage page. Recordings that start after that use the new key; running ones keep " + d.Current.AccessKeyID + " until they end.", State: "todo"},
			{Title: "Wait until every recording that started before has finished", Detail: "At most " + maxDur + ". This page shows when the old key is drained.", State: "todo"},
			{Title: "Delete or deactivate the old key", Detail: "In IAM, once this page says it is safe.", State: "todo"},
		}
	}
	old, cur := d.Old, d.Current
	steps := []step{
		{Title: "Create a new access key and secret", Detail: "Done: " + cur.AccessKeyID + ".", State: "done"},
		{Title: "Save the new key here", Detail: fmt.Sprintf("New key %s saved %s (%s); recordings that start now use it.", cur.AccessKeyID, fmtTime(cur.SavedAt), relTime(cur.SavedAt, now)), State: "done"},
	}
	switch old.State {
	case recsink.CredentialCurrent:
		// The old key is still current in a room: it is not draining yet.
		steps = append(steps,
			step{Title: "Wait until every recording that holds the old key has finished", Detail: old.AccessKeyID + " is still the current key of " + strings.Join(old.Scopes, ", ") + ": replace it there too.", State: "active"},
			step{Title: "Delete or deactivate the old key", Detail: "Not yet: " + old.AccessKeyID + " is still in use.", State: "todo"})
	case recsink.CredentialDraining:
		n := len(old.Holding) + old.HoldingMore
		detail := fmt.Sprintf("Old key %s is draining: %d recording%s still hold%s it.", old.AccessKeyID, n, plural(n), pluralVerb(n))
		if old.SafeAfter != nil {
			detail += fmt.Sprintf(" The last can run until %s (%s).", fmtTime(*old.SafeAfter), relTime(*old.SafeAfter, now))
		}
		steps = append(steps,
			step{Title: "Wait until every recording that holds the old key has finished", Detail: detail, State: "active"},
			step{Title: "Delete or deactivate the old key", Detail: "Not yet: safe to delete " + old.AccessKeyID + " after " + safeText(old) + ".", State: "todo"})
	default:
		steps = append(steps,
			step{Title: "Wait until every recording that holds the old key has finished", Detail: "Drained: no recording holds " + old.AccessKeyID + " any more.", State: "done"},
			step{Title: "Delete or deactivate the old key", Detail: "Safe to delete " + old.AccessKeyID + " now, in IAM.", State: "active"})
	}
	return steps
}

func safeText(k *keyView) string {
	if k.SafeAfter == nil {
		return "its recordings end"
	}
	return fmtTime(*k.SafeAfter)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pluralVerb(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

// roomNames maps the organization's meeting IDs to room names.
func (h *Handler) roomNames(r *http.Request, s *recsink.AdminSession) (map[string]string, []*recsink.Meeting, error) {
	names := map[string]string{}
	var all []*recsink.Meeting
	cursor := ""
	for range 20 { // at most 2,000 rooms on the page
		ms, next, err := h.cfg.Meetings.ListMeetings(r.Context(), s.OrgID, cursor, 100)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range ms {
			names[m.ID] = m.RoomName
		}
		all = append(all, ms...)
		if next == "" {
			break
		}
		cursor = next
	}
	return names, all, nil
}

func (h *Handler) handleKeys(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	rooms, _, err := h.roomNames(r, s)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d, _, err := h.loadKeys(r, s, rooms)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	h.render(w, r, http.StatusOK, "keys", &page{Title: "Keys", Nav: "keys", Session: s, Data: d})
}

// timeline is the inline SVG of a key's holding recordings: each from its
// start to its latest possible end, with lines for now and for the moment
// the key is safe to delete.
type timeline struct {
	Width, Height float64
	Rows          []timelineRow
	NowX, SafeX   float64
	Ticks         []timelineTick
	AxisY         float64
	Label         string // a text description for screen readers
}

type timelineRow struct {
	Y, X, ElapsedW, TotalW float64
	Label                  string
	LabelX                 float64
	LabelAnchor            string
	State                  string
}

type timelineTick struct {
	X      float64
	Label  string
	Anchor string
}

const (
	tlWidth  = 720.0
	tlLeft   = 12.0
	tlRight  = 12.0
	tlTop    = 44.0
	tlRow    = 30.0
	tlBar    = 16.0
	tlBottom = 28.0
)

func (h *Handler) newTimeline(k *keyView, now time.Time) *timeline {
	start := now
	end := now
	for _, rec := range k.Holding {
		if rec.StartDate.Before(start) {
			start = rec.StartDate
		}
		if e := rec.StartDate.Add(h.cfg.MaxDuration); e.After(end) {
			end = e
		}
	}
	if k.SafeAfter != nil && k.SafeAfter.After(end) {
		end = *k.SafeAfter
	}
	span := end.Sub(start)
	pad := span / 20
	start, end = start.Add(-pad), end.Add(pad)
	span = end.Sub(start)
	if span <= 0 {
		span = time.Minute
	}
	inner := tlWidth - tlLeft - tlRight
	x := func(t time.Time) float64 {
		return tlLeft + inner*float64(t.Sub(start))/float64(span)
	}
	t := &timeline{Width: tlWidth, NowX: x(now), SafeX: -1}
	if k.SafeAfter != nil {
		t.SafeX = x(*k.SafeAfter)
	}
	for i, rec := range k.Holding {
		x0, x1 := x(rec.StartDate), x(rec.StartDate.Add(h.cfg.MaxDuration))
		xn := min(max(x(now), x0), x1)
		row := timelineRow{
			Y: tlTop + float64(i)*tlRow, X: x0, ElapsedW: xn - x0, TotalW: x1 - x0,
			Label: strings.TrimPrefix(rec.RoomName, "/") + " · " + rec.State + " · started " + fmtTime(rec.StartDate),
			State: rec.State,
		}
		// Label over the bar, kept inside the drawing.
		row.LabelX, row.LabelAnchor = x0, "start"
		if x0 > tlWidth/2 {
			row.LabelX, row.LabelAnchor = x1, "end"
		}
		t.Rows = append(t.Rows, row)
	}
	t.AxisY = tlTop + float64(len(k.Holding))*tlRow
	t.Height = t.AxisY + tlBottom
	for i := 0; i <= 4; i++ {
		at := start.Add(span * time.Duration(i) / 4)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		t.Ticks = append(t.Ticks, timelineTick{X: x(at), Label: at.UTC().Format("Jan 2 15:04"), Anchor: anchor})
	}
	t.Label = fmt.Sprintf("Timeline of the %d recording%s holding %s, from %s to %s; now is %s", len(k.Holding), plural(len(k.Holding)), k.AccessKeyID, fmtTime(start), fmtTime(end), fmtTime(now))
	if k.SafeAfter != nil {
		t.Label += "; safe to delete after " + fmtTime(*k.SafeAfter)
	}
	return t
}
