package main_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
)

// liveSource is real H.264 at 2 Mbit/s, 25 frames a second, cut into
// access units, that a benchmark publisher sends in a loop.
type liveSource struct {
	sps, pps []byte
	aus      [][][]byte // one access unit per frame, parameter sets left out
	bytes    int64      // the access units' bytes in one loop
}

const liveFPS = 25

// mustLiveSource encodes 10 s of test video with ffmpeg (a keyframe every
// 2 s) and splits it into access units.
func mustLiveSource(b *testing.B) *liveSource {
	b.Helper()
	path := filepath.Join(b.TempDir(), "src.h264")
	cmd := exec.Command(requireTool(b, "ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate="+strconv.Itoa(liveFPS)+":duration=10",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "0",
		"-b:v", "2M", "-maxrate", "2M", "-bufsize", "1M", "-g", "50", "-x264-params", "aud=1",
		"-f", "h264", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v: %s", err, out)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	nalus := splitAnnexB(raw)
	if len(nalus) == 0 {
		b.Fatal("the source holds no Annex B NAL units")
	}
	s := &liveSource{}
	var au [][]byte
	flush := func() {
		if len(au) > 0 {
			s.aus = append(s.aus, au)
			for _, n := range au {
				s.bytes += int64(len(n))
			}
		}
		au = nil
	}
	for _, n := range nalus {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter:
			flush()
		case h264.NALUTypeSPS:
			s.sps = n
		case h264.NALUTypePPS:
			s.pps = n
		default:
			au = append(au, n)
		}
	}
	flush()
	if s.sps == nil || s.pps == nil || len(s.aus) < 10*liveFPS-1 {
		b.Fatalf("source: SPS %v, PPS %v, %d access units", s.sps != nil, s.pps != nil, len(s.aus))
	}
	return s
}

// splitAnnexB cuts an Annex B byte stream at its start codes (00 00 01,
// with or without a leading zero) into NAL units.
func splitAnnexB(raw []byte) [][]byte {
	var nalus [][]byte
	start := -1
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != 0 || raw[i+1] != 0 || raw[i+2] != 1 {
			continue
		}
		if start >= 0 {
			end := i
			if end > start && raw[end-1] == 0 {
				end--
			}
			nalus = append(nalus, raw[start:end])
		}
		start = i + 3
		i += 2
	}
	if start >= 0 && start < len(raw) {
		nalus = append(nalus, raw[start:])
	}
	return nalus
}

// liveResult is what one publisher saw.
type liveResult struct {
	frames int64
	bytes  int64         // access-unit bytes written to the connection
	lag    time.Duration // the most a frame left after its real-time slot
	err    error
}

// publishLive sends src over RTMP to u in real time, frame after frame,
// until ctx ends; then it closes the connection. A frame that cannot leave
// on time (the server is not reading) shows as lag.
func publishLive(ctx context.Context, u *url.URL, src *liveSource) liveResult {
	var res liveResult
	c := &gortmplib.Client{URL: u, Publish: true}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Initialize(ictx); err != nil {
		res.err = fmt.Errorf("connect: %w", err)
		return res
	}
	defer c.Close()
	track := &gortmplib.Track{Codec: &codecs.H264{SPS: src.sps, PPS: src.pps}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{track}}
	c.NetConn().SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := w.Initialize(); err != nil {
		res.err = fmt.Errorf("tracks: %w", err)
		return res
	}
	start := time.Now()
	for i := 0; ; i++ {
		slot := start.Add(time.Duration(i) * time.Second / liveFPS)
		if d := time.Until(slot); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return res
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return res
		}
		au := src.aus[i%len(src.aus)]
		pts := time.Duration(i) * time.Second / liveFPS
		c.NetConn().SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := w.WriteH264(track, pts, pts, au); err != nil {
			res.err = fmt.Errorf("frame %d: %w", i, err)
			return res
		}
		res.lag = max(res.lag, time.Since(slot))
		res.frames++
		for _, n := range au {
			res.bytes += int64(len(n))
		}
	}
}

