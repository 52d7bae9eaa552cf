// Package storetest is the conformance suite of recsink.Store: every store
// (sqlite, postgres) runs it from its own tests.
//
// Fixtures use random names and IDs and checks look only at the rows a test
// created, so the suite also works against a database that tests share.
// Times given to the store are truncated to microseconds, the precision that
// every store must keep (PostgreSQL's timestamptz), and compared with Equal.
package storetest

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// Run runs the conformance suite. open returns a new, empty (or at least
// independent) store for one test and closes it when the test ends, with
// t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("Organization", func(t *testing.T) { t.Parallel(); testOrganization(t, open) })
	t.Run("Credential", func(t *testing.T) { t.Parallel(); testCredential(t, open) })
	t.Run("Meeting", func(t *testing.T) { t.Parallel(); testMeeting(t, open) })
	t.Run("Recording", func(t *testing.T) { t.Parallel(); testRecording(t, open) })
	t.Run("RecordingSort", func(t *testing.T) { t.Parallel(); testRecordingSort(t, open) })
	t.Run("Audit", func(t *testing.T) { t.Parallel(); testAudit(t, open) })
	t.Run("RecordingEvent", func(t *testing.T) { t.Parallel(); testRecordingEvent(t, open) })
	t.Run("Part", func(t *testing.T) { t.Parallel(); testPart(t, open) })
	t.Run("Webhook", func(t *testing.T) { t.Parallel(); testWebhook(t, open) })
	t.Run("Admin", func(t *testing.T) { t.Parallel(); testAdmin(t, open) })
	t.Run("Lease", func(t *testing.T) { t.Parallel(); testLease(t, open) })
	t.Run("StreamKey", func(t *testing.T) { t.Parallel(); testStreamKey(t, open) })
	t.Run("Fence", func(t *testing.T) { t.Parallel(); testFence(t, open) })
	t.Run("Prune", func(t *testing.T) { t.Parallel(); testPrune(t, open) })
	t.Run("BadText", func(t *testing.T) { testBadText(t, open) })
	t.Run("PruneBatches", func(t *testing.T) { testPruneBatches(t, open) })
	t.Run("SigningKey", func(t *testing.T) { t.Parallel(); testSigningKey(t, open) })
	t.Run("CredentialHealth", func(t *testing.T) { t.Parallel(); testCredentialHealth(t, open) })
}

func testOrganization(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := &recsink.Organization{ID: recsink.NewID("org"), Name: "acme-" + recsink.RandomToken(6), CreatedAt: at(0)}
		_, hash := recsink.NewAPIKey()
		if err := s.CreateOrganization(ctx, org, hash); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindOrganizationByAPIKeyHash(ctx, hash)
		if err != nil {
			t.Fatal(err)
		}
		checkOrganization(t, got, org)
		got, err = s.FindOrganizationByName(ctx, org.Name)
		if err != nil {
			t.Fatal(err)
		}
		checkOrganization(t, got, org)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		MustCreateOrganization(t, s)
		_, err := s.FindOrganizationByAPIKeyHash(ctx, recsink.HashToken("nope"))
		checkCode(t, err, recsink.ENOTFOUND)
		_, err = s.FindOrganizationByName(ctx, "nope-"+recsink.RandomToken(6))
		checkCode(t, err, recsink.ENOTFOUND)
	})

	t.Run("ErrNameConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a := MustCreateOrganization(t, s)
		_, hash := recsink.NewAPIKey()
		err := s.CreateOrganization(ctx, &recsink.Organization{ID: recsink.NewID("org"), Name: a.Name, CreatedAt: at(0)}, hash)
		checkCode(t, err, recsink.ECONFLICT)
	})

	t.Run("ErrAPIKeyHashConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		_, hash := recsink.NewAPIKey()
		a := &recsink.Organization{ID: recsink.NewID("org"), Name: "a-" + recsink.RandomToken(6), CreatedAt: at(0)}
		if err := s.CreateOrganization(ctx, a, hash); err != nil {
			t.Fatal(err)
		}
		b := &recsink.Organization{ID: recsink.NewID("org"), Name: "b-" + recsink.RandomToken(6), CreatedAt: at(0)}
		checkCode(t, s.CreateOrganization(ctx, b, hash), recsink.ECONFLICT)
		// The failed insert left nothing behind.
		_, err := s.FindOrganizationByName(ctx, b.Name)
		checkCode(t, err, recsink.ENOTFOUND)
	})

	t.Run("TimesInUTC", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		created := at(0).In(time.FixedZone("CEST", 2*60*60))
		org := &recsink.Organization{ID: recsink.NewID("org"), Name: "tz-" + recsink.RandomToken(6), CreatedAt: created}
		if err := s.CreateOrganization(ctx, org, recsink.HashToken(recsink.RandomToken(16))); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindOrganizationByName(ctx, org.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(created) || got.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt = %v, want %v in UTC", got.CreatedAt, created)
		}
	})
}

