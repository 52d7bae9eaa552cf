package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/browsertest"
)

// liveEnv is a recsink with RTMP on, the organization's storage saved, a
// meeting and its stream key.
type liveEnv struct {
	*Env
	MeetingID string
	Key       string
	URL       string // rtmp://HOST:PORT/live/KEY
	SRTURL    string // srt://HOST:PORT?streamid=publish:KEY
}

func mustLiveEnv(tb testing.TB, grace time.Duration) *liveEnv {
	tb.Helper()
	requireTool(tb, "ffmpeg")
	e, meeting := mustRecordingEnv(tb, func(c *main.Config) {
		c.RTMPAddr = "127.0.0.1:0"
		c.SRTAddr = "127.0.0.1:0"
		c.StreamGrace = grace
	})
	out := e.Org.MustDo(tb, 201, "POST", "/v1/meetings/"+meeting+"/stream-key", nil)
	key, _ := out["streamKey"].(string)
	pubs, _ := out["publish"].([]any)
	if key == "" || len(pubs) != 2 {
		tb.Fatalf("stream key answer: %v", out)
	}
	url, _ := pubs[0].(map[string]any)["url"].(string)
	if !strings.HasPrefix(url, "rtmp://127.0.0.1:") || !strings.HasSuffix(url, "/live/"+key) {
		tb.Fatalf("publish URL %q", url)
	}
	srtURL, _ := pubs[1].(map[string]any)["url"].(string)
	if !strings.HasPrefix(srtURL, "srt://127.0.0.1:") || !strings.HasSuffix(srtURL, "?streamid=publish:"+key) {
		tb.Fatalf("SRT publish URL %q", srtURL)
	}
	return &liveEnv{Env: e, MeetingID: meeting, Key: key, URL: url, SRTURL: srtURL}
}

// publisher is a real ffmpeg publishing real-time H.264/AAC to an RTMP URL,
// with no end of its own: a signal ends it.
type publisher struct {
	cmd      *exec.Cmd
	progress string
	stderr   *syncBuffer
	done     chan error
	started  time.Time
}

func startPublisher(tb testing.TB, url string) *publisher {
	tb.Helper()
	p := &publisher{progress: filepath.Join(tb.TempDir(), "progress"), stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(requireTool(tb, "ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats",
		"-progress", p.progress, "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440",
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25",
		"-c:a", "aac", "-f", formatOf(url), url)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p.started = time.Now()
	go func() { p.done <- p.cmd.Wait() }()
	tb.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

// stop ends the publisher with sig and returns how much media it sent:
// ffmpeg's own last out_time.
func (p *publisher) stop(tb testing.TB, sig os.Signal) time.Duration {
	tb.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		tb.Fatalf("ffmpeg did not exit on %v: %s", sig, p.stderr)
	}
	p.done <- nil
	return p.sent(tb)
}

// sent reads ffmpeg's progress file: the last out_time_us is the media time
// it wrote to the connection.
func (p *publisher) sent(tb testing.TB) time.Duration {
	tb.Helper()
	f, err := os.Open(p.progress)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var last time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "out_time_us="); ok {
			if us, err := strconv.ParseInt(v, 10, 64); err == nil {
				last = time.Duration(us) * time.Microsecond
			}
		}
	}
	return last
}

// formatOf is the container ffmpeg sends to url: FLV over RTMP, MPEG-TS
// over SRT.
func formatOf(url string) string {
	if strings.HasPrefix(url, "srt://") {
		return "mpegts"
	}
	return "flv"
}

// mustRefused runs an ffmpeg publish to url that recsink must refuse: it
// exits with an error well before its deadline.
func mustRefused(tb testing.TB, url string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, requireTool(tb, "ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine",
		"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", formatOf(url), url).CombinedOutput()
	if ctx.Err() != nil {
		tb.Fatalf("ffmpeg publishing to a refused key ran until its deadline: %s", out)
	}
	if err == nil {
		tb.Fatalf("ffmpeg publishing to a refused key exited 0: %s", out)
	}
	return string(out)
}

