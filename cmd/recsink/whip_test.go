package main_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/recsink/recsink"
	main "github.com/recsink/recsink/cmd/recsink"
	"github.com/recsink/recsink/internal/browsertest"
)

// whipEnv is a recsink with WHIP on, the organization's storage saved, a
// meeting and its stream key.
type whipEnv struct {
	*liveEnv
	WHIPURL string // the endpoint the stream key's view gives
}

func mustWHIPEnv(tb testing.TB, grace time.Duration) *whipEnv {
	tb.Helper()
	e, meeting := mustRecordingEnv(tb, func(c *main.Config) {
		c.WHIPUDPAddr = "127.0.0.1:0"
		c.StreamGrace = grace
	})
	out := e.Org.MustDo(tb, 201, "POST", "/v1/meetings/"+meeting+"/stream-key", nil)
	key, _ := out["streamKey"].(string)
	pubs, _ := out["publish"].([]any)
	if key == "" || len(pubs) != 1 {
		tb.Fatalf("stream key answer: %v", out)
	}
	p := pubs[0].(map[string]any)
	url, _ := p["url"].(string)
	if p["protocol"] != "whip" || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/v1/whip") || p["streamKey"] != key {
		tb.Fatalf("WHIP publish endpoint %v", p)
	}
	return &whipEnv{liveEnv: &liveEnv{Env: e, MeetingID: meeting, Key: key}, WHIPURL: url}
}

// mustWHIPBrowser starts headless Chromium with a fake camera and
// microphone that getUserMedia grants without asking.
func mustWHIPBrowser(tb testing.TB) context.Context {
	tb.Helper()
	return browsertest.MustBrowser(tb,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
	)
}

// whipClientPage is a WHIP client (RFC 9725) as a web page would have
// one: camera and microphone, an offer with every candidate, POST, answer.
// publish() resolves once the peer connection is connected; stop() ends
// the publish with DELETE and resolves with the seconds it was connected.
const whipClientPage = `<!doctype html><script>
let pc, stream, location_, connectedAt, firstAt, key_;
async function publish(url, key, videoCodec) {
  key_ = key;
  stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480, frameRate: 30}, audio: true});
  pc = new RTCPeerConnection();
  for (const t of stream.getTracks()) {
    const tr = pc.addTransceiver(t, {direction: "sendonly"});
    if (videoCodec && t.kind === "video") {
      const cs = RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType === "video/" + videoCodec);
      if (!cs.length) throw new Error("this browser cannot send " + videoCodec);
      tr.setCodecPreferences(cs);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
  let resp;
  for (let i = 0; ; i++) {
    resp = await fetch(url, {method: "POST", headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + key}, body: pc.localDescription.sdp});
    // 409 while recsink has not yet seen the previous connection go.
    if (resp.status !== 409 || i >= 10) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (resp.status !== 201) throw new Error("POST " + resp.status + " " + await resp.text());
  location_ = new URL(resp.headers.get("Location"), url).href;
  await pc.setRemoteDescription({type: "answer", sdp: await resp.text()});
  await new Promise((resolve, reject) => {
    const check = () => {
      if (pc.connectionState === "connected") { connectedAt = performance.now(); firstAt = firstAt || connectedAt; resolve(); }
      if (pc.connectionState === "failed") reject(new Error("peer connection failed"));
    };
    pc.addEventListener("connectionstatechange", check);
    check();
    setTimeout(() => reject(new Error("not connected within 20 s: " + pc.connectionState)), 20000);
  });
  return location_;
}
// drop closes the peer connection without DELETE, as a reloaded page does.
function drop() {
  for (const t of stream.getTracks()) t.stop();
  pc.close();
  return (performance.now() - connectedAt) / 1000;
}
async function stop() {
  const secs = (performance.now() - connectedAt) / 1000;
  const resp = await fetch(location_, {method: "DELETE", headers: {"Authorization": "Bearer " + key_}});
  for (const t of stream.getTracks()) t.stop();
  pc.close();
  return JSON.stringify({secs: secs, total: (performance.now() - firstAt) / 1000, status: resp.status});
}
</script>`

// TestWHIP_Chromium: Chromium publishes its (fake) camera and microphone
// over WHIP for 15 s; the recording starts without an API call, stops with
// the DELETE, and the object in the bucket holds VP8 and Opus with the
// duration published and plays and seeks in Chromium. A wrong key, a
// second publisher and an offer without a codec recsink records are
// refused.
func TestWHIP_Chromium(t *testing.T) {
	testWHIPChromium(t, "VP8", 15*time.Second)
}

// TestWHIP_ChromiumH264: the same with Chromium sending H.264 (its SPS and
// PPS arrive in-band, before the first keyframe).
func TestWHIP_ChromiumH264(t *testing.T) {
	testWHIPChromium(t, "H264", 8*time.Second)
}

