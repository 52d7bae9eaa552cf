package browsertest_test

import (
	"math"
	"testing"

	"github.com/recsink/recsink/internal/browsertest"
	"github.com/recsink/recsink/internal/mediatest"
)

// TestCheckPlayback: a live WebM (no duration) is reported as infinite and
// not seeked; bytes that are not media are reported as an error. Both
// callers' proofs depend on CheckPlayback being able to say no.
func TestCheckPlayback(t *testing.T) {
	browser := browsertest.MustBrowser(t)
	live := mediatest.MustFFmpeg(t, mediatest.LiveArgs("webm", 3)...)
	if pb := browsertest.CheckPlayback(t, browser, live, "video/webm"); !math.IsInf(pb.Duration, 1) || pb.Seeked || pb.Error != "" {
		t.Errorf("live WebM: %+v; want an infinite duration, no seek, no error", pb)
	}
	if pb := browsertest.CheckPlayback(t, browser, []byte("not a video file"), "video/webm"); pb.Error == "" || pb.Seeked {
		t.Errorf("not media: %+v; want an error", pb)
	} else {
		t.Logf("not media: %+v", pb)
	}
}
