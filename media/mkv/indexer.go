// Package mkv indexes a live Matroska or WebM stream as it arrives and, at
// the stop, completes it into a file players can seek: a Duration in the
// segment info, a Cues index appended as a tail, and a SeekHead pointing at
// both.
//
// The Indexer reads element headers only (a few bytes of each block for its
// track, time and keyframe flag), never buffers more than maxBuf bytes, and
// writes one fixed-size Record per cluster to an io.Writer, normally an
// append-only file in the spool: its heap stays the same for a recording of
// any length.
//
// Crash recovery: the Indexer's whole state is a small checkpoint
// (MarshalBinary, Resume), valid at Offset() and with the first IndexLen()
// bytes of the index. Persist it with the spool position it belongs to; after
// a restart, truncate the index file to IndexLen(), Resume, and feed the
// stream again from Offset(). Re-parsing from the start of the stream, when
// the spool still holds it, works too.
package mkv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/recsink/recsink/media/internal/indexio"
)

// ErrCorrupt reports a stream, header region or index that is not the
// Matroska this package finalizes. The recording should then be stored
// byte-identical, unfinalized.
var ErrCorrupt = errors.New("mkv: not a well-formed Matroska stream")

// ErrTruncated reports a stream that stopped where Close cannot complete it
// (inside an element header): a tail appended to it would be read as part
// of the element cut short.
var ErrTruncated = errors.New("mkv: stream ends inside an element")

const (
	maxBuf    = 16 // an element header (4-byte ID, 8-byte size) or the head of a block
	maxDepth  = 6  // Segment, Cluster, BlockGroup; Segment, Tracks, TrackEntry
	maxTracks = 32
	maxValue  = 8 // longest integer element read

	// MaxPad is the most bytes Close lets Finalize add to complete a
	// stream cut inside an element; a longer completion (a block declared
	// larger, which only a damaged stream has) is ErrTruncated.
	MaxPad = 256 << 20
)

// What the Indexer is reading.
const (
	stHeader = iota // an element header, into buf
	stValue         // a small element's data, into buf
	stSkip          // data to pass over
	stFailed
)

type frame struct {
	ID  uint32
	End int64 // stream offset after the element, or unknownSize
}

type track struct {
	Number uint64
	Type   uint8
	DefDur uint64 // DefaultDuration in ns
}

// state is everything the Indexer knows; it has fixed-size fields only so
// that it is its own checkpoint (encoding/binary).
type state struct {
	Off       int64 // stream bytes consumed
	IndexLen  int64
	St        uint8
	Buf       [maxBuf]byte
	N         uint8 // bytes in Buf
	Want      uint8 // bytes of data wanted in Buf in stValue
	Skip      int64 // bytes left to pass over in stSkip, or in stValue after Want
	ElemID    uint32
	ElemStart int64
	Stack     [maxDepth]frame
	Depth     uint8
	Scale     uint64 // TimecodeScale, ns
	Tracks    [maxTracks]track
	NTracks   uint8
	SegData   int64 // offset of the Segment's data, 0 before it
	HeaderEnd int64 // offset of the first Cluster, 0 before it
	InCluster bool
	Cl        Record
	// The block of the current BlockGroup.
	InGroup    bool
	GroupTrack uint64
	GroupTime  int64
	GroupDur   int64
	GroupRef   bool
	GroupSeen  bool
}

// Indexer reads a Matroska or WebM stream as it arrives and appends a Record
// per cluster to its index writer. Its methods are not safe for concurrent
// use.
type Indexer struct {
	s   state
	w   io.Writer
	err error
	rec [RecordSize]byte
}

// NewIndexer returns an Indexer for a stream starting at its first byte that
// writes its records to index.
func NewIndexer(index io.Writer) *Indexer {
	x := &Indexer{w: index}
	x.s.Scale = 1_000_000
	return x
}

const checkpointMagic = "mkvidx1\n"

// MarshalBinary returns the Indexer's checkpoint: under 1 KB that
// Resume turns back into an Indexer at Offset() with IndexLen() bytes of
// index written.
func (x *Indexer) MarshalBinary() ([]byte, error) {
	return indexio.MarshalCheckpoint(checkpointMagic, &x.s)
}