func testCredential(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		c := NewCredential(org.ID, recsink.ScopeOrganization, at(0))
		c.Destination = recsink.Destination{Provider: "s3", Bucket: "b-1", Prefix: "a/b", Region: "eu-west-1",
			Endpoint: "https://s3.example.com:9000", ForcePathStyle: true, FileFormat: recsink.FormatMP4}
		// Every byte value, NUL and 0xff included, must round-trip.
		c.SecretCiphertext = make([]byte, 256)
		for i := range c.SecretCiphertext {
			c.SecretCiphertext[i] = byte(i)
		}
		if err := s.CreateCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
		got, err := s.FindCredential(ctx, org.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, c)
		got, err = s.CurrentCredential(ctx, org.ID, recsink.ScopeOrganization)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, c)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		_, err := s.FindCredential(ctx, org.ID, "cred_nope")
		checkCode(t, err, recsink.ENOTFOUND)
		_, err = s.CurrentCredential(ctx, org.ID, recsink.ScopeOrganization)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.ReplaceCurrentCredential(ctx, org.ID, recsink.ScopeOrganization, at(1)), recsink.ENOTFOUND)
		cs, err := s.ListCredentials(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		} else if len(cs) != 0 {
			t.Fatalf("ListCredentials returned %d credentials, want none", len(cs))
		}
	})

	t.Run("ErrIDConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		c := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(0))
		d := NewCredential(org.ID, "mtg_other", at(1))
		d.ID = c.ID
		checkCode(t, s.CreateCredential(ctx, d), recsink.ECONFLICT)
		// The failed insert rolled back: c is still current.
		got, err := s.CurrentCredential(ctx, org.ID, recsink.ScopeOrganization)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, c)
	})

	t.Run("CrossOrganization", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		c := MustCreateCredential(t, s, a.ID, recsink.ScopeOrganization, at(0))
		_, err := s.FindCredential(ctx, b.ID, c.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		_, err = s.CurrentCredential(ctx, b.ID, recsink.ScopeOrganization)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.ReplaceCurrentCredential(ctx, b.ID, recsink.ScopeOrganization, at(1)), recsink.ENOTFOUND)
		if cs, err := s.ListCredentials(ctx, b.ID); err != nil {
			t.Fatal(err)
		} else if len(cs) != 0 {
			t.Fatalf("organization B lists %d credentials, want none", len(cs))
		}
		// B's new generation does not replace A's.
		MustCreateCredential(t, s, b.ID, recsink.ScopeOrganization, at(2))
		got, err := s.CurrentCredential(ctx, a.ID, recsink.ScopeOrganization)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, c)
	})

	t.Run("Generations", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		first := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(0))
		room := MustCreateCredential(t, s, org.ID, "mtg_room", at(1))
		second := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(2))

		got, err := s.CurrentCredential(ctx, org.ID, recsink.ScopeOrganization)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, second)
		// Another scope's generation is untouched.
		got, err = s.CurrentCredential(ctx, org.ID, "mtg_room")
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, room)

		cs, err := s.ListCredentials(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		replaced := *first
		replaced.ReplacedAt = &second.CreatedAt
		checkCredentials(t, cs, []*recsink.Credential{&replaced, room, second})

		// The replaced generation stays findable: recordings hold it.
		got, err = s.FindCredential(ctx, org.ID, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, &replaced)
	})

	t.Run("ReplaceCurrent", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		c := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(0))
		if err := s.ReplaceCurrentCredential(ctx, org.ID, recsink.ScopeOrganization, at(5)); err != nil {
			t.Fatal(err)
		}
		_, err := s.CurrentCredential(ctx, org.ID, recsink.ScopeOrganization)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.ReplaceCurrentCredential(ctx, org.ID, recsink.ScopeOrganization, at(6)), recsink.ENOTFOUND)

		got, err := s.FindCredential(ctx, org.ID, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		replaced := *c
		replaced.ReplacedAt = ptr(at(5))
		checkCredential(t, got, &replaced)

		// Saving settings again makes a new current generation.
		d := MustCreateCredential(t, s, org.ID, recsink.ScopeOrganization, at(7))
		got, err = s.CurrentCredential(ctx, org.ID, recsink.ScopeOrganization)
		if err != nil {
			t.Fatal(err)
		}
		checkCredential(t, got, d)
		cs, err := s.ListCredentials(ctx, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkCredentials(t, cs, []*recsink.Credential{&replaced, d})
	})
}