// recordings lists the organization's recordings.
func (e *liveEnv) recordings(tb testing.TB) []map[string]any {
	tb.Helper()
	out := e.Org.MustDo(tb, 200, "GET", "/v1/recordings?limit=100", nil)
	var recs []map[string]any
	for _, r := range out["results"].([]any) {
		recs = append(recs, r.(map[string]any))
	}
	return recs
}

// waitLive waits until the stream key's view says live is want.
func (e *liveEnv) waitLive(tb testing.TB, want bool, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		out := e.Org.MustDo(tb, 200, "GET", "/v1/meetings/"+e.MeetingID+"/stream-key", nil)
		if out["live"] == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("stream key live=%v after %s, want %v: %v\n%s", out["live"], within, want, out, grepLog(e.Main.Logs.String(), "rtmp", "live"))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
}

// probePackets is ffprobe's view of an object's packets, per stream type.
type probePackets struct {
	types map[string]bool
	pts   map[string][]float64 // presentation times, in file order
	dts   map[string][]float64
	end   float64 // the last packet's end
}

func probeLive(tb testing.TB, data []byte) probePackets {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "live.mkv")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(requireTool(tb, "ffprobe"), "-v", "error", "-print_format", "json",
		"-show_streams", "-show_entries", "packet=stream_index,pts_time,dts_time,duration_time", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe: %v", err)
	}
	var probe struct {
		Packets []struct {
			Stream   int    `json:"stream_index"`
			PTS      string `json:"pts_time"`
			DTS      string `json:"dts_time"`
			Duration string `json:"duration_time"`
		} `json:"packets"`
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &probe); err != nil {
		tb.Fatal(err)
	}
	p := probePackets{types: map[string]bool{}, pts: map[string][]float64{}, dts: map[string][]float64{}}
	for _, s := range probe.Streams {
		p.types[s.CodecType+"/"+s.CodecName] = true
	}
	for _, pk := range probe.Packets {
		typ := probe.Streams[pk.Stream].CodecType
		pts, _ := strconv.ParseFloat(pk.PTS, 64)
		dts, _ := strconv.ParseFloat(pk.DTS, 64)
		d, _ := strconv.ParseFloat(pk.Duration, 64)
		p.pts[typ] = append(p.pts[typ], pts)
		p.dts[typ] = append(p.dts[typ], dts)
		p.end = max(p.end, pts+d)
	}
	return p
}

// check fails unless both streams are there and decoding times never go
// back; it returns the largest jump between consecutive video frames and
// where it starts and ends.
func (p probePackets) check(tb testing.TB) (maxGap, from, to float64) {
	tb.Helper()
	if !p.types["video/h264"] || !p.types["audio/aac"] || len(p.types) != 2 {
		tb.Fatalf("streams %v, want video/h264 and audio/aac", p.types)
	}
	for typ, dts := range p.dts {
		for i := 1; i < len(dts); i++ {
			if dts[i] < dts[i-1] {
				tb.Fatalf("%s decoding time goes back at packet %d: %.3f after %.3f", typ, i, dts[i], dts[i-1])
			}
		}
	}
	pts := append([]float64(nil), p.pts["video"]...)
	sort.Float64s(pts)
	for i := 1; i < len(pts); i++ {
		if g := pts[i] - pts[i-1]; g > maxGap {
			maxGap, from, to = g, pts[i-1], pts[i]
		}
	}
	return maxGap, from, to
}

// TestLive_RTMP: ffmpeg publishes real-time H.264/AAC with the room's key;
// the recording starts without an API call, the end of the stream stops
// it, and the object holds both streams with the duration streamed. A wrong
// key, a revoked key and a second publisher are refused.
func TestLive_RTMP(t *testing.T) {
	e := mustLiveEnv(t, 5*time.Second)
	testLive(t, e, e.URL, strings.TrimSuffix(e.URL, e.Key))
}