// Resume returns the Indexer saved in checkpoint, writing further records to
// index; index must hold exactly the checkpoint's IndexLen() bytes.
func Resume(checkpoint []byte, index io.Writer) (*Indexer, error) {
	x := &Indexer{w: index}
	if err := indexio.UnmarshalCheckpoint(checkpointMagic, checkpoint, &x.s); err != nil {
		return nil, fmt.Errorf("mkv: resume: %v: %w", err, ErrCorrupt)
	}
	st := &x.s
	if st.St > stFailed || st.N > maxBuf || st.Want > maxBuf || (st.St == stValue && st.N > st.Want) || (st.St == stHeader && st.N >= maxBuf) ||
		st.Depth > maxDepth || st.NTracks > maxTracks || st.Skip < 0 || st.Off < 0 || st.IndexLen < 0 {
		return nil, fmt.Errorf("mkv: resume: inconsistent checkpoint: %w", ErrCorrupt)
	}
	if x.s.St == stFailed {
		x.err = ErrCorrupt
	}
	return x, nil
}

// Offset returns how many bytes of the stream the Indexer has read.
func (x *Indexer) Offset() int64 { return x.s.Off }

// IndexLen returns how many bytes the Indexer has written to its index.
func (x *Indexer) IndexLen() int64 { return x.s.IndexLen }

// HeaderEnd returns the stream offset of the first Cluster, or 0 before the
// Indexer has read it: the header region Finalize needs is the stream's
// first HeaderEnd() bytes at least, so the part held back must not end
// before it.
func (x *Indexer) HeaderEnd() int64 { return x.s.HeaderEnd }

// Err returns the error that stopped the Indexer, if any.
func (x *Indexer) Err() error { return x.err }

// Write reads p, the stream's next bytes, in any chunking. It always
// consumes all of p; an error (ErrCorrupt, or the index writer's) stops
// indexing for good and is returned by every later call.
func (x *Indexer) Write(p []byte) (int, error) {
	if x.err != nil {
		return len(p), x.err
	}
	n := len(p)
	for len(p) > 0 && x.err == nil {
		s := &x.s
		switch s.St {
		case stSkip:
			k := int64(len(p))
			if k > s.Skip {
				k = s.Skip
			}
			s.Skip -= k
			s.Off += k
			p = p[k:]
			if s.Skip == 0 {
				x.elementDone()
			}
		case stHeader:
			if s.N == 0 {
				x.closeEnded()
				if x.err != nil {
					break
				}
			}
			c := p[0]
			s.Buf[s.N] = c
			s.N++
			s.Off++
			p = p[1:]
			id, size, hn := readHeader(s.Buf[:s.N])
			if hn < 0 || (hn == 0 && s.N == maxBuf) {
				x.fail(fmt.Errorf("mkv: bad element header at %d: %w", s.Off-int64(s.N), ErrCorrupt))
				break
			}
			if hn > 0 {
				s.N = 0
				x.element(id, size, s.Off-int64(hn))
			}
		case stValue:
			k := int(s.Want - s.N)
			if k > len(p) {
				k = len(p)
			}
			copy(s.Buf[s.N:], p[:k])
			s.N += uint8(k)
			s.Off += int64(k)
			p = p[k:]
			if s.N == s.Want {
				x.value(s.Buf[:s.N])
				s.N = 0
				if s.Skip > 0 {
					s.St = stSkip
				} else {
					x.elementDone()
				}
			}
		case stFailed:
			return n, x.err
		}
	}
	return n, x.err
}

// Close tells the Indexer the stream has ended: it writes the record of the
// last cluster and an end record. A stream cut inside a block (a recorder
// stopped mid-write) is completed there: the end record tells Finalize to
// fill the rest of the block with zero bytes and its BlockGroup and Cluster
// with Void elements. Close returns ErrTruncated when that cannot be done (a
// cut inside an element header, or one byte short of a Cluster's end).
// Close writes nothing after an error. Call it once, before Finalize.
func (x *Indexer) Close() error {
	if x.err != nil {
		return x.err
	}
	s := &x.s
	if s.St == stHeader && s.N != 0 {
		return ErrTruncated
	}
	x.closeEnded()
	end := Record{Offset: s.Off, Flags: FlagEnd}
	at := s.Off
	if s.St == stSkip || s.St == stValue {
		end.Pad = s.Skip + int64(s.Want-s.N)
		if s.St == stSkip {
			end.Pad = s.Skip
		}
		at += end.Pad
		if end.Pad > MaxPad {
			return ErrTruncated
		}
	}
	voids := 0
	for i := int(s.Depth) - 1; i >= 0; i-- {
		f := s.Stack[i]
		if f.End == unknownSize || f.ID == idSegment {
			continue // a Segment's size is rewritten by Finalize
		}
		gap := f.End - at
		switch {
		case gap == 1 || (gap > 0 && voids == len(end.Voids)) || f.End-s.Off > MaxPad:
			return ErrTruncated
		case gap > 0:
			end.Voids[voids] = gap
			voids++
		}
		at = f.End
	}
	if s.InGroup && s.GroupSeen {
		x.block(s.GroupTrack, s.GroupTime, !s.GroupRef, s.GroupDur) // its Block is completed
	}
	if s.InCluster {
		x.endCluster()
	}
	if x.err == nil {
		x.writeRecord(end)
	}
	return x.err
}