func testMeeting(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, org.ID)
		got, err := s.FindMeeting(ctx, org.ID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkMeeting(t, got, m)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		_, err := s.FindMeeting(ctx, org.ID, "mtg_nope")
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.DeleteMeeting(ctx, org.ID, "mtg_nope"), recsink.ENOTFOUND)
	})

	t.Run("ErrRoomNameConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, org.ID)
		dup := NewMeeting(org.ID)
		dup.RoomName = m.RoomName
		checkCode(t, s.CreateMeeting(ctx, dup), recsink.ECONFLICT)
		_, err := s.FindMeeting(ctx, org.ID, dup.ID)
		checkCode(t, err, recsink.ENOTFOUND)
	})

	t.Run("CrossOrganization", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, a.ID)
		_, err := s.FindMeeting(ctx, b.ID, m.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.DeleteMeeting(ctx, b.ID, m.ID), recsink.ENOTFOUND)
		ms, next, err := s.ListMeetings(ctx, b.ID, "", 100)
		if err != nil {
			t.Fatal(err)
		} else if len(ms) != 0 || next != "" {
			t.Fatalf("organization B lists %d meetings (next %q), want none", len(ms), next)
		}
		// Still there for A.
		if _, err := s.FindMeeting(ctx, a.ID, m.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		m := MustCreateMeeting(t, s, org.ID)
		keep := MustCreateMeeting(t, s, org.ID)
		if err := s.DeleteMeeting(ctx, org.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.FindMeeting(ctx, org.ID, m.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		checkCode(t, s.DeleteMeeting(ctx, org.ID, m.ID), recsink.ENOTFOUND)
		ms, _, err := s.ListMeetings(ctx, org.ID, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		checkMeetings(t, ms, []*recsink.Meeting{keep})
		// The room name is free again.
		again := NewMeeting(org.ID)
		again.RoomName = m.RoomName
		if err := s.CreateMeeting(ctx, again); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org, other := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		var want []*recsink.Meeting
		for range 5 {
			want = append(want, MustCreateMeeting(t, s, org.ID))
			MustCreateMeeting(t, s, other.ID) // interleaved, never listed
		}
		var got []*recsink.Meeting
		var cursor string
		for page := 0; ; page++ {
			ms, next, err := s.ListMeetings(ctx, org.ID, cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			if wantLen := min(2, 5-2*page); len(ms) != wantLen {
				t.Fatalf("page %d has %d meetings, want %d", page, len(ms), wantLen)
			}
			got = append(got, ms...)
			if next == "" {
				break
			}
			if page > 3 {
				t.Fatal("pagination does not end")
			}
			cursor = next
		}
		checkMeetings(t, got, want)

		// A page that ends exactly at the last meeting has no next cursor.
		ms, next, err := s.ListMeetings(ctx, org.ID, "", 5)
		if err != nil {
			t.Fatal(err)
		}
		checkMeetings(t, ms, want)
		if next != "" {
			t.Fatalf("next cursor = %q after the last meeting, want \"\"", next)
		}

		_, _, err = s.ListMeetings(ctx, org.ID, "not a cursor!", 2)
		checkCode(t, err, recsink.EINVALID)
	})
}

func testRecording(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := NewRecording(org.ID, "room-"+recsink.RandomToken(6), recsink.RecordingRecording)
		if err := s.CreateRecording(ctx, r, TestLeaseTTL); err != nil {
			t.Fatal(err)
		}
		if r.UpdatedAt.IsZero() {
			t.Fatal("CreateRecording did not set UpdatedAt")
		}
		if r.Owner.Node != TestNode || r.Owner.Epoch != 1 || r.Owner.LeaseExpiresAt == nil {
			t.Fatalf("CreateRecording set owner %+v, want %s at epoch 1 with a lease", r.Owner, TestNode)
		}
		got, err := s.FindRecording(ctx, org.ID, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecording(t, got, r)
		got, err = s.FindRecordingByID(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecording(t, got, r)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		_, err := s.FindRecording(ctx, org.ID, "rec_nope")
		checkCode(t, err, recsink.ENOTFOUND)
		_, err = s.FindRecordingByID(ctx, "rec_nope")
		checkCode(t, err, recsink.ENOTFOUND)
		r := NewRecording(org.ID, "room", recsink.RecordingRecording)
		checkCode(t, s.UpdateRecording(ctx, r), recsink.ENOTFOUND)
	})

	t.Run("ErrIDConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		dup := NewRecording(org.ID, "room", recsink.RecordingRecording)
		dup.ID = r.ID
		checkCode(t, s.CreateRecording(ctx, dup, TestLeaseTTL), recsink.ECONFLICT)
	})

	t.Run("CrossOrganization", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, a.ID, "room", recsink.RecordingRecording)
		_, err := s.FindRecording(ctx, b.ID, r.ID)
		checkCode(t, err, recsink.ENOTFOUND)
		rs, next, err := s.ListRecordings(ctx, b.ID, recsink.RecordingFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		} else if len(rs) != 0 || next != "" {
			t.Fatalf("organization B lists %d recordings (next %q), want none", len(rs), next)
		}
		if rs, err := s.ListHoldingRecordings(ctx, b.ID); err != nil {
			t.Fatal(err)
		} else if len(rs) != 0 {
			t.Fatalf("organization B holds %d recordings, want none", len(rs))
		}
		// An update in B's name changes nothing.
		stolen := *r
		stolen.OrgID, stolen.State = b.ID, recsink.RecordingFailed
		checkCode(t, s.UpdateRecording(ctx, &stolen), recsink.ENOTFOUND)
		got, err := s.FindRecordingByID(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecording(t, got, r)
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		created := r.UpdatedAt

		// Nil and empty values first: a stopped recording's end date
		// cannot be cleared later.
		r.State, r.EndDate, r.SizeBytes, r.StopReason, r.SHA256, r.LastError, r.UploadID =
			recsink.RecordingBlocked, nil, nil, "", "", "", ""
		if err := s.UpdateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.UpdatedAt.Before(created) {
			t.Fatalf("UpdatedAt went back from %v to %v", created, r.UpdatedAt)
		}
		got, err := s.FindRecording(ctx, org.ID, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecording(t, got, r)

		r.State = recsink.RecordingUploaded
		r.CredentialID = recsink.NewID("cred")
		r.Destination = recsink.Destination{Provider: "s3", Bucket: "other-bucket", Prefix: "p/q", Region: "us-east-2",
			Endpoint: "http://minio.local:9000", ForcePathStyle: true, FileFormat: recsink.FormatMP4}
		r.ObjectKey = "p/q/other-" + r.ID + ".mp4"
		r.UploadID = "upload-2"
		r.EndDate = ptr(at(120))
		r.StopReason = recsink.StopMaxDuration
		r.BytesReceived = 1 << 40
		r.BytesUploaded = 1<<40 - 1
		r.SizeBytes = ptr(int64(1 << 40))
		r.SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
		r.ChecksumAlgorithm = recsink.ChecksumCRC32C
		r.Checksum = "CRC32C:yZRlqg=="
		r.LastError = "s3: UploadPart: AccessDenied"
		r.Source = recsink.SourceRTMP // set at start only: an update leaves it
		if err := s.UpdateRecording(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err = s.FindRecording(ctx, org.ID, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		r.Source = recsink.SourceSRT
		checkRecording(t, got, r)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org, other := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		r1 := MustCreateRecording(t, s, org.ID, "room-a", recsink.RecordingUploaded)
		MustCreateRecording(t, s, other.ID, "room-a", recsink.RecordingUploaded)
		r2 := MustCreateRecording(t, s, org.ID, "room-b", recsink.RecordingRecording)
		r3 := MustCreateRecording(t, s, org.ID, "room-a", recsink.RecordingRecording)
		r4 := MustCreateRecording(t, s, org.ID, "room-a", recsink.RecordingUploaded)
		r5 := MustCreateRecording(t, s, org.ID, "room-b", recsink.RecordingFailed)

		for _, tt := range []struct {
			name   string
			filter recsink.RecordingFilter
			want   []*recsink.Recording
		}{
			{"All", recsink.RecordingFilter{}, []*recsink.Recording{r1, r2, r3, r4, r5}},
			{"RoomName", recsink.RecordingFilter{RoomName: "room-a"}, []*recsink.Recording{r1, r3, r4}},
			{"State", recsink.RecordingFilter{State: recsink.RecordingRecording}, []*recsink.Recording{r2, r3}},
			{"RoomNameAndState", recsink.RecordingFilter{RoomName: "room-a", State: recsink.RecordingUploaded}, []*recsink.Recording{r1, r4}},
			{"NoMatch", recsink.RecordingFilter{RoomName: "room-c"}, nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				for _, limit := range []int{1, 2, 100} {
					f := tt.filter
					f.Limit = limit
					got := listAllRecordings(t, s, org.ID, f)
					checkRecordings(t, got, tt.want)
				}
			})
		}

		_, _, err := s.ListRecordings(ctx, org.ID, recsink.RecordingFilter{Cursor: "%%%", Limit: 10})
		checkCode(t, err, recsink.EINVALID)
	})

	t.Run("Unfinished", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		var want []*recsink.Recording
		for _, org := range []*recsink.Organization{a, b} {
			for _, state := range []string{recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
				recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted} {
				r := MustCreateRecording(t, s, org.ID, "room", state)
				if r.Holding() {
					want = append(want, r)
				}
			}
		}
		rs, err := s.ListUnfinishedRecordings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkRecordings(t, ofOrganizations(rs, a.ID, b.ID), want)
	})

	t.Run("Holding", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		a, b := MustCreateOrganization(t, s), MustCreateOrganization(t, s)
		var want []*recsink.Recording
		for _, org := range []*recsink.Organization{a, b} {
			for _, state := range []string{recsink.RecordingUploaded, recsink.RecordingRecording, recsink.RecordingFailed,
				recsink.RecordingBlocked, recsink.RecordingDeleted, recsink.RecordingStopping} {
				r := MustCreateRecording(t, s, org.ID, "room", state)
				if org == a && r.Holding() {
					want = append(want, r)
				}
			}
		}
		rs, err := s.ListHoldingRecordings(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecordings(t, rs, want)

		// A recording that finishes no longer holds.
		want[0].State = recsink.RecordingUploaded
		if err := s.UpdateRecording(ctx, want[0]); err != nil {
			t.Fatal(err)
		}
		rs, err = s.ListHoldingRecordings(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRecordings(t, rs, want[1:])
	})
}

func testRecordingEvent(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		other := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)

		es, err := s.ListRecordingEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		} else if len(es) != 0 {
			t.Fatalf("new recording has %d events, want none", len(es))
		}

		// Listed in the order added, even when times are equal or go back.
		want := []recsink.RecordingEvent{
			{Time: at(10), Type: recsink.EventStarted, Message: "started"},
			{Time: at(10), Type: recsink.EventUploadBlocked, Message: "s3: AccessDenied"},
			{Time: at(9), Type: recsink.EventUploadResumed, Message: ""},
			{Time: at(30), Type: recsink.EventStopped, Message: "stopped: requested ✓"},
		}
		for i, e := range want {
			if err := s.AddRecordingEvent(ctx, r.ID, e); err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				if err := s.AddRecordingEvent(ctx, other.ID, recsink.RecordingEvent{Time: at(11), Type: recsink.EventFailed}); err != nil {
					t.Fatal(err)
				}
			}
		}
		es, err = s.ListRecordingEvents(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != len(want) {
			t.Fatalf("got %d events, want %d: %+v", len(es), len(want), es)
		}
		for i := range want {
			if !es[i].Time.Equal(want[i].Time) || es[i].Type != want[i].Type || es[i].Message != want[i].Message {
				t.Fatalf("event %d = %+v, want %+v", i, es[i], want[i])
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		err := s.AddRecordingEvent(ctx, "rec_nope", recsink.RecordingEvent{Time: at(0), Type: recsink.EventStarted})
		checkCode(t, err, recsink.ENOTFOUND)
	})
}