// BenchmarkLivePublishes: how many real-time 2 Mbit/s RTMP publishes one
// node takes with no dropped media, beside the HTTP ingest of the same run.
// For each count N (RECSINK_BENCH_LIVE_STEPS, default 25,50,100,200; the
// RTMP listener serves 256 connections at most), N Go publishers send real
// H.264 frame by frame in real time for RECSINK_BENCH_STEP (20 s), each
// into its own room; then they hang up and every recording must be
// uploaded holding at least the bytes that were sent (no frame dropped),
// and no frame may leave more than 1 s after its slot. Then N HTTP
// recordings send the same rate as tus PATCHes, as in
// BenchmarkConcurrentRecordings, for the same time.
func BenchmarkLivePublishes(b *testing.B) {
	if testing.Short() {
		b.Skip("end-to-end benchmark against versitygw; skipped under -short")
	}
	steps := []int{25, 50, 100, 200}
	if s := os.Getenv("RECSINK_BENCH_LIVE_STEPS"); s != "" {
		steps = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("RECSINK_BENCH_LIVE_STEPS=%q: want counts like 25,50,100", s)
			}
			steps = append(steps, n)
		}
	}
	stepDur := benchDuration(b, "RECSINK_BENCH_STEP", 20*time.Second)
	src := mustLiveSource(b)
	b.Logf("source: %d frames, %.2f Mbit/s", len(src.aus), float64(src.bytes*8)/float64(len(src.aus))*liveFPS/1e6)

	e, _ := mustRecordingEnv(b, benchSpool(b), func(c *main.Config) {
		c.RTMPAddr = "127.0.0.1:0"
		c.StreamGrace = time.Second
		c.APIRate = 0
	})
	rooms := map[string]string{} // meeting ID -> publish URL
	var ids []string
	client := newBenchHTTPClient()
	defer client.CloseIdleConnections()

	type step struct {
		n                int
		lagP99, lagMax   time.Duration
		short, failed    int // recordings holding fewer bytes than sent; publishers that failed
		httpP99          time.Duration
		httpMax          time.Duration
		httpErrs         int64
		rtmpOK, httpOK   bool
		rtmpErr, httpErr error
	}
	var done []step
	for _, n := range steps {
		for len(ids) < n {
			id := e.MustMeeting(b, e.Org)
			out := e.Org.MustDo(b, 201, "POST", "/v1/meetings/"+id+"/stream-key", nil)
			pubs, _ := out["publish"].([]any)
			if len(pubs) == 0 {
				b.Fatalf("stream key answer: %v", out)
			}
			rooms[id], _ = pubs[0].(map[string]any)["url"].(string)
			ids = append(ids, id)
		}
		st := step{n: n}

		// RTMP: n publishers for stepDur, then every recording uploaded.
		ctx, cancel := context.WithTimeout(context.Background(), stepDur)
		res := make([]liveResult, n)
		var wg sync.WaitGroup
		for i, id := range ids[:n] {
			u, err := url.Parse(rooms[id])
			if err != nil {
				b.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i] = publishLive(ctx, u, src)
			}()
		}
		wg.Wait()
		cancel()
		var lags []time.Duration
		sent := map[string]liveResult{}
		for i, r := range res {
			lags = append(lags, r.lag)
			sent[ids[i]] = r
			if r.err != nil {
				st.failed++
				st.rtmpErr = cmp.Or(st.rtmpErr, r.err)
			}
		}
		slices.Sort(lags)
		st.lagP99, st.lagMax = lags[min(len(lags)-1, len(lags)*99/100)], lags[len(lags)-1]
		st.short = liveShortfall(b, e, sent)
		st.rtmpOK = st.failed == 0 && st.short == 0 && st.lagMax <= time.Second

		// HTTP: n recordings at the same rate, in the same rooms.
		st.httpP99, st.httpMax, st.httpErrs, st.httpErr = httpStep(b, e, client, ids[:n], stepDur)
		st.httpOK = st.httpErrs == 0 && st.httpMax <= time.Second
		b.Logf("N=%d: RTMP frame lag p99 %v, max %v, %d recordings short of what was sent, %d publishers failed (%v); HTTP ack p99 %v, max %v, %d failed writes (%v)",
			n, st.lagP99.Round(time.Millisecond), st.lagMax.Round(time.Millisecond), st.short, st.failed, st.rtmpErr,
			st.httpP99.Round(time.Millisecond), st.httpMax.Round(time.Millisecond), st.httpErrs, st.httpErr)
		b.ReportMetric(ms(st.lagMax), fmt.Sprintf("N%d-rtmp-lag-max-ms", n))
		b.ReportMetric(ms(st.httpMax), fmt.Sprintf("N%d-http-ack-max-ms", n))
		done = append(done, st)
	}
	rtmpN, httpN := 0, 0
	for _, s := range done {
		if s.rtmpOK {
			rtmpN = s.n
		}
		if s.httpOK {
			httpN = s.n
		}
	}
	b.ReportMetric(float64(rtmpN), "rtmp-publishes")
	b.ReportMetric(float64(httpN), "http-recordings")
	b.Logf("carried %d real-time RTMP publishes with no frame dropped or held over 1 s, beside %d HTTP recordings in the same run (counts tried: %v)", rtmpN, httpN, steps)
}

