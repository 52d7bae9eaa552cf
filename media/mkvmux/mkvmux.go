// Package mkvmux writes a live Matroska stream from H.264, VP8 or VP9 video
// frames and AAC or Opus audio frames, without decoding them: the remuxer
// behind RTMP, SRT and WHIP ingest. The stream is what a live Matroska recorder (ffmpeg -f matroska to
// a pipe) writes: an EBML header, a Segment of unknown size, Info
// (TimecodeScale 1 ms), Tracks, then Clusters of SimpleBlocks. Duration and
// Cues are left to the finalizer that turns the object into a seekable file.
package mkvmux

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Matroska element IDs (RFC 9559), with their marker bits.
const (
	idEBML               = 0x1A45DFA3
	idEBMLVersion        = 0x4286
	idEBMLReadVersion    = 0x42F7
	idEBMLMaxIDLength    = 0x42F2
	idEBMLMaxSizeLength  = 0x42F3
	idDocType            = 0x4282
	idDocTypeVersion     = 0x4287
	idDocTypeReadVersion = 0x4285
	idSegment            = 0x18538067
	idInfo               = 0x1549A966
	idTimecodeScale      = 0x2AD7B1
	idMuxingApp          = 0x4D80
	idWritingApp         = 0x5741
	idTracks             = 0x1654AE6B
	idTrackEntry         = 0xAE
	idTrackNumber        = 0xD7
	idTrackUID           = 0x73C5
	idTrackType          = 0x83
	idFlagLacing         = 0x9C
	idCodecID            = 0x86
	idCodecPrivate       = 0x63A2
	idVideo              = 0xE0
	idPixelWidth         = 0xB0
	idPixelHeight        = 0xBA
	idAudio              = 0xE1
	idSamplingFrequency  = 0xB5
	idChannels           = 0x9F
	idCodecDelay         = 0x56AA
	idSeekPreRoll        = 0x56BB
	idCluster            = 0x1F43B675
	idTimecode           = 0xE7
	idSimpleBlock        = 0xA3
)

// unknownSize is the 8-byte EBML size "unknown": the Segment of a live
// stream ends where the stream ends.
var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// Video codecs.
const (
	H264 = "H264" // the default: SPS and PPS required
	VP8  = "VP8"
	VP9  = "VP9"
)

// Audio codecs.
const (
	AAC  = "AAC" // the default: Config required
	Opus = "Opus"
)

// Video describes a video track.
type Video struct {
	Codec         string // H264 (when empty), VP8 or VP9
	SPS, PPS      []byte // H.264 only
	Width, Height int    // 0 when unknown
}

// Audio describes an audio track.
type Audio struct {
	Codec      string // AAC (when empty) or Opus
	Config     []byte // AAC: the AudioSpecificConfig; Opus: ignored
	SampleRate int
	Channels   int
}

func (v *Video) codec() string {
	if v.Codec == "" {
		return H264
	}
	return v.Codec
}

func (a *Audio) codec() string {
	if a.Codec == "" {
		return AAC
	}
	return a.Codec
}

// Tracks are a stream's tracks; either may be nil, not both.
type Tracks struct {
	Video *Video
	Audio *Audio
}

// Equal reports whether t and u describe the same tracks: a publisher that
// reconnects with equal tracks continues the same stream.
func (t Tracks) Equal(u Tracks) bool {
	if (t.Video == nil) != (u.Video == nil) || (t.Audio == nil) != (u.Audio == nil) {
		return false
	}
	if t.Video != nil && (t.Video.codec() != u.Video.codec() || !bytes.Equal(t.Video.SPS, u.Video.SPS) || !bytes.Equal(t.Video.PPS, u.Video.PPS)) {
		return false
	}
	if t.Audio != nil && (t.Audio.codec() != u.Audio.codec() || t.Audio.Channels != u.Audio.Channels || t.Audio.SampleRate != u.Audio.SampleRate) {
		return false
	}
	return t.Audio == nil || bytes.Equal(t.Audio.Config, u.Audio.Config)
}

