package media_test

import (
	"errors"
	"testing"

	"github.com/recsink/recsink/media"
)

func TestSniff(t *testing.T) {
	t.Parallel()
	ebml := func(doc string) []byte {
		b := []byte{0x1A, 0x45, 0xDF, 0xA3, 0x80 | byte(4+3+len(doc)), 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x80 | byte(len(doc))}
		return append(b, doc...)
	}
	tests := []struct {
		name  string
		first []byte
		want  media.Kind
		ctype string
		ext   string
	}{
		{"Matroska", ebml("matroska"), media.Matroska, "video/x-matroska", "mkv"},
		{"WebM", ebml("webm"), media.WebM, "video/webm", "webm"},
		{"MatroskaPaddedDocType", ebml("matroska\x00"), media.Matroska, "video/x-matroska", "mkv"},
		{"OtherDocType", ebml("dvb"), media.Unknown, "application/octet-stream", ""},
		{"EBMLTruncated", ebml("webm")[:8], media.Unknown, "application/octet-stream", ""},
		{"MP4", []byte("\x00\x00\x00\x24ftypisom\x00\x00\x02\x00isomiso2avc1mp41"), media.MP4, "video/mp4", "mp4"},
		{"MP4Segment", []byte("\x00\x00\x00\x18stypmsdh\x00\x00\x00\x00msdhmsix"), media.MP4, "video/mp4", "mp4"},
		{"MP4MoovFirst", []byte("\x00\x00\x04\xcemoov\x00\x00\x00\x6cmvhd"), media.MP4, "video/mp4", "mp4"},
		{"MPEGTS", []byte{0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xB0, 0x0D}, media.Unknown, "application/octet-stream", ""},
		{"Text", []byte("hello, world"), media.Unknown, "application/octet-stream", ""},
		{"Empty", nil, media.Unknown, "application/octet-stream", ""},
		{"Short", []byte{0x1A, 0x45}, media.Unknown, "application/octet-stream", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := media.Sniff(tt.first)
			if got != tt.want {
				t.Fatalf("Sniff = %v, want %v", got, tt.want)
			}
			if got.ContentType() != tt.ctype || got.Ext() != tt.ext {
				t.Errorf("ContentType, Ext = %q, %q, want %q, %q", got.ContentType(), got.Ext(), tt.ctype, tt.ext)
			}
		})
	}
}

func FuzzSniff(f *testing.F) {
	f.Add([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x88, 0x42, 0x82, 0x84, 'w', 'e', 'b', 'm'})
	f.Add([]byte("\x00\x00\x00\x24ftypisom"))
	f.Fuzz(func(t *testing.T, b []byte) { media.Sniff(b) })
}

func TestUnsupported(t *testing.T) {
	t.Parallel()
	if _, err := media.NewIndexer(media.Unknown, nil); !errors.Is(err, media.ErrUnsupported) {
		t.Errorf("NewIndexer(Unknown) = %v, want ErrUnsupported", err)
	}
	if _, err := media.Resume(media.Unknown, nil, nil); !errors.Is(err, media.ErrUnsupported) {
		t.Errorf("Resume(Unknown) = %v, want ErrUnsupported", err)
	}
	if _, _, err := media.Finalize(media.Unknown, nil, nil, 0); !errors.Is(err, media.ErrUnsupported) {
		t.Errorf("Finalize(Unknown) = %v, want ErrUnsupported", err)
	}
}