// TestLive_SRT: the same over SRT, ffmpeg sending MPEG-TS.
func TestLive_SRT(t *testing.T) {
	e := mustLiveEnv(t, 5*time.Second)
	// linger: ffmpeg's SRT socket drops what it has not sent yet at the
	// close unless told to wait (live mode's default linger is 0).
	testLive(t, e, e.SRTURL+"&linger=2", strings.TrimSuffix(e.SRTURL, e.Key))
}

// testLive publishes to url (and to keyless+a wrong key).
func testLive(t *testing.T, e *liveEnv, url, keyless string) {

	// The key is shown once: later views give the URL template.
	view := e.Org.MustDo(t, 200, "GET", "/v1/meetings/"+e.MeetingID+"/stream-key", nil)
	if _, ok := view["streamKey"]; ok || view["set"] != true {
		t.Fatalf("stream key view shows the key or is not set: %v", view)
	}
	if url := view["publish"].([]any)[0].(map[string]any)["url"].(string); !strings.HasSuffix(url, "/live/{streamKey}") {
		t.Fatalf("later view's URL %q, want the template", url)
	}

	wrong := recsink.NewStreamKey()
	mustRefused(t, keyless+wrong)
	if strings.Contains(e.Main.Logs.String(), wrong) {
		t.Fatal("the log shows a refused stream key")
	}
	if recs := e.recordings(t); len(recs) != 0 {
		t.Fatalf("a refused key started recordings: %v", recs)
	}

	const streamFor = 20 * time.Second
	p := startPublisher(t, url)
	e.waitLive(t, true, 20*time.Second)
	recs := e.recordings(t)
	if len(recs) != 1 || recs[0]["state"] != recsink.RecordingRecording {
		t.Fatalf("recordings while live: %v", recs)
	}
	if want, _, _ := strings.Cut(url, "://"); recs[0]["source"] != want {
		t.Errorf("recording's source %v, want %s", recs[0]["source"], want)
	}
	id, objectKey := recs[0]["recordingId"].(string), recs[0]["objectKey"].(string)
	proto := "rtmp"
	if formatOf(url) == "mpegts" {
		proto = "srt"
	}
	if m := metricsText(t, e); !strings.Contains(m, `recsink_live_publishes{protocol="`+proto+`"} 1`) {
		t.Errorf("metrics while live:\n%s", grepLog(m, "recsink_live"))
	}

	mustRefused(t, url) // a second publisher on a live key
	if n := len(e.recordings(t)); n != 1 {
		t.Fatalf("%d recordings after a second publisher, want 1", n)
	}

	time.Sleep(time.Until(p.started.Add(streamFor))) // the stream's length, not a wait for a condition
	sent := p.stop(t, os.Interrupt)
	WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
	if m := metricsText(t, e); !strings.Contains(m, `recsink_live_publishes{protocol="`+proto+`"} 0`) ||
		!strings.Contains(m, `recsink_live_publishes_total{protocol="`+proto+`"} 1`) {
		t.Errorf("metrics after the stream:\n%s", grepLog(m, "recsink_live"))
	}

	data := e.S3.GetObject(t, e.Bucket, objectKey)
	if dir := os.Getenv("RECSINK_LIVE_KEEP"); dir != "" {
		os.WriteFile(filepath.Join(dir, formatOf(url)+".mkv"), data, 0o600)
	}
	probe := probeLive(t, data)
	if gap, _, _ := probe.check(t); gap > 0.5 {
		t.Errorf("a gap of %.2f s in the video", gap)
	}
	t.Logf("streamed %.2f s (ffmpeg's out_time); object: %d bytes, media %.2f s", sent.Seconds(), len(data), probe.end)
	if d := probe.end - sent.Seconds(); d < -0.5 || d > 0.5 {
		t.Errorf("media %.2f s, streamed %.2f s: differ by %.2f s, want within 0.5 s", probe.end, sent.Seconds(), d)
	}

	// The object plays and seeks in Chromium as a finished file (issue 15,
	// proof 1): a duration, a seekable range, a seek to the middle.
	pb := browsertest.CheckPlayback(t, browsertest.MustBrowser(t), data, "video/x-matroska")
	t.Logf("Chromium: %+v", pb)
	if pb.Error != "" || math.Abs(pb.Duration-sent.Seconds()) > 0.5 || !pb.Seeked || pb.Played <= pb.SeekedAt || pb.SeekableEnd < pb.Duration-0.5 {
		t.Errorf("Chromium plays the object: %+v, want a duration within 0.5 s of %.2f s, seekable to its end, a seek and playback", pb, sent.Seconds())
	}

	// A revoked key is refused.
	e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+e.MeetingID+"/stream-key", nil)
	mustRefused(t, url)
	if n := len(e.recordings(t)); n != 1 {
		t.Fatalf("%d recordings after a revoked key, want 1", n)
	}
	e.Org.MustDo(t, 404, "GET", "/v1/meetings/"+e.MeetingID+"/stream-key", nil)
}