func testPart(t *testing.T, open func(t *testing.T) recsink.Store) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		org := MustCreateOrganization(t, s)
		r := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)
		other := MustCreateRecording(t, s, org.ID, "room", recsink.RecordingRecording)

		ps, err := s.ListParts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		} else if len(ps) != 0 {
			t.Fatalf("new recording has %d parts, want none", len(ps))
		}

		const mib = 1 << 20
		// Each part keeps the CRC S3 verified; a part without one (an
		// upload without checksums) keeps none.
		p1 := recsink.Part{Number: 1, Offset: 0, Size: 8 * mib, ETag: `"e1"`, Checksum: "AAAAAAAAAAA="}
		p2 := recsink.Part{Number: 2, Offset: 8 * mib, Size: 8 * mib, ETag: `"e2"`, Checksum: "Q2hlY2tzdW0="}
		p3 := recsink.Part{Number: 3, Offset: 16 * mib, Size: 3, ETag: `"e3"`}
		big := recsink.Part{Number: 10000, Offset: 5 << 40, Size: 5 << 30, ETag: `"e10000"`}
		for _, p := range []recsink.Part{p3, big, p1, p2} {
			if err := s.PutPart(ctx, r.ID, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutPart(ctx, other.ID, recsink.Part{Number: 1, Size: 1, ETag: `"x"`}); err != nil {
			t.Fatal(err)
		}
		checkParts(t, s, r.ID, []recsink.Part{p1, p2, p3, big})

		// A re-upload of part 2 replaces it.
		p2 = recsink.Part{Number: 2, Offset: 8 * mib, Size: 7 * mib, ETag: `"e2-again"`, Checksum: "YWdhaW4hISE="}
		if err := s.PutPart(ctx, r.ID, p2); err != nil {
			t.Fatal(err)
		}
		checkParts(t, s, r.ID, []recsink.Part{p1, p2, p3, big})
		checkParts(t, s, other.ID, []recsink.Part{{Number: 1, Size: 1, ETag: `"x"`}})
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), context.Background()
		err := s.PutPart(ctx, "rec_nope", recsink.Part{Number: 1, Size: 1, ETag: `"e"`})
		checkCode(t, err, recsink.ENOTFOUND)
	})
}

