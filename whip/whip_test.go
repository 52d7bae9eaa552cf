package whip_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media/mkvmux"
	"github.com/recsink/recsink/whip"
)

const goodKey = "rsl_abcdefghijklmnopqrstuvwxyz012345"

// publisher accepts goodKey and refuses any other.
type publisher struct {
	authErr error
}

func (p *publisher) Authorize(ctx context.Context, key string) error {
	if key != goodKey {
		return recsink.Errorf(recsink.EUNAUTHORIZED, "the stream key is not valid")
	}
	return p.authErr
}

func (p *publisher) Publish(ctx context.Context, protocol, key string, t mkvmux.Tracks, since time.Time) (whip.Publication, error) {
	return nil, recsink.Errorf(recsink.ECONFLICT, "not in this test")
}

// MustServer returns a WHIP server on a loopback UDP port behind an
// httptest server.
func MustServer(tb testing.TB, p whip.Publisher, publicIPs ...string) (*whip.Server, string) {
	tb.Helper()
	s := &whip.Server{Publisher: p, Logger: slog.New(slog.DiscardHandler), PublicIPs: publicIPs}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Handle(mux.Handle)
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return s, srv.URL
}

func do(tb testing.TB, method, url, key, contentType, body string) (*http.Response, string) {
	tb.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func offer(media ...string) string {
	lines := []string{"v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"}
	for i, m := range media {
		kind, codec, _ := strings.Cut(m, ":")
		lines = append(lines, "m="+kind+" 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:"+string(rune('0'+i)), "a=sendonly",
			"a=rtpmap:96 "+codec+"/90000")
	}
	return strings.Join(append(lines, ""), "\r\n")
}

func TestServer_BadInput(t *testing.T) {
	_, url := MustServer(t, &publisher{})
	url += whip.Path
	for _, tc := range []struct {
		name, method, key, contentType, body string
		status                               int
		says                                 string
	}{
		{"NoKey", "POST", "", "application/sdp", offer("video:VP8"), 401, "Bearer"},
		{"WrongKey", "POST", "rsl_wrong", "application/sdp", offer("video:VP8"), 401, "not valid"},
		{"NotSDP", "POST", goodKey, "application/json", "{}", 415, "application/sdp"},
		{"Garbage", "POST", goodKey, "application/sdp", "\x00\x01garbage", 400, "not SDP"},
		{"TooLarge", "POST", goodKey, "application/sdp", strings.Repeat("a", 70<<10), 400, "larger"},
		{"NoMedia", "POST", goodKey, "application/sdp", offer(), 400, "no audio or video"},
		{"NoCodec", "POST", goodKey, "application/sdp", offer("video:AV1", "audio:PCMU"), 415, "video AV1, audio PCMU"},
		{"TwoVideos", "POST", goodKey, "application/sdp", offer("video:VP8", "video:VP8"), 400, "more video"},
		{"Patch", "PATCH", goodKey, "application/trickle-ice-sdpfrag", "a=candidate", 405, "trickle"},
		{"DeleteUnknown", "DELETE", goodKey, "", "", 404, "no such"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := url
			if tc.method != "POST" {
				u += "/nosuchsession"
			}
			resp, body := do(t, tc.method, u, tc.key, tc.contentType, tc.body)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.says) {
				t.Fatalf("%d %q, want %d saying %q", resp.StatusCode, body, tc.status, tc.says)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header: a WHIP page on another origin cannot read the answer")
			}
		})
	}
}

func TestServer_Conflict(t *testing.T) {
	_, url := MustServer(t, &publisher{authErr: recsink.Errorf(recsink.ECONFLICT, "the stream key is live")})
	if resp, body := do(t, "POST", url+whip.Path, goodKey, "application/sdp", offer("video:VP8")); resp.StatusCode != 409 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestServer_Answer: a real offer (pion's) gets a 201 with an ICE-lite
// answer holding its candidates and a session URL, which only the key
// deletes.
func TestServer_Answer(t *testing.T) {
	s, url := MustServer(t, &publisher{}, "198.51.100.7")
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	resp, answer := do(t, "POST", url+whip.Path, goodKey, "application/sdp", o.SDP)
	if resp.StatusCode != 201 || resp.Header.Get("Content-Type") != "application/sdp" {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	// The public IP (--whip-public-ip) comes beside the local address.
	for _, want := range []string{"a=ice-lite", "a=candidate:", "127.0.0.1", "198.51.100.7", "a=recvonly"} {
		if !strings.Contains(answer, want) {
			t.Errorf("answer lacks %q:\n%s", want, answer)
		}
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, whip.Path+"/") || s.Sessions() != 1 {
		t.Fatalf("Location %q, %d sessions", loc, s.Sessions())
	}
	// Garbage on the media port (STUN-looking or not) is dropped: the
	// server goes on answering.
	udp, err := net.Dial("udp", s.UDPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		b := make([]byte, 1+rng.IntN(1400))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 0 && len(b) >= 20 {
			b[0], b[1], b[4], b[5], b[6], b[7] = 0, 1, 0x21, 0x12, 0xA4, 0x42 // a STUN binding request's header
		}
		udp.Write(b)
	}
	udp.Close()
	if resp, body := do(t, "POST", url+whip.Path, goodKey, "application/sdp", o.SDP); resp.StatusCode != 201 {
		t.Fatalf("an offer after garbage on the media port: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "DELETE", url+loc, "rsl_other", "", ""); resp.StatusCode != 404 {
		t.Fatalf("DELETE with another key: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "DELETE", url+loc, goodKey, "", ""); resp.StatusCode != 200 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	if n := s.Sessions(); n != 1 {
		t.Fatalf("%d sessions after DELETE, want the second one only", n)
	}
}

// FuzzOffer: no offer crashes the endpoint or gets a 5xx.
func FuzzOffer(f *testing.F) {
	f.Add(offer("video:VP8", "audio:opus"))
	f.Add(offer("video:AV1"))
	f.Add("v=0\r\nm=video 9 X 96\r\na=rtpmap:96\r\n")
	f.Add("m=audio\r\na=rtpmap: /\r\n")
	_, url := MustServer(f, &publisher{})
	f.Fuzz(func(t *testing.T, body string) {
		resp, out := do(t, "POST", url+whip.Path, goodKey, "application/sdp", body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%d %s for %q", resp.StatusCode, out, body)
		}
	})
}
