// Package mp4 indexes a live fragmented MP4 stream (ffmpeg's
// -movflags frag_keyframe+empty_moov, with or without default_base_moof) as
// it arrives and, at the stop, completes it into a file players handle like
// a finished one: the durations in mvhd, tkhd and mdhd, a movie-extends
// header (mehd) with the fragment duration, and a movie fragment random
// access box (mfra: a tfra per track and mfro) appended as a tail.
//
// The Indexer reads box headers and the small boxes of each moof (tfhd, tfdt,
// trun entries one at a time), never buffers more than maxBuf bytes, and
// writes one fixed-size Record per track fragment to an io.Writer, normally
// an append-only file in the spool: its heap stays the same for a recording
// of any length.
//
// Crash recovery is as in package mkv: the Indexer's whole state is a small
// checkpoint (MarshalBinary, Resume) valid at Offset() with the first
// IndexLen() bytes of the index.
package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/recsink/recsink/media/internal/indexio"
)

// ErrCorrupt reports a stream, header region or index that is not the
// fragmented MP4 this package finalizes. The recording should then be
// stored byte-identical, unfinalized.
var ErrCorrupt = errors.New("mp4: not a well-formed fragmented MP4 stream")

// ErrTruncated reports a stream that stopped where Close cannot complete it
// (inside a moof or a box header): a tail appended to it would be read as
// part of the box cut short.
var ErrTruncated = errors.New("mp4: stream ends inside a box")

const (
	maxBuf    = 32 // a box header (16) or a tfhd (32)
	maxDepth  = 4  // moof, traf, trun; moov, mvex, trex
	maxTracks = 16

	// MaxPad is the most bytes Close lets Finalize add to complete an mdat
	// cut short; a longer completion is ErrTruncated.
	MaxPad = 256 << 20
)

// What the Indexer is reading.
const (
	stHeader = iota
	stValue
	stSkip
	stFailed
)

// What a value in Buf is.
const (
	vTrex = iota + 1
	vTfhd
	vTfdt
	vTrunHead
	vTrunOpt
	vTrunEntry
)

type frame struct {
	Type uint32
	End  int64
}

type track struct {
	ID       uint32
	DefDur   uint32 // trex default_sample_duration
	DefFlags uint32 // trex default_sample_flags
	Next     int64  // decode time after the track's last fragment
}

// state is everything the Indexer knows; it has fixed-size fields only so
// that it is its own checkpoint (encoding/binary).
type state struct {
	Off       int64
	IndexLen  int64
	St        uint8
	Val       uint8 // what Buf holds in stValue
	Buf       [maxBuf]byte
	N, Want   uint8
	Skip      int64 // bytes to pass over after the value, or in stSkip
	BoxType   uint32
	BoxStart  int64
	Stack     [maxDepth]frame
	Depth     uint8
	Tracks    [maxTracks]track
	NTracks   uint8
	HeaderEnd int64 // offset of the first moof, 0 before it
	// The current moof and traf.
	MoofOff  int64
	TrafNum  uint32
	InTraf   bool
	Tr       Record
	TrackIdx int8 // index in Tracks, -1 when the track has no trex
	TfFlags  uint32
	DefDur   uint32
	DefFlags uint32
	Time     int64 // decode time of the next sample
	TrunNum  uint32
	// The current trun.
	TrunFlags  uint32
	Left       uint32 // entries left to read
	Sample     uint32 // 1-based number of the next entry
	FirstFlags uint32
	HasFirst   bool
}

// Indexer reads a fragmented MP4 stream as it arrives and appends a Record
// per track fragment to its index writer. Its methods are not safe for
// concurrent use.
type Indexer struct {
	s   state
	w   io.Writer
	err error
	rec [RecordSize]byte
}

// NewIndexer returns an Indexer for a stream starting at its first byte that
// writes its records to index.
func NewIndexer(index io.Writer) *Indexer {
	return &Indexer{w: index}
}

const checkpointMagic = "mp4idx1\n"

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
		return nil, fmt.Errorf("mp4: resume: %v: %w", err, ErrCorrupt)
	}
	s := &x.s
	if s.St > stFailed || s.N > maxBuf || s.Want > maxBuf || (s.St == stValue && s.N > s.Want) || (s.St == stHeader && s.N >= 16) ||
		s.Depth > maxDepth || s.NTracks > maxTracks || (s.InTraf && (s.TrackIdx < -1 || int(s.TrackIdx) >= int(s.NTracks))) || s.Skip < 0 || s.Off < 0 || s.IndexLen < 0 {
		return nil, fmt.Errorf("mp4: resume: inconsistent checkpoint: %w", ErrCorrupt)
	}
	if s.St == stFailed {
		x.err = ErrCorrupt
	}
	return x, nil
}