// base is the time the fixtures count from: microsecond precision, with a
// sub-second part so that lost precision shows.
var base = time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)

// at returns base plus sec seconds.
func at(sec int) time.Time {
	return base.Add(time.Duration(sec) * time.Second)
}

func ptr[T any](v T) *T { return &v }

// MustCreateOrganization creates an organization with a random name and API
// key in s.
func MustCreateOrganization(tb testing.TB, s recsink.Store) *recsink.Organization {
	tb.Helper()
	org := &recsink.Organization{ID: recsink.NewID("org"), Name: "org-" + recsink.RandomToken(9), CreatedAt: at(0)}
	_, hash := recsink.NewAPIKey()
	if err := s.CreateOrganization(context.Background(), org, hash); err != nil {
		tb.Fatal(err)
	}
	return org
}

// NewCredential returns a credential generation of scope created at
// createdAt, with a random ID and ciphertext.
func NewCredential(orgID, scope string, createdAt time.Time) *recsink.Credential {
	return &recsink.Credential{
		ID:               recsink.NewID("cred"),
		OrgID:            orgID,
		Scope:            scope,
		Destination:      recsink.Destination{Provider: "s3", Bucket: "bucket-" + scope, FileFormat: recsink.FormatMKV},
		AccessKeyID:      "AKIA" + recsink.RandomToken(6),
		SecretCiphertext: []byte(recsink.RandomToken(40)),
		CreatedAt:        createdAt,
	}
}

