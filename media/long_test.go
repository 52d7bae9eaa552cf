package media_test

import (
	"bytes"
	"math"
	"os"
	"testing"

	"github.com/recsink/recsink/internal/browsertest"
	"github.com/recsink/recsink/internal/mediatest"
	"github.com/recsink/recsink/media"
)

// TestLongRecordings finalizes two-minute 3 Mbit/s live streams of each
// container with a 5 MiB first part, so that Chromium fetches the file with
// several range requests and the seek to the middle goes through the index.
// It takes a minute or two: set RECSINK_MEDIA_LONG=1 to run it.
func TestLongRecordings(t *testing.T) {
	if os.Getenv("RECSINK_MEDIA_LONG") != "1" {
		t.Skip("set RECSINK_MEDIA_LONG=1 to run")
	}
	browser := browsertest.MustBrowser(t)
	for _, format := range []string{"matroska", "webm", "fmp4"} {
		t.Run(format, func(t *testing.T) {
			args := mediatest.LiveArgs(format, 120)
			out := args[len(args)-1]
			args = append(args[:len(args)-1:len(args)-1], "-b:v", "3M", "-maxrate", "3M", "-bufsize", "3M", out)
			stream := mediatest.MustFFmpeg(t, args...)
			kind := media.Sniff(stream)
			var index bytes.Buffer
			x, err := media.NewIndexer(kind, &index)
			if err != nil {
				t.Fatal(err)
			}
			mediatest.Feed(t, x, stream, 1)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			firstLen := int64(5 << 20)
			first, tail, err := media.Finalize(kind, stream[:firstLen], bytes.NewReader(index.Bytes()), int64(len(stream)))
			if err != nil {
				t.Fatal(err)
			}
			file := append(append(append([]byte(nil), first...), stream[firstLen:]...), tail...)
			d := mediatest.ProbeDuration(t, file, "long."+kind.Ext())
			dp := mediatest.ProbeDurationPipe(t, file)
			pb := browsertest.CheckPlayback(t, browser, file, kind.ContentType())
			t.Logf("%s: %d bytes, index %d bytes, tail %d bytes; ffprobe %.3f (file), %.3f (pipe); Chromium %+v", format, len(stream), index.Len(), len(tail), d, dp, pb)
			if math.Abs(d-120) > 0.5 || math.Abs(dp-120) > 0.5 || math.Abs(pb.Duration-120) > 0.5 || pb.SeekableEnd != pb.Duration || !pb.Seeked || pb.Played <= pb.SeekedAt {
				t.Errorf("not a finished file")
			}
		})
	}
}