// Offset returns how many bytes of the stream the Indexer has read.
func (x *Indexer) Offset() int64 { return x.s.Off }

// IndexLen returns how many bytes the Indexer has written to its index.
func (x *Indexer) IndexLen() int64 { return x.s.IndexLen }

// HeaderEnd returns the stream offset of the first moof, or 0 before the
// Indexer has read it: the header region Finalize needs is the stream's
// first HeaderEnd() bytes at least (ftyp and moov).
func (x *Indexer) HeaderEnd() int64 { return x.s.HeaderEnd }

// Err returns the error that stopped the Indexer, if any.
func (x *Indexer) Err() error { return x.err }

func fourCC(s string) uint32 { return binary.BigEndian.Uint32([]byte(s)) }

var (
	boxMoov = fourCC("moov")
	boxMvex = fourCC("mvex")
	boxTrex = fourCC("trex")
	boxMoof = fourCC("moof")
	boxTraf = fourCC("traf")
	boxTfhd = fourCC("tfhd")
	boxTfdt = fourCC("tfdt")
	boxTrun = fourCC("trun")
)

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
			k := min(int64(len(p)), s.Skip)
			s.Skip -= k
			s.Off += k
			p = p[k:]
			if s.Skip == 0 {
				s.St, s.N = stHeader, 0
			}
		case stHeader:
			if s.N == 0 {
				x.closeEnded()
				if x.err != nil {
					break
				}
			}
			s.Buf[s.N] = p[0]
			s.N++
			s.Off++
			p = p[1:]
			if s.N == 8 && binary.BigEndian.Uint32(s.Buf[:]) != 1 || s.N == 16 {
				x.box()
			}
		case stValue:
			k := min(int(s.Want-s.N), len(p))
			copy(s.Buf[s.N:], p[:k])
			s.N += uint8(k)
			s.Off += int64(k)
			p = p[k:]
			if s.N == s.Want {
				s.N = 0
				x.value()
			}
		case stFailed:
			return n, x.err
		}
	}
	return n, x.err
}

// Close tells the Indexer the stream has ended and writes an end record. A
// stream cut inside an mdat (a recorder stopped mid-write) is completed
// there: the end record tells Finalize to fill the rest of the mdat with
// zero bytes. Close returns ErrTruncated for a cut inside a box header or a
// moof, which cannot be completed. Close writes nothing after an error.
// Call it once, before Finalize.
func (x *Indexer) Close() error {
	if x.err != nil {
		return x.err
	}
	s := &x.s
	x.closeEnded()
	if (s.St == stHeader && s.N != 0) || s.Depth > 0 {
		return ErrTruncated
	}
	end := Record{MoofOffset: s.Off, Flags: FlagEnd}
	if s.St == stSkip {
		if end.Pad = s.Skip; end.Pad > MaxPad {
			return ErrTruncated
		}
	}
	x.writeRecord(end)
	return x.err
}

func (x *Indexer) fail(err error) {
	if x.err == nil {
		x.err = err
	}
	x.s.St = stFailed
}

func (x *Indexer) corrupt(format string, args ...any) {
	x.fail(fmt.Errorf("mp4: "+format+": %w", append(args, ErrCorrupt)...))
}

// closeEnded pops the boxes that end at the current offset.
func (x *Indexer) closeEnded() {
	s := &x.s
	for s.Depth > 0 && s.Stack[s.Depth-1].End <= s.Off {
		s.Depth--
		if s.Stack[s.Depth].Type == boxTraf && s.InTraf {
			x.endTraf()
		}
	}
}