// MustCreateCredential creates a new generation of scope in s.
func MustCreateCredential(tb testing.TB, s recsink.Store, orgID, scope string, createdAt time.Time) *recsink.Credential {
	tb.Helper()
	c := NewCredential(orgID, scope, createdAt)
	if err := s.CreateCredential(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	return c
}

// NewMeeting returns a meeting with a random ID and room name.
func NewMeeting(orgID string) *recsink.Meeting {
	return &recsink.Meeting{
		ID:            recsink.NewID("mtg"),
		OrgID:         orgID,
		RoomName:      "/room-" + recsink.RandomToken(9),
		StartDate:     at(60),
		EndDate:       at(3600),
		RecordingType: "cloud",
		StartTrigger:  "prompt",
		CreatedAt:     at(1),
	}
}

// MustCreateMeeting creates a meeting in s.
func MustCreateMeeting(tb testing.TB, s recsink.Store, orgID string) *recsink.Meeting {
	tb.Helper()
	m := NewMeeting(orgID)
	if err := s.CreateMeeting(context.Background(), m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// NewRecording returns a recording in state with a random ID and every field
// set.
func NewRecording(orgID, roomName, state string) *recsink.Recording {
	id := recsink.NewID("rec")
	return &recsink.Recording{
		ID:           id,
		OrgID:        orgID,
		MeetingID:    recsink.NewID("mtg"),
		RoomName:     roomName,
		State:        state,
		CredentialID: recsink.NewID("cred"),
		AccessKeyID:  "AKIA" + recsink.RandomToken(6),
		PartSize:     5 << 20,
		Destination: recsink.Destination{Provider: "s3", Bucket: "bucket", Prefix: "rec", Region: "eu-north-1",
			FileFormat: recsink.FormatMKV},
		ObjectKey:         "rec/" + id + ".mkv",
		UploadID:          "upload-" + recsink.RandomToken(6),
		ChecksumAlgorithm: recsink.ChecksumCRC64NVME,
		IngestTokenHash:   recsink.HashToken(recsink.RandomToken(16)),
		StartDate:         at(100),
		BytesReceived:     10,
		BytesUploaded:     5,
		LastError:         "",
		Owner:             recsink.Owner{Node: TestNode, URL: "http://" + TestNode},
		// Not the default, so that the round trip shows the store keeps it.
		Source: recsink.SourceSRT,
	}
}

// TestNode is the node that owns the recordings of NewRecording, and
// TestLeaseTTL the lease they are created with.
const (
	TestNode     = "node-test"
	TestLeaseTTL = time.Minute
)

// MustCreateRecording creates a recording in s, owned by TestNode with a
// lease of TestLeaseTTL.
func MustCreateRecording(tb testing.TB, s recsink.Store, orgID, roomName, state string) *recsink.Recording {
	tb.Helper()
	r := NewRecording(orgID, roomName, state)
	if err := s.CreateRecording(context.Background(), r, TestLeaseTTL); err != nil {
		tb.Fatal(err)
	}
	return r
}

// listAllRecordings follows cursors until the last page.
func listAllRecordings(t *testing.T, s recsink.Store, orgID string, f recsink.RecordingFilter) []*recsink.Recording {
	t.Helper()
	var all []*recsink.Recording
	for range 100 {
		rs, next, err := s.ListRecordings(context.Background(), orgID, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > f.Limit {
			t.Fatalf("page of %d recordings, limit %d", len(rs), f.Limit)
		}
		all = append(all, rs...)
		if next == "" {
			return all
		}
		f.Cursor = next
	}
	t.Fatal("pagination does not end")
	return nil
}

// ofOrganizations returns the recordings of the given organizations.
func ofOrganizations(rs []*recsink.Recording, orgIDs ...string) []*recsink.Recording {
	var out []*recsink.Recording
	for _, r := range rs {
		if slices.Contains(orgIDs, r.OrgID) {
			out = append(out, r)
		}
	}
	return out
}

func checkCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := recsink.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func checkOrganization(t *testing.T, got, want *recsink.Organization) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("organization = %+v, want %+v", got, want)
	}
}

func checkCredential(t *testing.T, got, want *recsink.Credential) {
	t.Helper()
	if got.ID != want.ID || got.OrgID != want.OrgID || got.Scope != want.Scope ||
		got.Destination != want.Destination || got.AccessKeyID != want.AccessKeyID ||
		!bytes.Equal(got.SecretCiphertext, want.SecretCiphertext) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !equalTimePtr(got.ReplacedAt, want.ReplacedAt) {
		t.Fatalf("credential =\n%s\nwant\n%s", fmtCredential(got), fmtCredential(want))
	}
}

func fmtCredential(c *recsink.Credential) string {
	s := c.ID + " org=" + c.OrgID + " scope=" + c.Scope + " created=" + c.CreatedAt.String()
	if c.ReplacedAt != nil {
		s += " replaced=" + c.ReplacedAt.String()
	}
	return s
}

func checkCredentials(t *testing.T, got, want []*recsink.Credential) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d credentials, want %d", len(got), len(want))
	}
	for i := range want {
		checkCredential(t, got[i], want[i])
	}
}

