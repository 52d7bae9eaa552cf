// Package media recognizes the containers recsink finalizes from the first
// bytes of a recording. Its subpackages mkv and mp4 index a live stream as it
// arrives and, at the stop, complete it into a file that players can seek:
// a duration in the header and an index (Cues, mfra) appended as a tail.
package media

import (
	"bytes"
	"encoding/binary"
)

// Kind is a container recsink recognizes.
type Kind int

// The containers Sniff tells apart.
const (
	Unknown  Kind = iota // not a container recsink finalizes; stored as it is
	Matroska             // Matroska (DocType "matroska")
	WebM                 // WebM (Matroska with DocType "webm")
	MP4                  // ISO BMFF: MP4 or fragmented MP4
)

// SniffLen is how many first bytes Sniff needs to decide in every case it
// recognizes; fewer may give Unknown for a stream that is in fact a container.
const SniffLen = 64

// String returns the kind's name, as in logs.
func (k Kind) String() string {
	switch k {
	case Matroska:
		return "matroska"
	case WebM:
		return "webm"
	case MP4:
		return "mp4"
	}
	return "unknown"
}

// ContentType returns the object's Content-Type for k, or
// application/octet-stream for Unknown.
func (k Kind) ContentType() string {
	switch k {
	case Matroska:
		return "video/x-matroska"
	case WebM:
		return "video/webm"
	case MP4:
		return "video/mp4"
	}
	return "application/octet-stream"
}

// Ext returns the object's file extension for k without the dot, or "" for
// Unknown.
func (k Kind) Ext() string {
	switch k {
	case Matroska:
		return "mkv"
	case WebM:
		return "webm"
	case MP4:
		return "mp4"
	}
	return ""
}

// Sniff tells which container the stream starting with first is. Give it at
// least SniffLen bytes when the stream has them.
func Sniff(first []byte) Kind {
	if bytes.HasPrefix(first, []byte{0x1A, 0x45, 0xDF, 0xA3}) {
		return sniffEBML(first)
	}
	if len(first) >= 8 {
		switch string(first[4:8]) {
		case "ftyp", "styp":
			return MP4
		case "moov", "moof":
			// A stream without ftyp is unusual but valid for the box types
			// that can only be ISO BMFF; "free" and "mdat" alone are too
			// common in other data to decide on.
			if binary.BigEndian.Uint32(first) >= 8 {
				return MP4
			}
		}
	}
	return Unknown
}

// sniffEBML reads the DocType of the EBML header at the start of b.
func sniffEBML(b []byte) Kind {
	p := 4
	size, n := vint(b[p:])
	if n == 0 {
		return Unknown
	}
	p += n
	end := len(b)
	if size >= 0 && int64(end-p) > size {
		end = p + int(size)
	}
	for p < end {
		// The EBML header's children have IDs of 1 or 2 bytes.
		idLen := 1
		if b[p]&0x80 == 0 {
			idLen = 2
		}
		if p+idLen > end {
			break
		}
		id := b[p : p+idLen]
		p += idLen
		sz, n := vint(b[p:end])
		if n == 0 || sz < 0 {
			break
		}
		p += n
		if int64(end-p) < sz {
			break
		}
		if bytes.Equal(id, []byte{0x42, 0x82}) { // DocType
			doc := string(bytes.TrimRight(b[p:p+int(sz)], "\x00"))
			switch doc {
			case "webm":
				return WebM
			case "matroska":
				return Matroska
			}
			return Unknown
		}
		p += int(sz)
	}
	return Unknown
}

// vint reads an EBML variable-size integer: its value (-1 for the reserved
// "unknown" value) and its length, or 0 when b does not hold a whole one.
func vint(b []byte) (int64, int) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	n := 1
	for mask := byte(0x80); b[0]&mask == 0; mask >>= 1 {
		n++
	}
	if len(b) < n {
		return 0, 0
	}
	v := int64(b[0] & (0xFF >> n))
	all := v == int64(0xFF>>n)
	for _, c := range b[1:n] {
		v = v<<8 | int64(c)
		all = all && c == 0xFF
	}
	if all {
		return -1, n
	}
	return v, n
}