// grepLog returns the log lines that contain any of words.
func grepLog(log string, words ...string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				b.WriteString(line + "\n")
				break
			}
		}
	}
	return b.String()
}

// TestLive_RTMPReconnect: a publisher killed mid-stream that comes back with
// the same key within the grace period continues the same recording: one
// object, timestamps monotonic across the gap, the gap no longer than the
// outage.
func TestLive_RTMPReconnect(t *testing.T) {
	e := mustLiveEnv(t, 10*time.Second)

	const part = 10 * time.Second
	p1 := startPublisher(t, e.URL)
	e.waitLive(t, true, 20*time.Second)
	time.Sleep(time.Until(p1.started.Add(part))) // the first part's length
	sent1 := p1.stop(t, os.Kill)                 // a drop: no unpublish
	dropped := time.Now()
	e.waitLive(t, false, 10*time.Second)
	time.Sleep(time.Until(dropped.Add(2 * time.Second))) // the outage's length

	p2 := startPublisher(t, e.URL)
	outage := p2.started.Sub(dropped) // at least this; ffmpeg's start-up adds a little
	e.waitLive(t, true, 20*time.Second)
	time.Sleep(time.Until(p2.started.Add(part))) // the second part's length
	sent2 := p2.stop(t, os.Interrupt)

	recs := e.recordings(t)
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want 1 continued across the reconnect: %v", len(recs), recs)
	}
	id, objectKey := recs[0]["recordingId"].(string), recs[0]["objectKey"].(string)
	WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
	if objs := e.S3.ListObjects(t, e.Bucket, "recordings/"); len(objs) != 1 {
		t.Fatalf("objects %v, want 1", objs)
	}
	probe := probeLive(t, e.S3.GetObject(t, e.Bucket, objectKey))
	gap, from, to := probe.check(t)
	part1, part2 := from+0.04, probe.end-to
	ran1 := dropped.Sub(p1.started)
	t.Logf("first publisher ran %.2f s (ffmpeg reported %.2f s sent before the kill), second sent %.2f s; restarted %.2f s after the kill; media %.2f s = %.2f s + gap %.2f s + %.2f s",
		ran1.Seconds(), sent1.Seconds(), sent2.Seconds(), outage.Seconds(), probe.end, part1, gap, part2)
	// Nothing the first publisher sent is lost (ffmpeg's progress lags a
	// killed process, so it is a lower bound; its run time an upper one).
	if part1 < sent1.Seconds()-0.1 || part1 > ran1.Seconds()+0.1 {
		t.Errorf("first part %.2f s, want between %.2f s sent and %.2f s run", part1, sent1.Seconds(), ran1.Seconds())
	}
	if d := part2 - sent2.Seconds(); d < -0.5 || d > 0.5 {
		t.Errorf("second part %.2f s, streamed %.2f s", part2, sent2.Seconds())
	}
	// The timeline keeps real time: the gap is the outage, from the kill
	// to the new publisher's first media (its start-up included).
	if gap < outage.Seconds() || gap > outage.Seconds()+1.5 {
		t.Errorf("gap %.2f s in the video, want the outage: %.2f s plus ffmpeg's start-up", gap, outage.Seconds())
	}
}