// Cluster limits: a cluster starts at a video keyframe once the current one
// holds at least minCluster, and at any frame once it holds maxCluster (an
// SimpleBlock's timecode is an int16 of milliseconds from its cluster's).
const (
	minCluster = 1 * time.Second
	maxCluster = 5 * time.Second
	// maxClusterBytes bounds the memory a cluster holds before it is
	// written out, whatever the publisher sends.
	maxClusterBytes = 8 << 20
)

// Muxer writes one Matroska stream. It is not safe for concurrent use.
type Muxer struct {
	w        io.Writer
	tracks   Tracks
	videoNum uint64
	audioNum uint64

	cluster      bytes.Buffer // the SimpleBlocks of the open cluster
	clusterStart int64        // its timecode, ms
	open         bool
	last         int64 // the highest timecode written, ms
	err          error
}

// New writes the header and tracks of a stream to w and returns its muxer.
func New(w io.Writer, t Tracks) (*Muxer, error) {
	if t.Video == nil && t.Audio == nil {
		return nil, errors.New("mkvmux: a stream needs a track")
	}
	if v := t.Video; v != nil {
		switch c := v.codec(); c {
		case H264, VP8, VP9:
		default:
			return nil, fmt.Errorf("mkvmux: unsupported video codec %q", c)
		}
	}
	if a := t.Audio; a != nil {
		switch c := a.codec(); c {
		case AAC, Opus:
		default:
			return nil, fmt.Errorf("mkvmux: unsupported audio codec %q", c)
		}
	}
	m := &Muxer{w: w, tracks: t}
	var b bytes.Buffer
	writeMaster(&b, idEBML, func(b *bytes.Buffer) {
		writeUint(b, idEBMLVersion, 1)
		writeUint(b, idEBMLReadVersion, 1)
		writeUint(b, idEBMLMaxIDLength, 4)
		writeUint(b, idEBMLMaxSizeLength, 8)
		writeString(b, idDocType, "matroska")
		writeUint(b, idDocTypeVersion, 4)
		writeUint(b, idDocTypeReadVersion, 2)
	})
	writeID(&b, idSegment)
	b.Write(unknownSize)
	writeMaster(&b, idInfo, func(b *bytes.Buffer) {
		writeUint(b, idTimecodeScale, 1000000) // 1 ms
		writeString(b, idMuxingApp, "recsink")
		writeString(b, idWritingApp, "recsink")
	})
	writeMaster(&b, idTracks, func(b *bytes.Buffer) {
		n := uint64(0)
		if v := t.Video; v != nil {
			n++
			m.videoNum = n
			writeMaster(b, idTrackEntry, func(b *bytes.Buffer) {
				writeUint(b, idTrackNumber, n)
				writeUint(b, idTrackUID, n)
				writeUint(b, idTrackType, 1)
				writeUint(b, idFlagLacing, 0)
				switch v.codec() {
				case H264:
					writeString(b, idCodecID, "V_MPEG4/ISO/AVC")
					writeBytes(b, idCodecPrivate, avcC(v.SPS, v.PPS))
				case VP8:
					writeString(b, idCodecID, "V_VP8")
				case VP9:
					writeString(b, idCodecID, "V_VP9")
				}
				if v.Width > 0 && v.Height > 0 {
					writeMaster(b, idVideo, func(b *bytes.Buffer) {
						writeUint(b, idPixelWidth, uint64(v.Width))
						writeUint(b, idPixelHeight, uint64(v.Height))
					})
				}
			})
		}
		if a := t.Audio; a != nil {
			n++
			m.audioNum = n
			writeMaster(b, idTrackEntry, func(b *bytes.Buffer) {
				writeUint(b, idTrackNumber, n)
				writeUint(b, idTrackUID, n)
				writeUint(b, idTrackType, 2)
				writeUint(b, idFlagLacing, 0)
				rate := a.SampleRate
				switch a.codec() {
				case AAC:
					writeString(b, idCodecID, "A_AAC")
					writeBytes(b, idCodecPrivate, a.Config)
				case Opus:
					// RFC 7845's identification header is Matroska's
					// CodecPrivate for A_OPUS; the decoder always runs at
					// 48 kHz; pre-skip and seek pre-roll as libopus needs.
					rate = 48000
					writeString(b, idCodecID, "A_OPUS")
					writeBytes(b, idCodecPrivate, opusHead(max(a.Channels, 1), a.SampleRate))
					writeUint(b, idCodecDelay, uint64(opusPreSkip)*1e9/48000)
					writeUint(b, idSeekPreRoll, 80e6)
				}
				writeMaster(b, idAudio, func(b *bytes.Buffer) {
					writeFloat(b, idSamplingFrequency, float64(rate))
					writeUint(b, idChannels, uint64(max(a.Channels, 1)))
				})
			})
		}
	})
	if _, err := w.Write(b.Bytes()); err != nil {
		return nil, fmt.Errorf("mkvmux: write header: %w", err)
	}
	return m, nil
}

