package main_test

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/recsink/recsink"
)

// TestRecording_Live20sSeeksAndPlaysOn is issue 12's proofs 1 and 2 as
// written: ffmpeg streams live Matroska (H.264/AAC), WebM (VP8/Opus) and
// fragmented MP4 with -method PUT and no -t, ended by SIGINT after 20 s;
// ffprobe prints each object's duration within 0.5 s of its media, and
// Chromium, loading it with range requests, reports that duration,
// seekable.end(0) equal to it, reaches "seeked" at the middle and plays on
// from there (currentTime moves past the seek point).
func TestRecording_Live20sSeeksAndPlaysOn(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 3 × 20 s of live media")
	}
	browser := mustBrowser(t)
	for _, tt := range []struct{ format, ext, fileFormat, contentType string }{
		{"matroska", "mkv", recsink.FormatMKV, "video/x-matroska"},
		{"webm", "webm", recsink.FormatMKV, "video/webm"},
		{"fmp4", "mp4", recsink.FormatMP4, "video/mp4"},
	} {
		t.Run(tt.format, func(t *testing.T) {
			e, meeting := mustFormatEnv(t, tt.fileFormat)
			rec := MustStartRecording(t, e.Org, meeting)
			began := time.Now()
			sent := streamLive(t, rec, tt.format, 20*time.Second)
			streamed := time.Since(began)
			e.Org.MustDo(t, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
			out := WaitState(t, e.Org, rec.ID, recsink.RecordingUploaded, 60*time.Second)
			object := e.S3.GetObject(t, e.Bucket, out["objectKey"].(string))
			checkObjectChecksum(t, e, out, object)
			header, media := probeFormatDuration(t, object, tt.ext)
			d, err := strconv.ParseFloat(header, 64)
			if err != nil || math.Abs(d-media) > 0.5 {
				t.Errorf("ffprobe format=duration %q, media %.3f s: want within 0.5 s", header, media)
			}
			pb := checkPlayback(t, browser, object, tt.contentType)
			t.Logf("%s: ffmpeg ran %v and sent %d bytes; ffprobe %s s, media %.3f s; Chromium %+v",
				tt.format, streamed.Round(time.Millisecond), len(sent), header, media, pb)
			if math.Abs(pb.Duration-media) > 0.5 || pb.SeekableEnd != pb.Duration || !pb.Seeked || pb.Error != "" {
				t.Errorf("Chromium: duration %v, seekable.end(0) %v, seeked %v, error %q; want %.3f s ±0.5, seekable to it, seeked",
					pb.Duration, pb.SeekableEnd, pb.Seeked, pb.Error, media)
			}
			if pb.Played <= pb.SeekedAt {
				t.Errorf("Chromium did not play on from the middle: seeked to %.3f s, currentTime then %.3f s", pb.SeekedAt, pb.Played)
			}
			if pb.Ranges == 0 {
				t.Error("Chromium made no range request")
			}
		})
	}
}