func testWHIPChromium(t *testing.T, codec string, publishFor time.Duration) {
	e := mustWHIPEnv(t, 5*time.Second)
	ctx := mustWHIPBrowser(t)
	post := func(key, sdp string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.WHIPURL, strings.NewReader(sdp))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// A wrong key: 401, and the key is not in the log.
	wrong := recsink.NewStreamKey()
	if st, body := post(wrong, audioOffer("PCMU")); st != 401 {
		t.Fatalf("wrong key: %d %s", st, body)
	}
	if strings.Contains(e.Main.Logs.String(), wrong) {
		t.Fatal("the log shows a refused stream key")
	}
	// No codec recsink records: 415, naming what was offered.
	if st, body := post(e.Key, audioOffer("PCMU")); st != 415 || !strings.Contains(body, "PCMU") {
		t.Fatalf("an offer of PCMU only: %d %s", st, body)
	}
	if recs := e.recordings(t); len(recs) != 0 {
		t.Fatalf("refused offers started recordings: %v", recs)
	}

	bctx := openWHIPClient(t, ctx, 90*time.Second)
	location, err := chromedp.Run(bctx, chromedp.Evaluate[string](`publish(`+jsString(e.WHIPURL)+`, `+jsString(e.Key)+`, `+jsString(codec)+`)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, grepLog(e.Main.Logs.String(), "whip", "live"))
	}
	started := time.Now()
	if !strings.Contains(location, "/v1/whip/") {
		t.Fatalf("Location %q", location)
	}
	e.waitLive(t, true, 20*time.Second)
	recs := e.recordings(t)
	if len(recs) != 1 || recs[0]["state"] != recsink.RecordingRecording || recs[0]["source"] != "whip" {
		t.Fatalf("recordings while live: %v", recs)
	}
	id, objectKey := recs[0]["recordingId"].(string), recs[0]["objectKey"].(string)
	if m := metricsText(t, e.liveEnv); !strings.Contains(m, `recsink_live_publishes{protocol="whip"} 1`) {
		t.Errorf("metrics while live:\n%s", grepLog(m, "recsink_live"))
	}
	// A second publisher on the live key: 409 before its offer is read.
	if st, body := post(e.Key, audioOffer("opus")); st != 409 {
		t.Fatalf("a second publisher: %d %s", st, body)
	}

	time.Sleep(time.Until(started.Add(publishFor))) // the stream's length, not a wait for a condition
	stopped, err := chromedp.Run(bctx, chromedp.Evaluate[string](`stop()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("stop: %v", err)
	}
	var st struct {
		Secs, Total float64
		Status      int
	}
	if err := json.Unmarshal([]byte(stopped), &st); err != nil || st.Status != 200 {
		t.Fatalf("stop: %s (%v)", stopped, err)
	}
	WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
	if m := metricsText(t, e.liveEnv); !strings.Contains(m, `recsink_live_publishes{protocol="whip"} 0`) ||
		!strings.Contains(m, `recsink_live_publishes_total{protocol="whip"} 1`) {
		t.Errorf("metrics after the stream:\n%s", grepLog(m, "recsink_live"))
	}

	data := e.S3.GetObject(t, e.Bucket, objectKey)
	if dir := os.Getenv("RECSINK_LIVE_KEEP"); dir != "" {
		os.WriteFile(filepath.Join(dir, "whip-"+codec+".mkv"), data, 0o600)
	}
	probe := probeLive(t, data)
	if want := "video/" + strings.ToLower(codec); !probe.types[want] || !probe.types["audio/opus"] || len(probe.types) != 2 {
		t.Fatalf("streams %v, want %s and audio/opus", probe.types, want)
	}
	for typ, dts := range probe.dts {
		for i := 1; i < len(dts); i++ {
			if dts[i] < dts[i-1] {
				t.Fatalf("%s decoding time goes back at packet %d: %.3f after %.3f", typ, i, dts[i], dts[i-1])
			}
		}
	}
	t.Logf("published %.2f s (connected to DELETE); object: %d bytes, media %.2f s, %d video and %d audio packets",
		st.Secs, len(data), probe.end, len(probe.pts["video"]), len(probe.pts["audio"]))
	if d := probe.end - st.Secs; math.Abs(d) > 1 {
		t.Errorf("media %.2f s, published %.2f s: differ by %.2f s, want within 1 s", probe.end, st.Secs, d)
	}

	pb := browsertest.CheckPlayback(t, browsertest.MustBrowser(t), data, "video/x-matroska")
	t.Logf("Chromium: %+v", pb)
	if pb.Error != "" || math.Abs(pb.Duration-st.Secs) > 1 || !pb.Seeked || pb.Played <= pb.SeekedAt {
		t.Errorf("Chromium plays the object: %+v, want a duration within 1 s of %.2f s, a seek and playback", pb, st.Secs)
	}

	// A revoked key: 401, and no recording.
	e.Org.MustDo(t, 204, "DELETE", "/v1/meetings/"+e.MeetingID+"/stream-key", nil)
	if st, body := post(e.Key, audioOffer("opus")); st != 401 {
		t.Fatalf("revoked key: %d %s", st, body)
	}
	if n := len(e.recordings(t)); n != 1 {
		t.Fatalf("%d recordings after a revoked key, want 1", n)
	}
}

// openWHIPClient serves the WHIP client page and opens it in the browser;
// the returned context ends within d.
func openWHIPClient(tb testing.TB, ctx context.Context, d time.Duration) context.Context {
	tb.Helper()
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, whipClientPage)
	}))
	tb.Cleanup(page.Close)
	bctx, cancel := context.WithTimeout(ctx, d)
	tb.Cleanup(cancel)
	if err := chromedp.Do(bctx, chromedp.Navigate(page.URL)); err != nil {
		tb.Fatalf("browser: %v", err)
	}
	return bctx
}