func (x *Indexer) fail(err error) {
	if x.err == nil {
		x.err = err
	}
	x.s.St = stFailed
}

// closeEnded pops the elements of known size that end at the current offset.
func (x *Indexer) closeEnded() {
	s := &x.s
	for s.Depth > 0 {
		f := s.Stack[s.Depth-1]
		if f.End == unknownSize || f.End > s.Off {
			return
		}
		x.pop()
	}
}

// pop closes the innermost open element.
func (x *Indexer) pop() {
	s := &x.s
	s.Depth--
	switch s.Stack[s.Depth].ID {
	case idCluster:
		x.endCluster()
	case idBlockGroup:
		if s.GroupSeen {
			x.block(s.GroupTrack, s.GroupTime, !s.GroupRef, s.GroupDur)
		}
		s.InGroup = false
	}
}

// element handles an element header read at start.
func (x *Indexer) element(id uint32, size int64, start int64) {
	s := &x.s
	s.ElemID, s.ElemStart = id, start
	if isTopLevel(id) {
		// A top-level element ends the open elements of unknown size
		// inside the Segment (a live muxer's Cluster).
		for s.Depth > 0 && s.Stack[s.Depth-1].End == unknownSize && s.Stack[s.Depth-1].ID != idSegment {
			x.pop()
		}
		if (id == idSegment || id == idEBML) && s.SegData != 0 {
			// A second stream chained after the first is not something
			// this package finalizes.
			x.fail(fmt.Errorf("mkv: second EBML header or Segment at %d: %w", start, ErrCorrupt))
			return
		}
	}
	var parent uint32
	if s.Depth > 0 {
		parent = s.Stack[s.Depth-1].ID
		if end := s.Stack[s.Depth-1].End; end != unknownSize && (size == unknownSize || s.Off+size > end) {
			x.fail(fmt.Errorf("mkv: element %X at %d overruns its parent: %w", id, start, ErrCorrupt))
			return
		}
	}
	master := false
	switch {
	case id == idSegment && s.Depth == 0:
		s.SegData = s.Off
		master = true
	case parent == idSegment && (id == idInfo || id == idTracks):
		master = true
	case parent == idSegment && id == idCluster:
		if s.HeaderEnd == 0 {
			s.HeaderEnd = start
		}
		s.InCluster = true
		s.Cl = Record{Offset: start}
		master = true
	case parent == idTracks && id == idTrackEntry:
		if s.NTracks < maxTracks {
			s.Tracks[s.NTracks] = track{}
			s.NTracks++
		}
		master = true
	case parent == idCluster && id == idBlockGroup:
		s.InGroup, s.GroupSeen, s.GroupRef, s.GroupDur = true, false, false, -1
		master = true
	}
	if master {
		if s.Depth == maxDepth {
			x.fail(fmt.Errorf("mkv: elements nested too deep at %d: %w", start, ErrCorrupt))
			return
		}
		end := int64(unknownSize)
		if size != unknownSize {
			end = s.Off + size
		}
		s.Stack[s.Depth] = frame{ID: id, End: end}
		s.Depth++
		s.St = stHeader
		return
	}
	if size == unknownSize {
		x.fail(fmt.Errorf("mkv: element %X at %d of unknown size: %w", id, start, ErrCorrupt))
		return
	}
	want := int64(0)
	switch {
	case parent == idInfo && id == idTimecodeScl,
		parent == idTrackEntry && (id == idTrackNumber || id == idTrackType || id == idDefaultDur),
		parent == idCluster && id == idTimecode,
		parent == idBlockGroup && id == idBlockDur:
		if size > maxValue {
			x.fail(fmt.Errorf("mkv: integer element %X at %d of %d bytes: %w", id, start, size, ErrCorrupt))
			return
		}
		want = size
	case parent == idCluster && id == idSimpleBlock, parent == idBlockGroup && id == idBlock:
		// Track number (up to 8 bytes), time (2), flags (1).
		want = min(size, 11)
	case parent == idBlockGroup && id == idRefBlock:
		s.GroupRef = true
	}
	if want == 0 && size == 0 {
		x.elementDone()
		return
	}
	s.Want, s.N, s.Skip = uint8(want), 0, size-want
	if want > 0 {
		s.St = stValue
	} else {
		s.St = stSkip
	}
}

