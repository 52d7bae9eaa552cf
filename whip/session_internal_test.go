package whip

import (
	"bytes"
	"testing"
)

func TestNALUs(t *testing.T) {
	sps, pps, idr := []byte{0x67, 1, 2}, []byte{0x68, 3}, []byte{0x65, 4, 0, 5}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"FourByteStartCodes", bytes.Join([][]byte{{}, sps, pps, idr}, []byte{0, 0, 0, 1})},
		{"ThreeByteStartCodes", bytes.Join([][]byte{{}, sps, pps, idr}, []byte{0, 0, 1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nalus(tc.in)
			if len(got) != 3 || !bytes.Equal(got[0], sps) || !bytes.Equal(got[1], pps) || !bytes.Equal(got[2], idr) {
				t.Fatalf("nalus(% x) = % x", tc.in, got)
			}
			if !h264Keyframe(tc.in) || !hasParams(tc.in) {
				t.Fatal("an IDR access unit with its parameter sets not seen as one")
			}
		})
	}
	if h264Keyframe([]byte{0, 0, 1, 0x41, 9}) {
		t.Fatal("a non-IDR slice seen as a keyframe")
	}
}

func TestVP9Keyframe(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    byte
		key  bool
	}{
		{"Profile0Key", 0b10_00_0_0_00, true},
		{"Profile0Inter", 0b10_00_0_1_00, false},
		{"ShowExisting", 0b10_00_1_0_00, false},
		{"Profile1Key", 0b10_10_0_0_00, true},
		{"Profile3Key", 0b10_11_0_0_0_0, true},
		{"Profile3Inter", 0b10_11_0_0_1_0, false},
		{"NoFrameMarker", 0b00_00_0_0_00, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := vp9Keyframe([]byte{tc.b}); got != tc.key {
				t.Fatalf("vp9Keyframe(%08b) = %v", tc.b, got)
			}
		})
	}
}