// Tracks returns the tracks the stream was started with.
func (m *Muxer) Tracks() Tracks { return m.tracks }

// Last returns the highest timestamp written so far.
func (m *Muxer) Last() time.Duration { return time.Duration(m.last) * time.Millisecond }

// WriteVideo adds a video frame presented at pts: for H.264 an access unit
// (its NAL units, without start codes), for VP8 and VP9 the frame in one
// piece (more are concatenated). keyframe marks a frame that decodes alone
// (an IDR access unit).
func (m *Muxer) WriteVideo(pts time.Duration, au [][]byte, keyframe bool) error {
	if m.videoNum == 0 {
		return errors.New("mkvmux: the stream has no video track")
	}
	prefix := 0
	if m.tracks.Video.codec() == H264 {
		prefix = 4
	}
	var size int
	for _, nalu := range au {
		size += prefix + len(nalu)
	}
	frame := make([]byte, 0, size)
	for _, nalu := range au {
		if prefix > 0 {
			frame = binary.BigEndian.AppendUint32(frame, uint32(len(nalu)))
		}
		frame = append(frame, nalu...)
	}
	return m.write(m.videoNum, pts, frame, keyframe, keyframe)
}

// WriteAudio adds an audio frame (an AAC frame, an Opus packet) presented
// at pts.
func (m *Muxer) WriteAudio(pts time.Duration, frame []byte) error {
	if m.audioNum == 0 {
		return errors.New("mkvmux: the stream has no audio track")
	}
	// Without video, clusters start at any audio frame.
	return m.write(m.audioNum, pts, frame, true, m.videoNum == 0)
}

func (m *Muxer) write(track uint64, pts time.Duration, frame []byte, keyframe, canCut bool) error {
	if m.err != nil {
		return m.err
	}
	tc := max(pts.Milliseconds(), 0)
	if m.open {
		held := time.Duration(tc-m.clusterStart) * time.Millisecond
		if canCut && held >= minCluster || held >= maxCluster || held < -maxCluster || m.cluster.Len() >= maxClusterBytes {
			if err := m.Flush(); err != nil {
				return err
			}
		}
	}
	if !m.open {
		m.open = true
		m.clusterStart = tc
		m.cluster.Reset()
	}
	rel := tc - m.clusterStart
	if rel < math.MinInt16 {
		rel = math.MinInt16
	}
	writeID(&m.cluster, idSimpleBlock)
	writeSize(&m.cluster, uint64(1+2+1+len(frame)))
	m.cluster.WriteByte(0x80 | byte(track)) // track number as a 1-byte vint
	m.cluster.Write([]byte{byte(uint16(int16(rel)) >> 8), byte(uint16(int16(rel)))})
	flags := byte(0)
	if keyframe {
		flags |= 0x80
	}
	m.cluster.WriteByte(flags)
	m.cluster.Write(frame)
	m.last = max(m.last, tc)
	return nil
}