func checkMeeting(t *testing.T, got, want *recsink.Meeting) {
	t.Helper()
	if got.ID != want.ID || got.OrgID != want.OrgID || got.RoomName != want.RoomName ||
		!got.StartDate.Equal(want.StartDate) || !got.EndDate.Equal(want.EndDate) ||
		got.RecordingType != want.RecordingType || got.StartTrigger != want.StartTrigger ||
		!got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("meeting = %+v, want %+v", got, want)
	}
}

func checkMeetings(t *testing.T, got, want []*recsink.Meeting) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d meetings, want %d", len(got), len(want))
	}
	for i := range want {
		checkMeeting(t, got[i], want[i])
	}
}

func checkRecording(t *testing.T, got, want *recsink.Recording) {
	t.Helper()
	if got.ID != want.ID || got.OrgID != want.OrgID || got.MeetingID != want.MeetingID ||
		got.RoomName != want.RoomName || got.State != want.State || got.CredentialID != want.CredentialID ||
		got.AccessKeyID != want.AccessKeyID || got.PartSize != want.PartSize ||
		got.Destination != want.Destination || got.ObjectKey != want.ObjectKey || got.UploadID != want.UploadID ||
		!bytes.Equal(got.IngestTokenHash, want.IngestTokenHash) ||
		!got.StartDate.Equal(want.StartDate) || !equalTimePtr(got.EndDate, want.EndDate) ||
		got.StopReason != want.StopReason || got.BytesReceived != want.BytesReceived ||
		got.BytesUploaded != want.BytesUploaded || !equalPtr(got.SizeBytes, want.SizeBytes) ||
		got.SHA256 != want.SHA256 || got.LastError != want.LastError ||
		got.ChecksumAlgorithm != want.ChecksumAlgorithm || got.Checksum != want.Checksum ||
		got.Source != want.Source ||
		// Stores stamp UpdatedAt themselves and set it on the recording as
		// saved (so a microsecond store truncates its clock first).
		!got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("recording =\n%+v\nwant\n%+v", *got, *want)
	}
	if got.StartDate.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Fatalf("recording times are not in UTC: %v, %v", got.StartDate, got.UpdatedAt)
	}
}

func checkRecordings(t *testing.T, got, want []*recsink.Recording) {
	t.Helper()
	if len(got) != len(want) {
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID+"("+r.State+")")
		}
		t.Fatalf("got %d recordings %v, want %d", len(got), ids, len(want))
	}
	for i := range want {
		checkRecording(t, got[i], want[i])
	}
}

func checkParts(t *testing.T, s recsink.Store, recordingID string, want []recsink.Part) {
	t.Helper()
	got, err := s.ListParts(context.Background(), recordingID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("parts = %+v, want %+v", got, want)
	}
}

func equalTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}