// box handles the box header in Buf.
func (x *Indexer) box() {
	s := &x.s
	hl := int64(s.N)
	size := int64(binary.BigEndian.Uint32(s.Buf[:]))
	typ := binary.BigEndian.Uint32(s.Buf[4:])
	if hl == 16 {
		size = int64(binary.BigEndian.Uint64(s.Buf[8:]))
	}
	s.N = 0
	start := s.Off - hl
	s.BoxType, s.BoxStart = typ, start
	if size == 0 {
		x.corrupt("box %q at %d extends to the end of the stream", s.Buf[4:8], start)
		return
	}
	if size < hl {
		x.corrupt("box %q at %d of size %d", s.Buf[4:8], start, size)
		return
	}
	end := start + size
	var parent uint32
	if s.Depth > 0 {
		parent = s.Stack[s.Depth-1].Type
		if end > s.Stack[s.Depth-1].End {
			x.corrupt("box %q at %d overruns its parent", s.Buf[4:8], start)
			return
		}
	}
	data := size - hl
	master := false
	switch {
	case s.Depth == 0 && typ == boxMoov, parent == boxMoov && typ == boxMvex:
		master = true
	case s.Depth == 0 && typ == boxMoof:
		if s.HeaderEnd == 0 {
			s.HeaderEnd = start
		}
		s.MoofOff, s.TrafNum = start, 0
		master = true
	case parent == boxMoof && typ == boxTraf:
		x.startTraf()
		master = true
	case parent == boxMvex && typ == boxTrex:
		x.want(vTrex, min(data, 24), data)
		return
	case parent == boxTraf && typ == boxTfhd:
		x.want(vTfhd, min(data, 32), data)
		return
	case parent == boxTraf && typ == boxTfdt:
		x.want(vTfdt, min(data, 12), data)
		return
	case parent == boxTraf && typ == boxTrun:
		s.TrunNum++
		x.want(vTrunHead, min(data, 8), data)
		return
	}
	if master {
		if s.Depth == maxDepth {
			x.corrupt("boxes nested too deep at %d", start)
			return
		}
		s.Stack[s.Depth] = frame{Type: typ, End: end}
		s.Depth++
		return
	}
	x.want(0, 0, data)
}

// want reads n bytes of the current box's data as value v, then passes over
// the rest of its total bytes of data.
func (x *Indexer) want(v uint8, n, total int64) {
	s := &x.s
	s.Val, s.Want, s.N, s.Skip = v, uint8(n), 0, total-n
	switch {
	case n > 0:
		s.St = stValue
	case s.Skip > 0:
		s.St = stSkip
	default:
		s.St = stHeader
	}
}

// next continues after a value: the next value of the same box (n bytes of
// the data left), or the rest of the box.
func (x *Indexer) next(v uint8, n int64) {
	s := &x.s
	if n > s.Skip {
		x.corrupt("box %08x at %d too short", s.BoxType, s.BoxStart)
		return
	}
	x.want(v, n, s.Skip)
}

func (x *Indexer) value() {
	s := &x.s
	b := s.Buf[:s.Want]
	be := binary.BigEndian
	switch s.Val {
	case vTrex:
		if len(b) < 24 {
			x.corrupt("short trex at %d", s.BoxStart)
			return
		}
		if s.NTracks < maxTracks {
			s.Tracks[s.NTracks] = track{ID: be.Uint32(b[4:]), DefDur: be.Uint32(b[12:]), DefFlags: be.Uint32(b[20:])}
			s.NTracks++
		}
	case vTfhd:
		if !s.InTraf || len(b) < 8 {
			x.corrupt("bad tfhd at %d", s.BoxStart)
			return
		}
		flags := be.Uint32(b) & 0xFFFFFF
		id := be.Uint32(b[4:])
		s.TfFlags = flags
		s.Tr.TrackID = id
		s.TrackIdx = -1
		for i := range s.Tracks[:s.NTracks] {
			if s.Tracks[i].ID == id {
				s.TrackIdx = int8(i)
				s.DefDur, s.DefFlags = s.Tracks[i].DefDur, s.Tracks[i].DefFlags
				s.Time = s.Tracks[i].Next
				s.Tr.Time = s.Time
			}
		}
		p := 8
		field := func(bit uint32, n int) (uint32, bool) {
			if flags&bit == 0 {
				return 0, false
			}
			if p+n > len(b) {
				p = len(b) + 1
				return 0, false
			}
			v := uint32(0)
			if n == 4 {
				v = be.Uint32(b[p:])
			}
			p += n
			return v, true
		}
		if _, ok := field(0x01, 8); ok {
			s.Tr.Flags |= FlagAbsolute
		}
		field(0x02, 4)
		if v, ok := field(0x08, 4); ok {
			s.DefDur = v
		}
		field(0x10, 4)
		if v, ok := field(0x20, 4); ok {
			s.DefFlags = v
		}
		if p > len(b) {
			x.corrupt("short tfhd at %d", s.BoxStart)
		}
	case vTfdt:
		switch {
		case len(b) >= 12 && b[0] == 1:
			s.Time = int64(be.Uint64(b[4:]) & (1<<62 - 1))
		case len(b) >= 8 && b[0] == 0:
			s.Time = int64(be.Uint32(b[4:]))
		default:
			x.corrupt("bad tfdt at %d", s.BoxStart)
			return
		}
		s.Tr.Time = s.Time
	case vTrunHead:
		if !s.InTraf || len(b) < 8 {
			x.corrupt("bad trun at %d", s.BoxStart)
			return
		}
		s.TrunFlags = be.Uint32(b) & 0xFFFFFF
		s.Left, s.Sample, s.HasFirst = be.Uint32(b[4:]), 1, false
		opt := int64(0)
		if s.TrunFlags&0x01 != 0 {
			opt += 4
		}
		if s.TrunFlags&0x04 != 0 {
			opt += 4
		}
		if opt > 0 {
			x.next(vTrunOpt, opt)
			return
		}
		x.entries()
		return
	case vTrunOpt:
		if s.TrunFlags&0x04 != 0 {
			s.FirstFlags, s.HasFirst = be.Uint32(b[len(b)-4:]), true
		}
		x.entries()
		return
	case vTrunEntry:
		var dur, flags uint32 = s.DefDur, s.DefFlags
		p := 0
		if s.TrunFlags&0x100 != 0 {
			dur = be.Uint32(b[p:])
			p += 4
		}
		if s.TrunFlags&0x200 != 0 {
			p += 4
		}
		if s.TrunFlags&0x400 != 0 {
			flags = be.Uint32(b[p:])
		} else if s.Sample == 1 && s.HasFirst {
			flags = s.FirstFlags
		}
		x.sample(dur, flags)
		s.Left--
		x.entries()
		return
	}
	x.next(0, 0)
}