// TestWHIP_Reconnect: the page's peer connection closes without DELETE (a
// reload) 6 s in and publishes again with the same key within the grace
// period: one recording, one object, as long as the time from the first
// connection to the DELETE.
func TestWHIP_Reconnect(t *testing.T) {
	e := mustWHIPEnv(t, 15*time.Second)
	bctx := openWHIPClient(t, mustWHIPBrowser(t), 90*time.Second)
	publish := func() {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[string](`publish(`+jsString(e.WHIPURL)+`, `+jsString(e.Key)+`)`, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatalf("publish: %v\n%s", err, grepLog(e.Main.Logs.String(), "whip", "live"))
		}
	}
	publish()
	started := time.Now()
	e.waitLive(t, true, 20*time.Second)
	recs := e.recordings(t)
	if len(recs) != 1 {
		t.Fatalf("recordings: %v", recs)
	}
	id, objectKey := recs[0]["recordingId"].(string), recs[0]["objectKey"].(string)

	time.Sleep(time.Until(started.Add(6 * time.Second))) // the stream's length, not a wait for a condition
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`drop()`)); err != nil {
		t.Fatal(err)
	}
	e.waitLive(t, false, 20*time.Second)
	dropped := time.Now()
	publish()
	t.Logf("published again %.2f s after the drop was seen", time.Since(dropped).Seconds())
	e.waitLive(t, true, 20*time.Second)
	if recs := e.recordings(t); len(recs) != 1 || recs[0]["recordingId"] != id || recs[0]["state"] != recsink.RecordingRecording {
		t.Fatalf("recordings after the reconnect: %v", recs)
	}
	time.Sleep(time.Until(started.Add(12 * time.Second))) // the stream's length
	stopped, err := chromedp.Run(bctx, chromedp.Evaluate[string](`stop()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Secs, Total float64
		Status      int
	}
	if err := json.Unmarshal([]byte(stopped), &st); err != nil || st.Status != 200 {
		t.Fatalf("stop: %s (%v)", stopped, err)
	}
	WaitState(t, e.Org, id, recsink.RecordingUploaded, 30*time.Second)
	if n := len(e.recordings(t)); n != 1 {
		t.Fatalf("%d recordings, want 1", n)
	}
	data := e.S3.GetObject(t, e.Bucket, objectKey)
	probe := probeLive(t, data)
	if !probe.types["video/vp8"] || !probe.types["audio/opus"] || len(probe.types) != 2 {
		t.Fatalf("streams %v, want video/vp8 and audio/opus", probe.types)
	}
	var gap float64
	for i := 1; i < len(probe.pts["video"]); i++ {
		gap = max(gap, probe.pts["video"][i]-probe.pts["video"][i-1])
	}
	t.Logf("first connection to DELETE %.2f s (second connection %.2f s); object %d bytes, media %.2f s, largest video gap %.2f s",
		st.Total, st.Secs, len(data), probe.end, gap)
	if d := probe.end - st.Total; math.Abs(d) > 1 {
		t.Errorf("media %.2f s, first connection to DELETE %.2f s: differ by %.2f s, want within 1 s", probe.end, st.Total, d)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// audioOffer is a minimal SDP offer of one audio track with one codec.
func audioOffer(codec string) string {
	pt, rate := "0", "8000"
	if codec == "opus" {
		pt, rate = "111", "48000/2"
	}
	return strings.Join([]string{
		"v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
		"m=audio 9 UDP/TLS/RTP/SAVPF " + pt, "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly", "a=rtcp-mux",
		"a=ice-ufrag:abcd", "a=ice-pwd:abcdefghijklmnopqrstuvwx",
		"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
		"a=setup:actpass", "a=rtpmap:" + pt + " " + codec + "/" + rate, "",
	}, "\r\n")
}
