package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/recsink/recsink/media/internal/indexio"
)

// RecordSize is the size in bytes of one index record: the Indexer appends
// one per track fragment (traf), so a 24-hour recording with two tracks and
// a fragment a second writes about 9.7 MB of index, on disk.
const RecordSize = 56

// Record is what the index holds about one track fragment. Times are in the
// track's timescale (its mdhd).
type Record struct {
	MoofOffset int64  // stream offset of the fragment's moof box
	Time       int64  // decode time of its first sample (tfdt, or the sum of the durations before it)
	SyncTime   int64  // decode time of its first sync sample, valid when Flags&FlagSync
	End        int64  // decode time after its last sample
	TrackID    uint32 // tfhd track_ID
	Traf       uint32 // 1-based number of the traf in the moof
	Trun       uint32 // 1-based number of the trun holding the first sync sample
	Sample     uint32 // 1-based number of the first sync sample in that trun
	Flags      uint8  // FlagSync, FlagAbsolute, FlagEnd

	// In the end record (FlagEnd) only: the stream was cut inside a
	// top-level box (an mdat), and Pad zero bytes complete it. MoofOffset
	// is then the stream's length.
	Pad int64
}

// Record flags.
const (
	FlagSync     = 1 << iota // the fragment holds a sync sample
	FlagAbsolute             // its tfhd has an absolute base-data-offset: the stream's byte positions must not move
	FlagEnd                  // written by Close: the end of the stream and what completes it
)

const recordVersion = 1

func (r Record) marshal(b []byte) {
	binary.BigEndian.PutUint64(b[0:], uint64(r.MoofOffset))
	t := r.Time
	if r.Flags&FlagEnd != 0 {
		t = r.Pad // the end record has no time
	}
	binary.BigEndian.PutUint64(b[8:], uint64(t))
	binary.BigEndian.PutUint64(b[16:], uint64(r.SyncTime))
	binary.BigEndian.PutUint64(b[24:], uint64(r.End))
	binary.BigEndian.PutUint32(b[32:], r.TrackID)
	binary.BigEndian.PutUint32(b[36:], r.Traf)
	binary.BigEndian.PutUint32(b[40:], r.Trun)
	binary.BigEndian.PutUint32(b[44:], r.Sample)
	b[48] = r.Flags
	b[49] = recordVersion
	clear(b[50:RecordSize])
}

func (r *Record) unmarshal(b []byte) error {
	if b[49] != recordVersion {
		return fmt.Errorf("mp4: index record version %d: %w", b[49], ErrCorrupt)
	}
	r.MoofOffset = int64(binary.BigEndian.Uint64(b[0:]))
	r.Time = int64(binary.BigEndian.Uint64(b[8:]))
	r.SyncTime = int64(binary.BigEndian.Uint64(b[16:]))
	r.End = int64(binary.BigEndian.Uint64(b[24:]))
	r.TrackID = binary.BigEndian.Uint32(b[32:])
	r.Traf = binary.BigEndian.Uint32(b[36:])
	r.Trun = binary.BigEndian.Uint32(b[40:])
	r.Sample = binary.BigEndian.Uint32(b[44:])
	r.Flags = b[48]
	if r.Flags&FlagEnd != 0 {
		r.Pad, r.Time = r.Time, 0
	}
	return nil
}

// ReadIndex calls fn for each record of an index written by an Indexer, in
// order, reading index from its start until io.EOF. A partial last record
// (a write cut by a crash) is ignored.
func ReadIndex(index io.ReaderAt, fn func(Record) error) error {
	err := indexio.ReadRecords(index, RecordSize, 64, func(b []byte) error {
		var r Record
		if err := r.unmarshal(b); err != nil {
			return err
		}
		return fn(r)
	})
	if re := (*indexio.ReadError)(nil); errors.As(err, &re) {
		return fmt.Errorf("mp4: read index: %w", re.Err)
	}
	return err
}