// entryLen returns the length of one trun entry for flags.
func entryLen(flags uint32) int64 {
	n := int64(0)
	for bit := uint32(0x100); bit <= 0x800; bit <<= 1 {
		if flags&bit != 0 {
			n += 4
		}
	}
	return n
}

// entries reads the next trun entry, or accounts for all samples at once
// when the entries are empty (all defaults).
func (x *Indexer) entries() {
	s := &x.s
	if s.Left == 0 {
		x.next(0, 0)
		return
	}
	el := entryLen(s.TrunFlags)
	if el > 0 {
		x.next(vTrunEntry, el)
		return
	}
	// Every sample has the default duration and flags, but the first's.
	first := s.DefFlags
	if s.HasFirst {
		first = s.FirstFlags
	}
	x.sample(s.DefDur, first)
	if rest := int64(s.Left) - 1; rest > 0 {
		if s.DefFlags&sampleNonSync == 0 {
			x.sample(s.DefDur, s.DefFlags) // the first sync sample, when the first was not
			rest--
		}
		s.Time += int64(s.DefDur) * rest
		s.Sample += uint32(rest)
	}
	s.Left = 0
	x.next(0, 0)
}

// sampleNonSync is sample_is_non_sync_sample in the sample flags.
const sampleNonSync = 0x00010000

// sample accounts for the next sample of the current trun.
func (x *Indexer) sample(dur, flags uint32) {
	s := &x.s
	if flags&sampleNonSync == 0 && s.Tr.Flags&FlagSync == 0 {
		s.Tr.Flags |= FlagSync
		s.Tr.SyncTime, s.Tr.Trun, s.Tr.Sample = s.Time, s.TrunNum, s.Sample
	}
	s.Time += int64(dur)
	s.Sample++
}

func (x *Indexer) startTraf() {
	s := &x.s
	s.TrafNum++
	s.InTraf = true
	s.Tr = Record{MoofOffset: s.MoofOff, Traf: s.TrafNum}
	s.TrackIdx, s.TfFlags, s.DefDur, s.DefFlags, s.Time, s.TrunNum = -1, 0, 0, 0, 0, 0
}

// endTraf writes the record of the track fragment that just ended.
func (x *Indexer) endTraf() {
	s := &x.s
	s.InTraf = false
	s.Tr.End = s.Time
	if s.TrackIdx >= 0 {
		s.Tracks[s.TrackIdx].Next = s.Time
	}
	x.writeRecord(s.Tr)
}

// writeRecord appends r to the index.
func (x *Indexer) writeRecord(r Record) {
	r.marshal(x.rec[:])
	if _, err := x.w.Write(x.rec[:]); err != nil {
		x.fail(fmt.Errorf("mp4: write index: %w", err))
		return
	}
	x.s.IndexLen += RecordSize
}
