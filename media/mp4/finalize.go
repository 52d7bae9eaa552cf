package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrShortHeader reports a header region that ends before the moov box
// does: the part held back must reach Indexer.HeaderEnd().
var ErrShortHeader = errors.New("mp4: header region ends inside the ftyp or moov box")

// ErrNoRoom reports a stream whose fragments give absolute byte positions
// (tfhd base-data-offset, ffmpeg's default without +default_base_moof) and
// whose header has no room for durations that need 64-bit fields: the first
// part cannot change length without breaking every later fragment.
var ErrNoRoom = errors.New("mp4: no room in the header for the durations")

// Finalize completes a live fragmented MP4 stream into a file players handle
// like a finished one. header is the stream's first bytes (the part held
// back, at least Indexer.HeaderEnd() bytes), index the records an Indexer
// wrote for the whole stream (Close included), and total the stream's
// length. The finished
// file is first, then the stream's bytes from len(header) to total
// unchanged, then tail:
//
//   - first is header with the durations set in mvhd, each tkhd and mdhd,
//     and a mehd (fragment duration) in mvex. When the fragments address
//     their data by absolute offsets, first keeps header's length: the moov's
//     udta and free boxes give way to the mehd (a free box fills the rest),
//     and without room the mehd is left out. Otherwise first is a few bytes
//     longer, never shorter.
//   - tail is an mfra box: a tfra per track with an entry for each fragment's
//     first sync sample, and mfro. When the stream was cut inside an mdat,
//     tail starts with the zero bytes that complete it (see Indexer.Close).
func Finalize(header []byte, index io.ReaderAt, total int64) (first, tail []byte, err error) {
	h, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	if total < int64(len(header)) {
		return nil, nil, fmt.Errorf("mp4: finalize: stream of %d bytes shorter than its header region of %d", total, len(header))
	}
	absolute := false
	last := int64(-1)
	var pad []byte
	err = ReadIndex(index, func(r Record) error {
		if r.Flags&FlagEnd != 0 {
			if r.MoofOffset != total || r.Pad < 0 || r.Pad > MaxPad {
				return fmt.Errorf("mp4: finalize: the index ends the stream at %d, not %d: %w", r.MoofOffset, total, ErrCorrupt)
			}
			pad = make([]byte, r.Pad) // not nil: the end record was read
			return nil
		}
		if r.MoofOffset < last || r.MoofOffset < h.firstMoof || r.MoofOffset >= total {
			return fmt.Errorf("mp4: finalize: index record of moof at %d out of order or outside the stream: %w", r.MoofOffset, ErrCorrupt)
		}
		last = r.MoofOffset
		absolute = absolute || r.Flags&FlagAbsolute != 0
		if t := h.track(r.TrackID); t != nil && r.End > t.end {
			t.end = r.End
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if pad == nil {
		return nil, nil, fmt.Errorf("mp4: finalize: the index has no end record (Indexer.Close): %w", ErrCorrupt)
	}
	var movieDur uint64
	for i := range h.tracks {
		t := &h.tracks[i]
		if t.timescale > 0 {
			t.movieDur = scale(uint64(t.end), h.timescale, t.timescale)
			movieDur = max(movieDur, t.movieDur)
		}
	}

	var prefix []byte
	if !absolute {
		prefix = h.prefix(movieDur, !h.hasMehd, nil, 0)
	} else {
		prefix, err = h.fit(movieDur)
		if err != nil {
			return nil, nil, err
		}
	}
	delta := int64(len(prefix)) - h.firstMoof
	first = append(prefix, header[h.firstMoof:]...)

	// The mfra: a tfra per track, entries in the new layout.
	entries := make([][]byte, len(h.tracks))
	err = ReadIndex(index, func(r Record) error {
		if r.Flags&FlagSync == 0 || r.Flags&FlagEnd != 0 {
			return nil
		}
		for i := range h.tracks {
			if h.tracks[i].id == r.TrackID {
				e := entries[i]
				e = binary.BigEndian.AppendUint64(e, uint64(r.SyncTime))
				e = binary.BigEndian.AppendUint64(e, uint64(r.MoofOffset+delta))
				e = binary.BigEndian.AppendUint32(e, r.Traf)
				e = binary.BigEndian.AppendUint32(e, r.Trun)
				e = binary.BigEndian.AppendUint32(e, r.Sample)
				entries[i] = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var mfra []byte
	for i, t := range h.tracks {
		if len(entries[i]) == 0 {
			continue
		}
		var b []byte
		b = binary.BigEndian.AppendUint32(b, 1<<24) // version 1: 64-bit time and offset
		b = binary.BigEndian.AppendUint32(b, t.id)
		b = binary.BigEndian.AppendUint32(b, 0x3F) // traf, trun and sample numbers in 4 bytes
		b = binary.BigEndian.AppendUint32(b, uint32(len(entries[i])/28))
		mfra = appendBox(mfra, "tfra", b, entries[i])
	}
	if len(mfra) > 0 {
		mfroLen := 16
		mfro := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(8+len(mfra)+mfroLen))
		mfra = appendBox(mfra, "mfro", mfro)
		tail = appendBox(pad, "mfra", mfra)
	} else {
		tail = pad
	}
	return first, tail, nil
}

// scale converts v from timescale from to timescale to, rounding up.
func scale(v uint64, to, from uint32) uint64 {
	if from == 0 {
		return 0
	}
	hi, lo := mul64(v, uint64(to))
	if hi != 0 {
		return v / uint64(from) * uint64(to) // too long to matter; avoid overflow
	}
	return (lo + uint64(from) - 1) / uint64(from)
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1, w2 := t&mask32, t>>32
	w1 += a0 * b1
	return a1*b1 + w2 + w1>>32, a * b
}

// appendBox appends a box of type typ holding data.
func appendBox(b []byte, typ string, data ...[]byte) []byte {
	n := 8
	for _, d := range data {
		n += len(d)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = append(b, typ...)
	for _, d := range data {
		b = append(b, d...)
	}
	return b
}

// box is a box of the header region.
type box struct {
	typ string
	raw []byte // the whole box
	hl  int    // its header length
}

func (b box) data() []byte { return b.raw[b.hl:] }

// boxes splits b into whole boxes; rest is what is left of a box cut short.
func boxes(b []byte) (out []box, rest []byte, err error) {
	for len(b) > 0 {
		if len(b) < 8 {
			return out, b, nil
		}
		size := uint64(binary.BigEndian.Uint32(b))
		hl := 8
		if size == 1 {
			if len(b) < 16 {
				return out, b, nil
			}
			size, hl = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < uint64(hl) {
			return nil, nil, fmt.Errorf("mp4: finalize: box %q of size %d: %w", b[4:8], size, ErrCorrupt)
		}
		if size > uint64(len(b)) {
			return out, b, nil
		}
		out = append(out, box{typ: string(b[4:8]), raw: b[:size], hl: hl})
		b = b[size:]
	}
	return out, nil, nil
}

type trak struct {
	id        uint32
	timescale uint32 // mdhd
	end       int64  // latest fragment end, in timescale
	movieDur  uint64 // in the movie timescale
}

// header is what Finalize needs from the header region.
type header struct {
	top       []box // the top-level boxes before the first moof
	moov      []box // its children
	firstMoof int64
	timescale uint32 // mvhd
	tracks    []trak
	hasMehd   bool
}

func (h *header) track(id uint32) *trak {
	for i := range h.tracks {
		if h.tracks[i].id == id {
			return &h.tracks[i]
		}
	}
	return nil
}

func parseHeader(b []byte) (*header, error) {
	h := &header{}
	all, rest, err := boxes(b)
	if err != nil {
		return nil, err
	}
	h.firstMoof = int64(len(b) - len(rest))
	for i, x := range all {
		if x.typ == "moof" {
			h.top = all[:i]
			h.firstMoof = offsetOf(b, x.raw)
			break
		}
		h.top = all[:i+1]
	}
	var moov *box
	for i := range h.top {
		if h.top[i].typ == "moov" {
			moov = &h.top[i]
		}
	}
	if moov == nil {
		if len(rest) > 0 {
			return nil, ErrShortHeader
		}
		return nil, fmt.Errorf("mp4: finalize: no moov before the first moof: %w", ErrCorrupt)
	}
	if h.moov, rest, err = boxes(moov.data()); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("mp4: finalize: bad moov: %w", ErrCorrupt)
	}
	var haveMvex bool
	for _, c := range h.moov {
		switch c.typ {
		case "mvhd":
			d := c.data()
			switch {
			case len(d) >= 20 && d[0] == 0:
				h.timescale = binary.BigEndian.Uint32(d[12:])
			case len(d) >= 32 && d[0] == 1:
				h.timescale = binary.BigEndian.Uint32(d[20:])
			default:
				return nil, fmt.Errorf("mp4: finalize: bad mvhd: %w", ErrCorrupt)
			}
		case "trak":
			t, err := parseTrak(c.data())
			if err != nil {
				return nil, err
			}
			h.tracks = append(h.tracks, t)
		case "mvex":
			haveMvex = true
			kids, _, err := boxes(c.data())
			if err != nil {
				return nil, err
			}
			for _, k := range kids {
				h.hasMehd = h.hasMehd || k.typ == "mehd"
			}
		}
	}
	if h.timescale == 0 || !haveMvex {
		return nil, fmt.Errorf("mp4: finalize: no mvhd timescale or no mvex (not fragmented): %w", ErrCorrupt)
	}
	return h, nil
}

// offsetOf returns where sub starts in b (sub is a subslice of b).
func offsetOf(b, sub []byte) int64 {
	return int64(cap(b) - cap(sub))
}

func parseTrak(b []byte) (trak, error) {
	var t trak
	kids, _, err := boxes(b)
	if err != nil {
		return t, err
	}
	for _, k := range kids {
		d := k.data()
		switch k.typ {
		case "tkhd":
			if t.id == 0 {
				t.id = tkhdID(d)
			}
		case "mdia":
			mk, _, err := boxes(d)
			if err != nil {
				return t, err
			}
			for _, m := range mk {
				md := m.data()
				if m.typ != "mdhd" {
					continue
				}
				switch {
				case len(md) >= 20 && md[0] == 0:
					t.timescale = binary.BigEndian.Uint32(md[12:])
				case len(md) >= 32 && md[0] == 1:
					t.timescale = binary.BigEndian.Uint32(md[20:])
				}
			}
		}
	}
	if t.id == 0 {
		return t, fmt.Errorf("mp4: finalize: trak without tkhd: %w", ErrCorrupt)
	}
	return t, nil
}

// fit returns the new prefix with the length of the old one: removable boxes
// (top-level and moov-level free and skip, moov's udta) give way, a free box
// fills what is left, and the mehd is left out when nothing else fits.
func (h *header) fit(movieDur uint64) ([]byte, error) {
	var removable []string
	for _, b := range h.top {
		if b.typ == "free" || b.typ == "skip" {
			removable = append(removable, "top:"+b.typ)
		}
	}
	for _, b := range h.moov {
		if b.typ == "udta" || b.typ == "free" || b.typ == "skip" {
			removable = append(removable, "moov:"+b.typ)
		}
	}
	for _, mehd := range []bool{!h.hasMehd, false} {
		for k := 0; k <= len(removable); k++ {
			p := h.prefix(movieDur, mehd, removable[:k], 0)
			pad := h.firstMoof - int64(len(p))
			if pad == 0 || pad >= 8 {
				return h.prefix(movieDur, mehd, removable[:k], pad), nil
			}
		}
	}
	return nil, ErrNoRoom
}

// prefix builds the boxes before the first moof: the rewritten moov, without
// the boxes named in remove ("top:free", "moov:udta"; each name removes one
// box, the first not yet removed), with a free box of pad bytes at the end.
func (h *header) prefix(movieDur uint64, addMehd bool, remove []string, pad int64) []byte {
	removed := map[string]int{}
	for _, r := range remove {
		removed[r]++
	}
	drop := func(name string) bool {
		if removed[name] > 0 {
			removed[name]--
			return true
		}
		return false
	}
	var out []byte
	for _, b := range h.top {
		switch {
		case (b.typ == "free" || b.typ == "skip") && drop("top:"+b.typ):
		case b.typ == "moov":
			var moov []byte
			for _, c := range h.moov {
				switch {
				case (c.typ == "udta" || c.typ == "free" || c.typ == "skip") && drop("moov:"+c.typ):
				case c.typ == "mvhd":
					moov = append(moov, withDuration(c, movieDur, 4)...)
				case c.typ == "trak":
					moov = append(moov, h.trak(c)...)
				case c.typ == "mvex":
					moov = append(moov, mvex(c, movieDur, addMehd)...)
				default:
					moov = append(moov, c.raw...)
				}
			}
			out = appendBox(out, "moov", moov)
		default:
			out = append(out, b.raw...)
		}
	}
	if pad > 0 {
		out = appendBox(out, "free", make([]byte, pad-8))
	}
	return out
}

// trak rewrites a trak with the durations of its track.
func (h *header) trak(b box) []byte {
	kids, _, _ := boxes(b.data())
	var id uint32
	for _, k := range kids {
		if k.typ == "tkhd" && id == 0 {
			id = tkhdID(k.data())
		}
	}
	t := h.track(id)
	if t == nil {
		return b.raw
	}
	var out []byte
	for _, k := range kids {
		switch k.typ {
		case "tkhd":
			out = append(out, withDuration(k, t.movieDur, 8)...)
		case "mdia":
			mk, _, _ := boxes(k.data())
			var mdia []byte
			for _, m := range mk {
				if m.typ == "mdhd" {
					mdia = append(mdia, withDuration(m, uint64(t.end), 4)...)
				} else {
					mdia = append(mdia, m.raw...)
				}
			}
			out = appendBox(out, "mdia", mdia)
		default:
			out = append(out, k.raw...)
		}
	}
	return appendBox(nil, "trak", out)
}

// mvex rewrites an mvex with a mehd of the movie's duration: the existing
// one replaced, or a new one first when add.
func mvex(b box, movieDur uint64, add bool) []byte {
	kids, _, _ := boxes(b.data())
	mehd := func() []byte {
		if movieDur > 1<<32-1 {
			return appendBox(nil, "mehd", []byte{1, 0, 0, 0}, binary.BigEndian.AppendUint64(nil, movieDur))
		}
		return appendBox(nil, "mehd", []byte{0, 0, 0, 0}, binary.BigEndian.AppendUint32(nil, uint32(movieDur)))
	}
	var out []byte
	if add {
		out = mehd()
	}
	for _, k := range kids {
		if k.typ == "mehd" {
			out = append(out, mehd()...)
		} else {
			out = append(out, k.raw...)
		}
	}
	return appendBox(nil, "mvex", out)
}

// withDuration rewrites an mvhd, tkhd or mdhd (a full box whose version 0
// has creation and modification times of 4 bytes, then mid bytes, then a
// 4-byte duration; version 1 has 8-byte times and duration) with dur,
// turning version 0 into 1 when dur needs 64 bits.
func withDuration(b box, dur uint64, mid int) []byte {
	d := b.data()
	v0 := d[0] == 0
	at := 4 + 8 + mid
	if !v0 {
		at = 4 + 16 + mid
	}
	if need := at + 8; len(d) < need && !(v0 && len(d) >= at+4) {
		return b.raw
	}
	if !v0 {
		out := append([]byte(nil), d...)
		binary.BigEndian.PutUint64(out[at:], dur)
		return appendBox(nil, b.typ, out)
	}
	if dur <= 1<<32-1 {
		out := append([]byte(nil), d...)
		binary.BigEndian.PutUint32(out[at:], uint32(dur))
		return appendBox(nil, b.typ, out)
	}
	out := []byte{1, d[1], d[2], d[3]}
	out = binary.BigEndian.AppendUint64(out, uint64(binary.BigEndian.Uint32(d[4:])))
	out = binary.BigEndian.AppendUint64(out, uint64(binary.BigEndian.Uint32(d[8:])))
	out = append(out, d[12:12+mid]...)
	out = binary.BigEndian.AppendUint64(out, dur)
	out = append(out, d[at+4:]...)
	return appendBox(nil, b.typ, out)
}

// tkhdID returns a tkhd's track_ID, or 0.
func tkhdID(d []byte) uint32 {
	switch {
	case len(d) >= 16 && d[0] == 0:
		return binary.BigEndian.Uint32(d[12:])
	case len(d) >= 24 && d[0] == 1:
		return binary.BigEndian.Uint32(d[20:])
	}
	return 0
}
