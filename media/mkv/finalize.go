package mkv

import (
	"errors"
	"fmt"
	"io"
)

// ErrShortHeader reports a header region that ends before the Tracks
// element does: the part held back must reach Indexer.HeaderEnd().
var ErrShortHeader = errors.New("mkv: header region ends inside the segment header")

// Finalize completes a live stream into a seekable file. header is the
// stream's first bytes (the part held back, at least Indexer.HeaderEnd()
// bytes), index the records an Indexer wrote for the whole stream (Close
// included), and total the stream's length. The finished file is first, then the stream's bytes
// from len(header) to total unchanged, then tail:
//
//   - first is header with the Segment's size set, a Duration in the Info, a
//     SeekHead pointing at the Info, the Tracks, the other top-level elements
//     and the Cues. It has the length of header whenever the header's
//     SeekHead and Void leave room, and is otherwise a few bytes longer,
//     never shorter (a first part keeps S3's minimum part size).
//   - tail is a Cues element with a CuePoint for each cluster holding a
//     video keyframe, or each cluster when the stream has no video. When
//     the stream was cut inside a block, tail starts with what completes it
//     (see Indexer.Close).
func Finalize(header []byte, index io.ReaderAt, total int64) (first, tail []byte, err error) {
	h, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	if total < int64(len(header)) {
		return nil, nil, fmt.Errorf("mkv: finalize: stream of %d bytes shorter than its header region of %d", total, len(header))
	}
	var (
		end     int64
		seen    bool
		nrec    int
		lastOff int64 = -1
	)
	var stop Record // the end record, if any
	err = ReadIndex(index, func(r Record) error {
		if r.Flags&FlagEnd != 0 {
			stop = r
			return nil
		}
		if r.Offset <= lastOff || r.Offset < h.firstCluster || r.Offset >= total {
			return fmt.Errorf("mkv: finalize: index record of cluster at %d out of order or outside the stream: %w", r.Offset, ErrCorrupt)
		}
		lastOff = r.Offset
		if r.Flags&FlagBlocks != 0 && (!seen || r.End > end) {
			end, seen = r.End, true
		}
		nrec++
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// What completes a stream cut inside an element.
	if stop.Flags&FlagEnd == 0 {
		return nil, nil, fmt.Errorf("mkv: finalize: the index has no end record (Indexer.Close): %w", ErrCorrupt)
	}
	var pad []byte
	{
		if stop.Offset != total {
			return nil, nil, fmt.Errorf("mkv: finalize: the index ends the stream at %d, not %d: %w", stop.Offset, total, ErrCorrupt)
		}
		if stop.Pad < 0 || stop.Pad+stop.Voids[0]+stop.Voids[1] > MaxPad {
			return nil, nil, fmt.Errorf("mkv: finalize: padding of %d bytes: %w", stop.Pad, ErrCorrupt)
		}
		pad = make([]byte, stop.Pad)
		for _, v := range stop.Voids {
			if v == 1 || v < 0 || v > MaxPad {
				return nil, nil, fmt.Errorf("mkv: finalize: Void of %d bytes: %w", v, ErrCorrupt)
			}
			if v > 0 {
				pad = appendVoid(pad, int(v))
			}
		}
	}

	// The new segment header: SeekHead, Info, the other top-level
	// elements, then padding to keep the clusters where they are.
	info := appendFloat(h.infoBody(), idDuration, float64(end))
	infoElem := appendElem(nil, idInfo, info)
	hasCues := nrec > 0
	entries := 2 + len(h.others)
	if hasCues {
		entries++
	}
	// SeekPosition is written in 8 bytes, so the SeekHead's size does not
	// depend on the positions it holds.
	const seekLen = 2 + 1 + (2 + 1 + 4) + (2 + 1 + 8)
	seekHeadLen := 4 + len(appendSize(nil, int64(entries*seekLen))) + entries*seekLen
	body := seekHeadLen + len(infoElem) + len(h.tracks)
	for _, o := range h.others {
		body += len(o.raw)
	}
	segHdrLen := 4 + 8
	newSegData := int64(len(h.ebml) + segHdrLen)
	void := int(h.firstCluster - newSegData - int64(body))
	switch {
	case void < 0:
		void = 0 // the clusters move by delta
	case void == 1:
		void = 2 // the smallest Void: first grows by a byte rather than shrink below an S3 part's minimum
	}
	newFirstCluster := newSegData + int64(body+void)
	delta := newFirstCluster - h.firstCluster

	// The Cues, with cluster positions in the new layout.
	cuesAt := total + int64(len(pad)) + delta - newSegData
	if hasCues {
		var points []byte
		err = ReadIndex(index, func(r Record) error {
			if r.Flags&FlagEnd != 0 {
				return nil
			}
			var t int64
			var tn uint16
			switch {
			case h.video && r.Flags&FlagKey != 0:
				t, tn = r.KeyTime, r.KeyTrack
			case !h.video && r.Flags&FlagBlocks != 0:
				t, tn = r.KeyTime, r.KeyTrack
			default:
				return nil
			}
			var pos []byte
			pos = appendUint(pos, idCueTrack, uint64(tn))
			pos = appendUint(pos, idCueClusterPs, uint64(r.Offset+delta-newSegData))
			var cp []byte
			cp = appendUint(cp, idCueTime, uint64(max(t, 0)))
			cp = appendElem(cp, idCueTrackPos, pos)
			points = appendElem(points, idCuePoint, cp)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if len(points) > 0 {
			tail = appendElem(pad, idCues, points)
		} else {
			hasCues = false
			// Keep the SeekHead's length: point the Cues entry at
			// the Info instead of dropping it.
		}
	}

	// Positions, relative to the Segment's data.
	pos := int64(seekHeadLen)
	var seek []byte
	addSeek := func(id uint32, at int64) {
		var e []byte
		e = appendElem(e, idSeekID, appendID(nil, id))
		e = appendUintN(e, idSeekPosition, uint64(at), 8)
		seek = appendElem(seek, idSeek, e)
	}
	addSeek(idInfo, pos)
	pos += int64(len(infoElem))
	addSeek(idTracks, pos)
	pos += int64(len(h.tracks))
	for _, o := range h.others {
		addSeek(o.id, pos)
		pos += int64(len(o.raw))
	}
	if entries > 2+len(h.others) {
		if hasCues {
			addSeek(idCues, cuesAt)
		} else {
			addSeek(idInfo, int64(seekHeadLen))
		}
	}

	if tail == nil {
		tail = pad
	}
	segSize := int64(body+void) + (int64(len(header)) - h.firstCluster) + (total - int64(len(header))) + int64(len(tail))
	first = make([]byte, 0, newFirstCluster+int64(len(header))-h.firstCluster)
	first = append(first, h.ebml...)
	first = appendID(first, idSegment)
	first = appendSizeN(first, segSize, 8)
	first = appendElem(first, idSeekHead, seek)
	first = append(first, infoElem...)
	first = append(first, h.tracks...)
	for _, o := range h.others {
		first = append(first, o.raw...)
	}
	if void > 0 {
		first = appendVoid(first, void)
	}
	if int64(len(first)) != newFirstCluster {
		return nil, nil, fmt.Errorf("mkv: finalize: internal error: segment header of %d bytes, want %d", len(first), newFirstCluster)
	}
	first = append(first, header[h.firstCluster:]...)
	return first, tail, nil
}

// header is what Finalize needs from the header region.
type header struct {
	ebml         []byte // the EBML header element
	info         []byte // the Info element's data
	tracks       []byte // the Tracks element
	others       []rawElem
	firstCluster int64 // offset of the first Cluster, or len(header)
	video        bool
}

type rawElem struct {
	id  uint32
	raw []byte
}

// infoBody returns a copy of the Info's children without Duration (replaced)
// and CRC-32 (no longer valid once the Info changes).
func (h *header) infoBody() []byte {
	var out []byte
	b := h.info
	for len(b) > 0 {
		id, size, n := readHeader(b)
		if n <= 0 || size < 0 || int64(len(b)-n) < size {
			break // parseHeader checked the Info; not reached
		}
		if id != idDuration && id != idCRC32 {
			out = append(out, b[:n+int(size)]...)
		}
		b = b[n+int(size):]
	}
	return out
}

// parseHeader reads the EBML header, the Segment header and the top-level
// elements before the first Cluster.
func parseHeader(b []byte) (*header, error) {
	id, size, n := readHeader(b)
	if n <= 0 || id != idEBML || size < 0 || int64(len(b)-n) < size {
		return nil, fmt.Errorf("mkv: finalize: no EBML header: %w", ErrCorrupt)
	}
	h := &header{ebml: b[:n+int(size)]}
	p := n + int(size)
	id, size, n = readHeader(b[p:])
	if n == 0 {
		return nil, ErrShortHeader
	}
	if n < 0 || id != idSegment {
		return nil, fmt.Errorf("mkv: finalize: no Segment after the EBML header: %w", ErrCorrupt)
	}
	p += n
	segEnd := int64(len(b))
	if size != unknownSize && int64(p)+size < segEnd {
		segEnd = int64(p) + size
	}
	var haveInfo, haveTracks bool
	for {
		if int64(p) >= segEnd {
			h.firstCluster = int64(p)
			break
		}
		id, size, n := readHeader(b[p:segEnd])
		if n == 0 {
			return nil, ErrShortHeader
		}
		if n < 0 {
			return nil, fmt.Errorf("mkv: finalize: bad element header at %d: %w", p, ErrCorrupt)
		}
		if id == idCluster {
			h.firstCluster = int64(p)
			break
		}
		if size == unknownSize {
			return nil, fmt.Errorf("mkv: finalize: element %X at %d of unknown size: %w", id, p, ErrCorrupt)
		}
		if int64(p+n)+size > segEnd {
			if segEnd == int64(len(b)) {
				return nil, ErrShortHeader
			}
			return nil, fmt.Errorf("mkv: finalize: element %X at %d overruns the Segment: %w", id, p, ErrCorrupt)
		}
		raw := b[p : p+n+int(size)]
		data := raw[n:]
		switch id {
		case idInfo:
			if haveInfo || !wellFormed(data) {
				return nil, fmt.Errorf("mkv: finalize: bad Info at %d: %w", p, ErrCorrupt)
			}
			h.info, haveInfo = data, true
		case idTracks:
			if haveTracks {
				return nil, fmt.Errorf("mkv: finalize: second Tracks at %d: %w", p, ErrCorrupt)
			}
			h.tracks, haveTracks = raw, true
			h.readTracks(data)
		case idSeekHead, idVoid, idCues, idCRC32:
			// Rebuilt, or dropped: a Cues in the header region
			// would index another layout.
		default:
			h.others = append(h.others, rawElem{id: id, raw: raw})
		}
		p += len(raw)
	}
	if !haveInfo || !haveTracks {
		if h.firstCluster == int64(len(b)) {
			return nil, ErrShortHeader
		}
		return nil, fmt.Errorf("mkv: finalize: no Info or no Tracks before the first Cluster: %w", ErrCorrupt)
	}
	return h, nil
}

// wellFormed reports whether b is a sequence of whole elements.
func wellFormed(b []byte) bool {
	for len(b) > 0 {
		_, size, n := readHeader(b)
		if n <= 0 || size < 0 || int64(len(b)-n) < size {
			return false
		}
		b = b[n+int(size):]
	}
	return true
}

// readTracks notes whether the Tracks hold a video track.
func (h *header) readTracks(b []byte) {
	for len(b) > 0 {
		id, size, n := readHeader(b)
		if n <= 0 || size < 0 || int64(len(b)-n) < size {
			return
		}
		if id == idTrackEntry {
			var typ uint64
			e := b[n : n+int(size)]
			for len(e) > 0 {
				cid, csize, cn := readHeader(e)
				if cn <= 0 || csize < 0 || int64(len(e)-cn) < csize {
					break
				}
				if cid == idTrackType && csize <= 8 {
					typ = readUint(e[cn : cn+int(csize)])
				}
				e = e[cn+int(csize):]
			}
			if typ == trackVideo {
				h.video = true
			}
		}
		b = b[n+int(size):]
	}
}
