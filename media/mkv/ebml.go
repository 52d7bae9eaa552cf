package mkv

import (
	"encoding/binary"
	"math"
)

// Element IDs this package reads or writes, with their length marker bits.
const (
	idEBML         = 0x1A45DFA3
	idSegment      = 0x18538067
	idSeekHead     = 0x114D9B74
	idSeek         = 0x4DBB
	idSeekID       = 0x53AB
	idSeekPosition = 0x53AC
	idInfo         = 0x1549A966
	idTimecodeScl  = 0x2AD7B1
	idDuration     = 0x4489
	idTracks       = 0x1654AE6B
	idTrackEntry   = 0xAE
	idTrackNumber  = 0xD7
	idTrackType    = 0x83
	idDefaultDur   = 0x23E383
	idCluster      = 0x1F43B675
	idTimecode     = 0xE7
	idSimpleBlock  = 0xA3
	idBlockGroup   = 0xA0
	idBlock        = 0xA1
	idBlockDur     = 0x9B
	idRefBlock     = 0xFB
	idCues         = 0x1C53BB6B
	idCuePoint     = 0xBB
	idCueTime      = 0xB3
	idCueTrackPos  = 0xB7
	idCueTrack     = 0xF7
	idCueClusterPs = 0xF1
	idChapters     = 0x1043A770
	idTags         = 0x1254C367
	idAttachments  = 0x1941A469
	idVoid         = 0xEC
	idCRC32        = 0xBF
)

// unknownSize is the value of an element size whose bits are all ones: a
// live muxer's Segment or Cluster whose end it cannot know in advance.
const unknownSize = -1

// isTopLevel reports whether id is a child of the Segment (or a Segment or
// EBML header itself): such an element ends any open element of unknown size.
func isTopLevel(id uint32) bool {
	switch id {
	case idSeekHead, idInfo, idTracks, idCluster, idCues, idChapters, idTags, idAttachments, idSegment, idEBML:
		return true
	}
	return false
}

// readID reads an element ID of 1 to 4 bytes, marker bits included. n is 0
// when b is too short, -1 when b cannot start an ID.
func readID(b []byte) (id uint32, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	l := idLen(b[0])
	if l == 0 {
		return 0, -1
	}
	if len(b) < l {
		return 0, 0
	}
	for _, c := range b[:l] {
		id = id<<8 | uint32(c)
	}
	return id, l
}

// idLen returns an ID's length from its first byte, or 0 when it is invalid.
func idLen(c byte) int {
	switch {
	case c&0x80 != 0:
		return 1
	case c&0x40 != 0:
		return 2
	case c&0x20 != 0:
		return 3
	case c&0x10 != 0:
		return 4
	}
	return 0
}

// sizeLen returns a size's length from its first byte, or 0 when invalid.
func sizeLen(c byte) int {
	for n := 1; n <= 8; n++ {
		if c&(0x80>>(n-1)) != 0 {
			return n
		}
	}
	return 0
}

// readSize reads an element data size: its value or unknownSize, and its
// length; n is 0 when b is too short, -1 when b cannot start a size.
func readSize(b []byte) (size int64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	l := sizeLen(b[0])
	if l == 0 {
		return 0, -1
	}
	if len(b) < l {
		return 0, 0
	}
	v := uint64(b[0] & (0xFF >> l))
	all := v == uint64(0xFF>>l)
	for _, c := range b[1:l] {
		v = v<<8 | uint64(c)
		all = all && c == 0xFF
	}
	if all {
		return unknownSize, l
	}
	return int64(v), l
}

// readHeader reads an element header from b: ID, data size and header
// length; n is 0 when b is too short and -1 when it is not a header.
func readHeader(b []byte) (id uint32, size int64, n int) {
	id, in := readID(b)
	if in <= 0 {
		return 0, 0, in
	}
	size, sn := readSize(b[in:])
	if sn <= 0 {
		return 0, 0, sn
	}
	return id, size, in + sn
}

// readUint reads an unsigned integer element's data of up to 8 bytes.
func readUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// appendID appends an element ID (its bytes hold the length marker).
func appendID(b []byte, id uint32) []byte {
	switch {
	case id >= 1<<24:
		return append(b, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<16:
		return append(b, byte(id>>16), byte(id>>8), byte(id))
	case id >= 1<<8:
		return append(b, byte(id>>8), byte(id))
	}
	return append(b, byte(id))
}

// appendSize appends a data size in the shortest form, which is never the
// all-ones "unknown" pattern.
func appendSize(b []byte, size int64) []byte {
	n := 1
	for n < 8 && uint64(size) >= 1<<(7*n)-1 {
		n++
	}
	return appendSizeN(b, size, n)
}

// appendSizeN appends a data size in exactly n bytes.
func appendSizeN(b []byte, size int64, n int) []byte {
	v := uint64(size) | 1<<(7*n)
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendElem appends an element with the given data.
func appendElem(b []byte, id uint32, data []byte) []byte {
	b = appendID(b, id)
	b = appendSize(b, int64(len(data)))
	return append(b, data...)
}

// appendUint appends an unsigned integer element in the fewest bytes.
func appendUint(b []byte, id uint32, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(8*n) {
		n++
	}
	return appendUintN(b, id, v, n)
}

// appendUintN appends an unsigned integer element in exactly n bytes.
func appendUintN(b []byte, id uint32, v uint64, n int) []byte {
	b = appendID(b, id)
	b = append(b, 0x80|byte(n))
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// appendFloat appends an 8-byte float element.
func appendFloat(b []byte, id uint32, f float64) []byte {
	b = appendID(b, id)
	b = append(b, 0x88)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// appendVoid appends a Void element of exactly n ≥ 2 bytes in all.
func appendVoid(b []byte, n int) []byte {
	b = append(b, idVoid)
	if n-2 < 0x7F {
		b = appendSizeN(b, int64(n-2), 1)
		return append(b, make([]byte, n-2)...)
	}
	b = appendSizeN(b, int64(n-9), 8)
	return append(b, make([]byte, n-9)...)
}
