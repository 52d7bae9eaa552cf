package storetest

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// testRecordingSort lists recordings in each of Whereby's sortBy orders, a
// few per page, and checks the order against one computed here: ties (same
// room, same start, same duration, same size) fall back to creation order in
// the sort's direction, and no recording is skipped or repeated across pages.
func testRecordingSort(t *testing.T, open func(t *testing.T) recsink.Store) {
	s, ctx := open(t), context.Background()
	org := MustCreateOrganization(t, s)
	other := MustCreateOrganization(t, s)
	MustCreateRecording(t, s, other.ID, "/other", recsink.RecordingRecording)

	// room, start (s), duration (s, -1: not ended), size (-1: none yet), bytes received
	specs := []struct {
		room           string
		start, dur     int
		size, received int64
	}{
		{"/b", 10, 30, 300, 300},
		{"/a", 20, -1, -1, 50},
		{"/c", 10, 30, 100, 100},
		{"/a", 5, 90, 200, 200},
		{"/B", 40, 5, 300, 300},
		{"/b", 20, -1, -1, 400},
		{"/a-z", 30, 60, 1 << 40, 1 << 40},
		{"/a", 10, 1, 0, 0},
		{"/d", 15, 90, 100, 100},
		{"/c", 25, 2, 7, 7},
		{"/e", 5, -1, -1, 0},
	}
	var recs []*recsink.Recording
	for _, sp := range specs {
		r := NewRecording(org.ID, sp.room, recsink.RecordingRecording)
		r.StartDate = at(sp.start)
		r.BytesReceived, r.BytesUploaded = sp.received, 0
		if err := s.CreateRecording(ctx, r, TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
		if sp.dur >= 0 {
			r.State = recsink.RecordingUploaded
			r.EndDate = ptr(at(sp.start + sp.dur))
			r.SizeBytes = ptr(sp.size)
			r.BytesUploaded = sp.size
			if err := s.UpdateRecording(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		recs = append(recs, r)
	}
	duration := func(r *recsink.Recording) int64 {
		if r.EndDate == nil {
			return -1
		}
		return r.EndDate.Sub(r.StartDate).Milliseconds()
	}
	size := func(r *recsink.Recording) int64 {
		if r.SizeBytes != nil {
			return *r.SizeBytes
		}
		return r.BytesReceived
	}
	keys := map[string]func(a, b *recsink.Recording) int{
		recsink.SortStartDate: func(a, b *recsink.Recording) int { return a.StartDate.Compare(b.StartDate) },
		recsink.SortRoomName:  func(a, b *recsink.Recording) int { return strings.Compare(a.RoomName, b.RoomName) },
		recsink.SortDuration:  func(a, b *recsink.Recording) int { return cmp.Compare(duration(a), duration(b)) },
		recsink.SortSize:      func(a, b *recsink.Recording) int { return cmp.Compare(size(a), size(b)) },
	}
	created := map[string]int{}
	for i, r := range recs {
		created[r.ID] = i
	}

	for _, field := range recsink.RecordingSorts {
		for _, desc := range []bool{false, true} {
			sort := recsink.RecordingSort{Field: field, Desc: desc}
			t.Run(sort.String(), func(t *testing.T) {
				want := slices.Clone(recs)
				slices.SortStableFunc(want, func(a, b *recsink.Recording) int {
					c := keys[field](a, b)
					if c == 0 {
						c = cmp.Compare(created[a.ID], created[b.ID])
					}
					if desc {
						c = -c
					}
					return c
				})
				for _, limit := range []int{1, 3, 100} {
					got := listAllRecordings(t, s, org.ID, recsink.RecordingFilter{Sort: sort, Limit: limit})
					if g, w := ids(got), ids(want); !slices.Equal(g, w) {
						t.Fatalf("limit %d:\n got  %v\n want %v", limit, describe(got, created), describe(want, created))
					}
				}
				// A filter applies within the sort.
				got := listAllRecordings(t, s, org.ID, recsink.RecordingFilter{Sort: sort, Limit: 2, RoomName: "/a"})
				var wantA []string
				for _, r := range want {
					if r.RoomName == "/a" {
						wantA = append(wantA, r.ID)
					}
				}
				if !slices.Equal(ids(got), wantA) {
					t.Fatalf("room /a: got %v, want %v", ids(got), wantA)
				}
			})
		}
	}

	t.Run("ErrCursorOfAnotherSort", func(t *testing.T) {
		_, next, err := s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Sort: recsink.RecordingSort{Field: recsink.SortDuration}, Limit: 2})
		if err != nil || next == "" {
			t.Fatalf("next %q, %v", next, err)
		}
		_, _, err = s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Sort: recsink.RecordingSort{Field: recsink.SortDuration, Desc: true}, Limit: 2, Cursor: next})
		checkCode(t, err, recsink.EINVALID)
		_, _, err = s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Limit: 2, Cursor: next})
		checkCode(t, err, recsink.EINVALID)
		_, plain, err := s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Limit: 2})
		if err != nil || plain == "" {
			t.Fatalf("next %q, %v", plain, err)
		}
		_, _, err = s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Sort: recsink.RecordingSort{Field: recsink.SortRoomName}, Limit: 2, Cursor: plain})
		checkCode(t, err, recsink.EINVALID)
	})

	// A recording created after the first page does not shift the next:
	// the cursor holds the last key, not an offset.
	t.Run("StableUnderInserts", func(t *testing.T) {
		sort := recsink.RecordingSort{Field: recsink.SortStartDate}
		first, next, err := s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Sort: sort, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		early := NewRecording(org.ID, "/early", recsink.RecordingRecording)
		early.StartDate = at(0).Add(-time.Hour)
		if err := s.CreateRecording(ctx, early, TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
		rest := listAllRecordings(t, s, org.ID, recsink.RecordingFilter{Sort: sort, Limit: 4, Cursor: next})
		all := append(first, rest...)
		if len(all) != len(recs) || slices.Contains(ids(all), early.ID) {
			t.Fatalf("pages after an insert: %v", ids(all))
		}
	})
}

func ids(rs []*recsink.Recording) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func describe(rs []*recsink.Recording, created map[string]int) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.RoomName + "#" + strconv.Itoa(created[r.ID])
	}
	return out
}
