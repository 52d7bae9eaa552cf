package mkvmux_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/recsink/recsink/media/mkvmux"
)

func TestMuxer_Header(t *testing.T) {
	var b bytes.Buffer
	m, err := mkvmux.New(&b, mkvmux.Tracks{Audio: &mkvmux.Audio{Config: []byte{0x12, 0x10}, SampleRate: 44100, Channels: 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{
		{0x1A, 0x45, 0xDF, 0xA3},                         // EBML
		[]byte("matroska"),                               // DocType
		{0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF}, // Segment, unknown size
		{0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40},       // TimecodeScale 1,000,000
		[]byte("A_AAC"),
		{0x63, 0xA2, 0x82, 0x12, 0x10}, // CodecPrivate: the AudioSpecificConfig
	} {
		if !bytes.Contains(b.Bytes(), want) {
			t.Errorf("header lacks % x", want)
		}
	}
	n := b.Len()
	// Nothing goes out until a cluster is complete.
	if err := m.WriteAudio(0, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if b.Len() != n {
		t.Fatal("a block went out before its cluster was complete")
	}
	if err := m.WriteAudio(1100*time.Millisecond, []byte{4}); err != nil {
		t.Fatal(err)
	}
	cluster := b.Bytes()[n:]
	want := []byte{0x1F, 0x43, 0xB6, 0x75, 0x80 | 9, // Cluster, 9 bytes
		0xE7, 0x81, 0x00, // Timecode 0
		0xA3, 0x87, 0x81, 0x00, 0x00, 0x80, 1, 2, 3} // SimpleBlock: track 1, +0 ms, keyframe
	// The cluster's size counts its Timecode and its one block (3+9 bytes).
	want[4] = 0x80 | byte(3+9)
	if !bytes.Equal(cluster, want) {
		t.Fatalf("cluster\n% x, want\n% x", cluster, want)
	}
	if m.Last() != 1100*time.Millisecond {
		t.Fatalf("Last %s", m.Last())
	}
}

func TestMuxer_NeedsTrack(t *testing.T) {
	if _, err := mkvmux.New(&bytes.Buffer{}, mkvmux.Tracks{}); err == nil {
		t.Fatal("a stream without tracks was accepted")
	}
}

func TestMuxer_VP8Opus(t *testing.T) {
	var b bytes.Buffer
	m, err := mkvmux.New(&b, mkvmux.Tracks{
		Video: &mkvmux.Video{Codec: mkvmux.VP8},
		Audio: &mkvmux.Audio{Codec: mkvmux.Opus, SampleRate: 48000, Channels: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{
		[]byte("V_VP8"),
		[]byte("A_OPUS"),
		append([]byte("OpusHead"), 1, 2, 0x38, 0x01), // version 1, stereo, pre-skip 312
	} {
		if !bytes.Contains(b.Bytes(), want) {
			t.Errorf("header lacks %q", want)
		}
	}
	n := b.Len()
	// A VP8 frame is written as it is: no length prefix.
	if err := m.WriteVideo(0, [][]byte{{0x10, 0x20, 0x30}}, true); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xA3, 0x87, 0x81, 0x00, 0x00, 0x80, 0x10, 0x20, 0x30}; !bytes.HasSuffix(b.Bytes()[n:], want) {
		t.Fatalf("cluster % x lacks % x", b.Bytes()[n:], want)
	}
}

func TestTracks_EqualCodec(t *testing.T) {
	vp8 := mkvmux.Tracks{Video: &mkvmux.Video{Codec: mkvmux.VP8}}
	h264 := mkvmux.Tracks{Video: &mkvmux.Video{}}
	if vp8.Equal(h264) || !vp8.Equal(mkvmux.Tracks{Video: &mkvmux.Video{Codec: mkvmux.VP8}}) {
		t.Fatal("Equal ignores the codec")
	}
	if _, err := mkvmux.New(&bytes.Buffer{}, mkvmux.Tracks{Video: &mkvmux.Video{Codec: "AV1"}}); err == nil {
		t.Fatal("an unknown codec was accepted")
	}
}
