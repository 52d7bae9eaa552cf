package mkv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/recsink/recsink/media/internal/indexio"
)

// RecordSize is the size in bytes of one index record: the Indexer appends
// one per cluster, so a 24-hour recording at 2 Mbit/s in ffmpeg's live
// clusters of 32 KiB (about 8 a second) writes 22 MB of index, on disk.
const RecordSize = 32

// Record is what the index holds about one cluster. Times are in the
// segment's TimecodeScale units (milliseconds with the default scale).
type Record struct {
	Offset   int64  // stream offset of the Cluster element's first byte
	Time     int64  // the Cluster's Timecode
	End      int64  // the latest end of a block in the cluster: its time plus its duration when known
	KeyTime  int64  // time of the first video keyframe (Flags&FlagKey), else of the first block
	KeyTrack uint16 // track number of that keyframe or block
	Flags    uint8  // FlagKey, FlagBlocks, FlagEnd

	// In the end record (FlagEnd) only: the stream was cut inside an
	// element, and Pad zero bytes, then a Void element of Voids[0] bytes
	// and one of Voids[1] bytes (each 0 or ≥ 2) complete the elements left
	// open (a block, its BlockGroup, its Cluster). Offset is then the
	// stream's length.
	Pad   int64
	Voids [2]int64
}

// Record flags.
const (
	FlagKey    = 1 << iota // the cluster holds a video keyframe: KeyTime and KeyTrack are set
	FlagBlocks             // the cluster holds at least one block
	FlagEnd                // written by Close: the end of the stream and what completes it
)

const recordVersion = 1

// marshal encodes r as RecordSize bytes:
// offset u64 | time i64 | end i64 | keyRel i16 | keyTrack u16 | flags u8 | version u8 | 2 reserved.
// The end record: offset u64 | pad i64 | void0 i64 | void1 u32 | flags u8 | version u8 | 2 reserved.
func (r Record) marshal(b []byte) {
	if r.Flags&FlagEnd != 0 {
		binary.BigEndian.PutUint64(b[0:], uint64(r.Offset))
		binary.BigEndian.PutUint64(b[8:], uint64(r.Pad))
		binary.BigEndian.PutUint64(b[16:], uint64(r.Voids[0]))
		binary.BigEndian.PutUint32(b[24:], uint32(r.Voids[1]))
		b[28], b[29], b[30], b[31] = r.Flags, recordVersion, 0, 0
		return
	}
	binary.BigEndian.PutUint64(b[0:], uint64(r.Offset))
	binary.BigEndian.PutUint64(b[8:], uint64(r.Time))
	binary.BigEndian.PutUint64(b[16:], uint64(r.End))
	binary.BigEndian.PutUint16(b[24:], uint16(int16(r.KeyTime-r.Time)))
	binary.BigEndian.PutUint16(b[26:], r.KeyTrack)
	b[28] = r.Flags
	b[29] = recordVersion
	b[30], b[31] = 0, 0
}

// unmarshal decodes a record written by marshal.
func (r *Record) unmarshal(b []byte) error {
	if b[29] != recordVersion {
		return fmt.Errorf("mkv: index record version %d: %w", b[29], ErrCorrupt)
	}
	r.Offset = int64(binary.BigEndian.Uint64(b[0:]))
	if r.Flags = b[28]; r.Flags&FlagEnd != 0 {
		r.Pad = int64(binary.BigEndian.Uint64(b[8:]))
		r.Voids[0] = int64(binary.BigEndian.Uint64(b[16:]))
		r.Voids[1] = int64(binary.BigEndian.Uint32(b[24:]))
		return nil
	}
	r.Time = int64(binary.BigEndian.Uint64(b[8:]))
	r.End = int64(binary.BigEndian.Uint64(b[16:]))
	r.KeyTime = r.Time + int64(int16(binary.BigEndian.Uint16(b[24:])))
	r.KeyTrack = binary.BigEndian.Uint16(b[26:])
	r.Flags = b[28]
	return nil
}

// ReadIndex calls fn for each record of an index written by an Indexer, in
// order, reading index from its start until io.EOF. A partial last record
// (a write cut by a crash) is ignored.
func ReadIndex(index io.ReaderAt, fn func(Record) error) error {
	err := indexio.ReadRecords(index, RecordSize, 128, func(b []byte) error {
		var r Record
		if err := r.unmarshal(b); err != nil {
			return err
		}
		return fn(r)
	})
	if re := (*indexio.ReadError)(nil); errors.As(err, &re) {
		return fmt.Errorf("mkv: read index: %w", re.Err)
	}
	return err
}