// value handles the data (or the head of the data) of a small element.
func (x *Indexer) value(b []byte) {
	s := &x.s
	switch s.ElemID {
	case idTimecodeScl:
		if v := readUint(b); v > 0 {
			s.Scale = v
		}
	case idTrackNumber, idTrackType, idDefaultDur:
		if s.NTracks == 0 {
			return
		}
		t := &s.Tracks[s.NTracks-1]
		switch s.ElemID {
		case idTrackNumber:
			t.Number = readUint(b)
		case idTrackType:
			t.Type = uint8(readUint(b))
		default:
			t.DefDur = readUint(b)
		}
	case idTimecode:
		s.Cl.Time = int64(readUint(b) & (1<<62 - 1))
	case idBlockDur:
		s.GroupDur = int64(readUint(b) & (1<<62 - 1))
	case idSimpleBlock, idBlock:
		tn, n := readSize(b)
		if n <= 0 || tn == unknownSize || len(b) < n+3 {
			x.fail(fmt.Errorf("mkv: bad block header at %d: %w", s.ElemStart, ErrCorrupt))
			return
		}
		rel := int64(int16(binary.BigEndian.Uint16(b[n:])))
		if s.ElemID == idSimpleBlock {
			x.block(uint64(tn), rel, b[n+2]&0x80 != 0, -1)
			return
		}
		s.GroupSeen, s.GroupTrack, s.GroupTime = true, uint64(tn), rel
	}
}

// elementDone returns to reading headers after an element's data.
func (x *Indexer) elementDone() {
	x.s.St = stHeader
	x.s.N = 0
}

// block accounts for a block of track at time rel in the current cluster;
// dur is its BlockDuration, or -1.
func (x *Indexer) block(tn uint64, rel int64, key bool, dur int64) {
	s := &x.s
	if !s.InCluster {
		return
	}
	var t *track
	for i := range s.Tracks[:s.NTracks] {
		if s.Tracks[i].Number == tn {
			t = &s.Tracks[i]
		}
	}
	at := s.Cl.Time + rel
	if dur < 0 {
		dur = 0
		if t != nil && s.Scale > 0 {
			dur = int64(t.DefDur / s.Scale)
		}
	}
	if s.Cl.Flags&FlagBlocks == 0 {
		// Until a video keyframe, KeyTime and KeyTrack hold the first
		// block: the cue point of a stream without video.
		s.Cl.End, s.Cl.KeyTime, s.Cl.KeyTrack = at+dur, at, uint16(tn)
	} else if at+dur > s.Cl.End {
		s.Cl.End = at + dur
	}
	s.Cl.Flags |= FlagBlocks
	if key && t != nil && t.Type == trackVideo && s.Cl.Flags&FlagKey == 0 {
		s.Cl.Flags |= FlagKey
		s.Cl.KeyTime = at
		s.Cl.KeyTrack = uint16(tn)
	}
}

const trackVideo = 1

// endCluster writes the record of the cluster that just ended.
func (x *Indexer) endCluster() {
	s := &x.s
	s.InCluster = false
	if s.Cl.Flags&FlagBlocks == 0 {
		s.Cl.End = s.Cl.Time
	}
	x.writeRecord(s.Cl)
}

// writeRecord appends r to the index.
func (x *Indexer) writeRecord(r Record) {
	r.marshal(x.rec[:])
	if _, err := x.w.Write(x.rec[:]); err != nil {
		x.fail(fmt.Errorf("mkv: write index: %w", err))
		return
	}
	x.s.IndexLen += RecordSize
}