// Flush writes out the open cluster, with its size.
func (m *Muxer) Flush() error {
	if m.err != nil || !m.open {
		return m.err
	}
	var b bytes.Buffer
	writeID(&b, idCluster)
	var tc bytes.Buffer
	writeUint(&tc, idTimecode, uint64(m.clusterStart))
	writeSize(&b, uint64(tc.Len()+m.cluster.Len()))
	b.Write(tc.Bytes())
	b.Write(m.cluster.Bytes())
	m.open = false
	m.cluster.Reset()
	if _, err := m.w.Write(b.Bytes()); err != nil {
		m.err = fmt.Errorf("mkvmux: write cluster: %w", err)
	}
	return m.err
}

// opusPreSkip is the pre-skip of an Opus stream from WebRTC, in 48 kHz
// samples: libopus's encoder delay, as Chromium's and Firefox's WebM
// recorders write it.
const opusPreSkip = 312

// opusHead builds the Opus identification header (RFC 7845 section 5.1)
// with channel mapping family 0 (mono or stereo).
func opusHead(channels, inputRate int) []byte {
	b := []byte("OpusHead")
	b = append(b, 1, byte(min(channels, 2)))
	b = binary.LittleEndian.AppendUint16(b, opusPreSkip)
	b = binary.LittleEndian.AppendUint32(b, uint32(max(inputRate, 0)))
	b = binary.LittleEndian.AppendUint16(b, 0) // output gain
	return append(b, 0)                        // mapping family 0
}

// avcC builds the AVCDecoderConfigurationRecord (ISO 14496-15) of one SPS
// and one PPS: Matroska's CodecPrivate for V_MPEG4/ISO/AVC.
func avcC(sps, pps []byte) []byte {
	var b []byte
	b = append(b, 1)
	if len(sps) >= 4 {
		b = append(b, sps[1], sps[2], sps[3]) // profile, compatibility, level
	} else {
		b = append(b, 0, 0, 0)
	}
	b = append(b, 0xFF, 0xE1) // 4-byte NAL lengths; one SPS
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
	return append(b, pps...)
}

func writeID(b *bytes.Buffer, id uint32) {
	switch {
	case id >= 1<<24:
		b.Write([]byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)})
	case id >= 1<<16:
		b.Write([]byte{byte(id >> 16), byte(id >> 8), byte(id)})
	case id >= 1<<8:
		b.Write([]byte{byte(id >> 8), byte(id)})
	default:
		b.WriteByte(byte(id))
	}
}

// writeSize writes n as an EBML variable-size integer, 1 to 8 bytes.
func writeSize(b *bytes.Buffer, n uint64) {
	l := 1
	for l < 8 && n >= (uint64(1)<<(7*l))-1 {
		l++
	}
	v := n | uint64(1)<<(7*l)
	for i := l - 1; i >= 0; i-- {
		b.WriteByte(byte(v >> (8 * i)))
	}
}

func writeUint(b *bytes.Buffer, id uint32, v uint64) {
	l := 1
	for l < 8 && v >= uint64(1)<<(8*l) {
		l++
	}
	writeID(b, id)
	writeSize(b, uint64(l))
	for i := l - 1; i >= 0; i-- {
		b.WriteByte(byte(v >> (8 * i)))
	}
}

func writeFloat(b *bytes.Buffer, id uint32, v float64) {
	writeID(b, id)
	writeSize(b, 8)
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], math.Float64bits(v))
	b.Write(x[:])
}

func writeString(b *bytes.Buffer, id uint32, s string) { writeBytes(b, id, []byte(s)) }

func writeBytes(b *bytes.Buffer, id uint32, p []byte) {
	writeID(b, id)
	writeSize(b, uint64(len(p)))
	b.Write(p)
}

func writeMaster(b *bytes.Buffer, id uint32, body func(*bytes.Buffer)) {
	var inner bytes.Buffer
	body(&inner)
	writeBytes(b, id, inner.Bytes())
}