// metricsText returns recsink's /metrics.
func metricsText(tb testing.TB, e *liveEnv) string {
	tb.Helper()
	resp, err := http.Get(e.Main.MetricsURL() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestLive_StreamKeyAPI: a key created with its meeting, shown once; a
// replaced key is refused at the handshake; keys of unknown meetings are
// not found.
func TestLive_StreamKeyAPI(t *testing.T) {
	e := mustLiveEnv(t, time.Second)
	out := e.Org.MustDo(t, 201, "POST", "/v1/meetings", map[string]any{
		"endDate":   time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"streamKey": true,
	})
	sk, _ := out["streamKey"].(map[string]any)
	if key, _ := sk["streamKey"].(string); !recsink.ValidStreamKeyShape(key) || out["meetingId"] == nil || sk["meetingId"] != out["meetingId"] {
		t.Fatalf("meeting created with a stream key: %v", out)
	}
	plain := e.Org.MustDo(t, 201, "POST", "/v1/meetings", map[string]any{
		"endDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "streamKey": false})
	if _, ok := plain["streamKey"]; ok {
		t.Fatalf("streamKey false gave a key: %v", plain)
	}
	e.Org.MustDo(t, 404, "GET", "/v1/meetings/"+plain["meetingId"].(string)+"/stream-key", nil)
	if v := e.Org.MustDo(t, 200, "GET", "/v1/meetings/"+plain["meetingId"].(string), nil); fmt.Sprint(v["streamKey"]) != "map[set:false]" {
		t.Fatalf("meeting view without a key: %v", v)
	}
	// The meeting's view gives the publish URL templates, never the key.
	v := e.Org.MustDo(t, 200, "GET", "/v1/meetings/"+out["meetingId"].(string), nil)
	vk, _ := v["streamKey"].(map[string]any)
	if vk["set"] != true || vk["streamKey"] != nil || len(vk["publish"].([]any)) != 2 ||
		!strings.HasSuffix(vk["publish"].([]any)[0].(map[string]any)["url"].(string), "/live/{streamKey}") {
		t.Fatalf("meeting view with a key: %v", v)
	}
	e.Org.MustDo(t, 400, "POST", "/v1/meetings", map[string]any{
		"endDate": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "streamKey": "yes"})
	e.Org.MustDo(t, 404, "POST", "/v1/meetings/mtg_nope/stream-key", nil)

	// A room that wants mp4 refuses live input (the remuxer writes
	// Matroska), naming the format, and starts no recording.
	mp4 := e.Storage(e.Bucket+"/mp4", e.Env.Key)
	mp4["fileFormat"] = "mp4"
	e.Org.MustDo(t, 200, "PUT", "/v1/meetings/"+e.MeetingID+"/recording/destination", mp4)
	mustRefused(t, e.URL)
	mustContain(t, e.Main.Logs.String(), "live ingest writes Matroska (mkv); the room's destination asks for mp4")
	if n := len(e.recordings(t)); n != 0 {
		t.Fatalf("an mp4 room started %d recordings", n)
	}
	e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+e.MeetingID+"/recording/destination", nil)

	// Replacing: the old key is refused from then on.
	old := e.URL
	e.Org.MustDo(t, 201, "POST", "/v1/meetings/"+e.MeetingID+"/stream-key", nil)
	mustRefused(t, old)
	if n := len(e.recordings(t)); n != 0 {
		t.Fatalf("a replaced key started %d recordings", n)
	}
}

// TestLive_RTMPRotation: a key saved mid-publish leaves the live recording
// on its old key, which the drain view shows draining with it, and drained
// once the stream ends.
func TestLive_RTMPRotation(t *testing.T) {
	e := mustLiveEnv(t, time.Second)
	b := e.S3.CreateUser(t, "user")
	e.S3.PutBucketPolicy(t, e.Bucket, e.Env.Key, e.Env.Key.ID, b.ID)

	p := startPublisher(t, e.URL)
	e.waitLive(t, true, 20*time.Second)
	id := e.recordings(t)[0]["recordingId"].(string)
	e.Org.MustDo(t, 200, "PUT", "/v1/storage", e.Storage(e.Bucket+"/recordings", b))
	a := credentialsByKey(t, e.Org)["organization/"+e.Env.Key.ID]
	if a["state"] != recsink.CredentialDraining || fmt.Sprint(activeIDs(a)) != fmt.Sprint([]string{id}) {
		t.Fatalf("old key while live: %v; want draining, held by %s", a, id)
	}
	time.Sleep(time.Until(p.started.Add(8 * time.Second))) // the stream's length
	p.stop(t, os.Interrupt)
	out := WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
	if got := out["credential"].(map[string]any)["accessKeyId"]; got != e.Env.Key.ID {
		t.Fatalf("the live recording moved to key %v", got)
	}
	for end := time.Now().Add(10 * time.Second); ; {
		a = credentialsByKey(t, e.Org)["organization/"+e.Env.Key.ID]
		if a["state"] == recsink.CredentialDrained {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("old key after the stream: %v, want drained", a)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition under a deadline
	}
	probeLive(t, e.S3.GetObject(t, e.Bucket, out["objectKey"].(string))).check(t)
}

// TestLive_SecondPublisherAcrossNodes: two nodes on one PostgreSQL. While
// ffmpeg publishes to node 0, a second publisher with the same key on node
// 1 is refused (each node knows only its own sessions: the refusal comes
// from the database's view of the room's live recording). Once the first
// publish has ended, node 1 takes the key.
func TestLive_SecondPublisherAcrossNodes(t *testing.T) {
	requireTool(t, "ffmpeg")
	c := mustOWCluster(t, 2, func(int) []string {
		return []string{"--rtmp-addr", "127.0.0.1:0", "--stream-grace", "3s"}
	})
	c.Client(0).MustDo(t, 200, "PUT", "/v1/storage", c.Storage(c.Bucket, c.Key))
	meeting := c.Meeting(t)
	key, _ := c.Client(0).MustDo(t, 201, "POST", "/v1/meetings/"+meeting+"/stream-key", nil)["streamKey"].(string)
	urlOf := func(i int) string {
		out := c.Client(i).MustDo(t, 200, "GET", "/v1/meetings/"+meeting+"/stream-key", nil)
		u := out["publish"].([]any)[0].(map[string]any)["url"].(string)
		return strings.Replace(u, "{streamKey}", key, 1)
	}
	live := func(i int) bool {
		return c.Client(i).MustDo(t, 200, "GET", "/v1/meetings/"+meeting+"/stream-key", nil)["live"] == true
	}
	recordings := func() []any {
		return c.Client(0).MustDo(t, 200, "GET", "/v1/recordings?limit=100", nil)["results"].([]any)
	}

	p := startPublisher(t, urlOf(0))
	if !waitFor(20*time.Second, func() bool { return live(0) }) {
		t.Fatalf("node 0 not live within 20 s: %s", p.stderr)
	}
	out := mustRefused(t, urlOf(1))
	t.Logf("node 1 refused the second publisher: %s", strings.TrimSpace(out))
	if n := len(recordings()); n != 1 {
		t.Fatalf("%d recordings after a second publisher on another node, want 1", n)
	}
	if live(1) {
		t.Error("node 1 says the key is live on it")
	}
	p.stop(t, os.Interrupt)
	id := recordings()[0].(map[string]any)["recordingId"].(string)
	WaitState(t, c.Client(0), id, recsink.RecordingUploaded, 30*time.Second)

	// The key is free again, on any node.
	p = startPublisher(t, urlOf(1))
	if !waitFor(20*time.Second, func() bool { return live(1) }) {
		t.Fatalf("node 1 not live within 20 s after the first publish ended: %s", p.stderr)
	}
	if n := len(recordings()); n != 2 {
		t.Fatalf("%d recordings, want 2", n)
	}
	p.stop(t, os.Interrupt)
}