// liveShortfall waits until the recording of each room in sent is uploaded
// and returns how many hold fewer bytes than their publisher sent, or, for
// one of them read back with ffprobe, fewer video frames: a dropped frame.
func liveShortfall(b *testing.B, e *Env, sent map[string]liveResult) int {
	b.Helper()
	deadline := time.Now().Add(2*time.Minute + time.Duration(len(sent))*time.Second)
	short := 0
	probed := false
	for room, pub := range sent {
		for {
			out := e.Org.MustDo(b, 200, "GET", "/v1/recordings?roomName="+url.QueryEscape(roomNameOf(b, e, room))+"&sortBy=startDate:desc&limit=1", nil)
			recs, _ := out["results"].([]any)
			if len(recs) == 1 {
				r := recs[0].(map[string]any)
				if r["state"] == recsink.RecordingUploaded {
					if got, _ := r["bytesReceived"].(float64); int64(got) < pub.bytes {
						short++
					} else if !probed {
						probed = true
						key, _ := r["objectKey"].(string)
						frames := len(probeLive(b, e.S3.GetObject(b, e.Bucket, key)).pts["video"])
						if int64(frames) < pub.frames {
							b.Logf("room %s: the object holds %d video frames, the publisher sent %d", room, frames, pub.frames)
							short++
						}
					}
					break
				}
				if r["state"] == recsink.RecordingFailed {
					short++
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("room %s: its recording is not uploaded: %v", room, recs)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
		}
	}
	return short
}

// roomNameOf returns a meeting's room name, cached.
func roomNameOf(b *testing.B, e *Env, meetingID string) string {
	roomNames.Lock()
	defer roomNames.Unlock()
	if name, ok := roomNames.m[meetingID]; ok {
		return name
	}
	out := e.Org.MustDo(b, 200, "GET", "/v1/meetings/"+meetingID, nil)
	name, _ := out["roomName"].(string)
	if roomNames.m == nil {
		roomNames.m = map[string]string{}
	}
	roomNames.m[meetingID] = name
	return name
}

var roomNames struct {
	sync.Mutex
	m map[string]string
}

// httpStep runs one HTTP recording in each room at the live rate for d
// (tus PATCHes, as BenchmarkConcurrentRecordings) and returns the writes'
// p99 and longest acknowledgement, the failed writes and the first error.
// The recordings are stopped and uploaded when it returns.
func httpStep(b *testing.B, e *Env, client *http.Client, rooms []string, d time.Duration) (p99, longest time.Duration, errs int64, first error) {
	b.Helper()
	payload := benchData(rtWriteBytes)
	hist := &latencyHist{}
	ctx, cancel := context.WithCancel(context.Background())
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var recs []Started
	for _, room := range rooms {
		rec, err := startRecording(ctx, client, e.Org, room)
		if err != nil {
			b.Fatalf("start an HTTP recording in room %s: %v", room, err)
		}
		recs = append(recs, rec)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := recordingWriter(ctx, client, rec, payload, hist, &failed); err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		}()
	}
	time.Sleep(2 * time.Second) // the writers settle into their schedule
	hist.start()
	time.Sleep(d)
	hist.stop()
	cancel()
	wg.Wait()
	for _, rec := range recs {
		e.Org.MustDo(b, 200, "POST", "/v1/recordings/"+rec.ID+"/stop", nil)
	}
	for _, rec := range recs {
		WaitState(b, e.Org, rec.ID, recsink.RecordingUploaded, 2*time.Minute)
	}
	first, _ = firstErr.Load().(error)
	return hist.quantile(0.99), hist.max(), failed.Load(), first
}

// newBenchHTTPClient is an HTTP client that keeps a connection per writer.
func newBenchHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 2048, IdleConnTimeout: time.Minute}}
}
