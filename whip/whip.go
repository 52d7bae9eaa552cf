// Package whip takes live publishes over WHIP (RFC 9725): a WebRTC
// publisher (a browser, OBS 30+, GStreamer) POSTs its SDP offer with the
// room's stream key as Bearer token and gets an SDP answer; the audio and
// video it then sends are depacketized, never decoded, and handed to the
// live service, which remuxes them into the room's recording as it does for
// RTMP and SRT.
//
// recsink is an ICE-lite peer: the answer carries every host candidate of
// the one UDP port all sessions share (--whip-udp-addr), and trickle ICE is
// not offered (PATCH answers 405).
package whip

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/live"
)

// Publication takes one publisher's media; see live.Publication.
type Publication = live.Publication

// Publisher authenticates publishes and starts their recordings; see
// live.Publisher.
type Publisher = live.Publisher

// Path is where publishers POST their offers; a session's resource is
// Path/{id}.
const Path = recsink.WHIPPath

// Limits on what a publisher can make the server hold.
const (
	// DefaultMaxSessions bounds the WHIP sessions of a node.
	DefaultMaxSessions = 64
	// maxOffer bounds an SDP offer.
	maxOffer = 64 << 10
	// connectTimeout bounds ICE and DTLS after the answer.
	connectTimeout = 30 * time.Second
	// tracksTimeout bounds the wait for the first frame of every
	// negotiated track (for video, a keyframe) once connected; the tracks
	// that are ready then are recorded.
	tracksTimeout = 10 * time.Second
	// maxPending bounds the frames held while the tracks are not all known.
	maxPending      = 1500
	maxPendingBytes = 4 << 20
	// maxLate is the samplebuilder's reorder window, in packets: what a
	// track holds to put packets back in order.
	maxLate = 512
	// keyframeInterval is how often a keyframe is asked for (RTCP PLI):
	// browsers send one only when asked, and a recording needs them to
	// seek.
	keyframeInterval = 2 * time.Second
	// idleTimeout drops a publish whose peer connection stays up but
	// sends no media (its tracks stopped).
	idleTimeout = 30 * time.Second
	// ICE: a peer silent for disconnectedTimeout is disconnected, for
	// failedTimeout failed: its publish drops and the recording waits the
	// grace period.
	disconnectedTimeout = 5 * time.Second
	failedTimeout       = 10 * time.Second
)

// Server answers WHIP offers. Set its fields, then Listen.
type Server struct {
	Publisher Publisher
	Logger    *slog.Logger
	// Error writes a domain error as the API does (status, JSON body); nil
	// writes its message as text with the status of its code.
	Error       func(w http.ResponseWriter, r *http.Request, err error)
	MaxSessions int // zero means DefaultMaxSessions
	// PublicIPs are addresses at which publishers reach the media port from
	// outside a 1:1 NAT (a cloud VM's public IP): the answer offers them as
	// host candidates beside the local addresses.
	PublicIPs []string

	conn net.PacketConn
	mux  interface{ Close() error }
	api  *webrtc.API

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
	wg       sync.WaitGroup
}

// Listen opens the UDP port every session's media arrives on.
func (s *Server) Listen(udpAddr string) error {
	conn, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		return fmt.Errorf("whip: listen on %s: %w", udpAddr, err)
	}
	s.Logger = cmp.Or(s.Logger, slog.Default())
	if s.MaxSessions <= 0 {
		s.MaxSessions = DefaultMaxSessions
	}
	s.sessions = map[string]*session{}
	s.conn = conn

	lf := pionLogger{s.Logger}
	se := webrtc.SettingEngine{LoggerFactory: lf}
	se.SetLite(true)
	mux := webrtc.NewICEUDPMux(lf.NewLogger("whip"), conn)
	s.mux = mux
	se.SetICEUDPMux(mux)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	// A publisher on the same host (a test, a local encoder) reaches a
	// loopback address; a listener bound to one has no other.
	se.SetIncludeLoopbackCandidate(true)
	se.SetICETimeouts(disconnectedTimeout, failedTimeout, time.Second)
	if len(s.PublicIPs) > 0 {
		for _, ip := range s.PublicIPs {
			if net.ParseIP(ip) == nil {
				conn.Close()
				return fmt.Errorf("whip: public IP %q is not an IP address", ip)
			}
		}
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: s.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend,
		}); err != nil {
			conn.Close()
			return fmt.Errorf("whip: public IPs: %w", err)
		}
	}

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		conn.Close()
		return err
	}
	ir := &interceptor.Registry{}
	// NACKs, RTCP receiver reports, TWCC: what a browser needs to keep its
	// bitrate up and repair losses.
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(me, ir, webrtc.WithInterceptorLoggerFactory(lf)); err != nil {
		conn.Close()
		return fmt.Errorf("whip: interceptors: %w", err)
	}
	s.api = webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return nil
}

// UDPAddr returns the address of the media port.
func (s *Server) UDPAddr() net.Addr { return s.conn.LocalAddr() }

// Close ends every session (their recordings wait out the grace period, or
// end with the service) and closes the media port.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ss := make([]*session, 0, len(s.sessions))
	for _, ss1 := range s.sessions {
		ss = append(ss, ss1)
	}
	s.mu.Unlock()
	for _, ss1 := range ss {
		ss1.close(false, "recsink is shutting down")
	}
	s.wg.Wait()
	if s.mux != nil {
		s.mux.Close()
	}
	return s.conn.Close()
}

// Sessions returns how many sessions are open.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Handle registers the WHIP routes with register (such as http.ServeMux's
// Handle): POST Path, and DELETE, PATCH and OPTIONS on a session.
func (s *Server) Handle(register func(pattern string, h http.Handler)) {
	register("POST "+Path, cors(s.handlePost))
	register("OPTIONS "+Path, cors(s.handleOptions))
	register("DELETE "+Path+"/{session}", cors(s.handleDelete))
	register("PATCH "+Path+"/{session}", cors(s.handlePatch))
	register("OPTIONS "+Path+"/{session}", cors(s.handleOptions))
}

// cors lets a WHIP client page on any origin publish (RFC 9725 section
// 4.5): the key is its credential, not a cookie, so any origin may send it.
func cors(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "POST, DELETE, PATCH, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		w.Header().Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch")
		h(w, r)
	})
}

func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	if s.Error != nil {
		s.Error(w, r, err)
		return
	}
	status := http.StatusInternalServerError
	switch recsink.ErrorCode(err) {
	case recsink.EINVALID:
		status = http.StatusBadRequest
	case recsink.EUNAUTHORIZED:
		status = http.StatusUnauthorized
	case recsink.ECONFLICT:
		status = http.StatusConflict
	case recsink.EUNSUPPORTED:
		status = http.StatusUnsupportedMediaType
	case recsink.EUNAVAILABLE:
		status = http.StatusServiceUnavailable
	case recsink.ENOTFOUND:
		status = http.StatusNotFound
	}
	http.Error(w, recsink.ErrorMessage(err), status)
}

// bearer returns the request's Bearer token.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

// handlePatch answers a trickle ICE or ICE restart request: not offered
// (RFC 9725 section 4.3.1 lets a server without it answer 405).
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "DELETE")
	http.Error(w, "recsink's WHIP endpoint does not take trickle ICE: its answer has every candidate", http.StatusMethodNotAllowed)
}

// handlePost takes an offer: the key is checked, the offer's codecs are
// checked, and the answer comes back with the session's resource in
// Location.
func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	key := bearer(r)
	if key == "" {
		s.error(w, r, recsink.Errorf(recsink.EUNAUTHORIZED, "a WHIP publish needs the room's stream key as its Bearer token"))
		return
	}
	if err := s.Publisher.Authorize(r.Context(), key); err != nil {
		s.Logger.Info("whip: publish refused", "remote", r.RemoteAddr, "err", recsink.RedactStreamKeys(err.Error()))
		s.error(w, r, err)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/sdp" {
		s.error(w, r, recsink.Errorf(recsink.EUNSUPPORTED, "a WHIP offer is application/sdp, not %q", r.Header.Get("Content-Type")))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxOffer+1))
	if err != nil {
		s.error(w, r, recsink.Errorf(recsink.EINVALID, "read the offer: %v", err))
		return
	}
	if len(body) > maxOffer {
		s.error(w, r, recsink.Errorf(recsink.EINVALID, "the offer is larger than %d bytes", maxOffer))
		return
	}
	if err := checkOffer(body); err != nil {
		s.Logger.Info("whip: offer refused", "remote", r.RemoteAddr, "err", err)
		s.error(w, r, err)
		return
	}

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		s.error(w, r, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 2, Message: "recsink is shutting down"})
		return
	case len(s.sessions) >= s.MaxSessions:
		s.mu.Unlock()
		s.Logger.Warn("whip: too many sessions; refused one", "remote", r.RemoteAddr, "max", s.MaxSessions)
		s.error(w, r, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 5, Message: "this recsink node takes no more WHIP publishes"})
		return
	}
	sess := newSession(s, key)
	s.sessions[sess.id] = sess
	s.wg.Add(1) // under mu: Close's Wait starts after every Add
	s.mu.Unlock()

	answer, err := sess.negotiate(r.Context(), string(body))
	if err != nil {
		sess.close(false, "negotiation failed")
		s.wg.Done()
		s.Logger.Info("whip: offer refused", "remote", r.RemoteAddr, "err", err)
		s.error(w, r, err)
		return
	}
	go func() {
		defer s.wg.Done()
		sess.run()
	}()
	s.Logger.Info("whip: offer answered", "session", sess.id, "remote", r.RemoteAddr, "tracks", sess.kindsString())
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", Path+"/"+sess.id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer)
}

// handleDelete ends a session: the publisher ended the stream, and the
// recording stops.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sess := s.sessions[r.PathValue("session")]
	s.mu.Unlock()
	// The session's URL is a secret of its publisher, and so is the key:
	// both must match, and a wrong one is told apart from neither.
	if sess == nil || !sess.keyIs(bearer(r)) {
		s.error(w, r, recsink.Errorf(recsink.ENOTFOUND, "no such WHIP session"))
		return
	}
	sess.close(true, "the publisher deleted the WHIP session")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) remove(sess *session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
}

// Codecs recsink records, by the names SDP gives them (RFC 8866 rtpmap,
// case-insensitive).
var (
	videoCodecs = []string{"VP8", "VP9", "H264"}
	audioCodecs = []string{"opus"}
)

func registerCodecs(me *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	for _, c := range []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: fb}, PayloadType: 106},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032", RTCPFeedback: fb}, PayloadType: 112},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: fb}, PayloadType: 98},
	} {
		if err := me.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return fmt.Errorf("whip: register %s: %w", c.MimeType, err)
		}
	}
	opus := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
		SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}
	if err := me.RegisterCodec(opus, webrtc.RTPCodecTypeAudio); err != nil {
		return fmt.Errorf("whip: register opus: %w", err)
	}
	return nil
}

// checkOffer refuses an offer that is not SDP, that sends more than one
// audio and one video track, or in which no track has a codec recsink
// records; the refusal names the codecs offered.
func checkOffer(body []byte) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(string(body)); err != nil {
		return recsink.Errorf(recsink.EINVALID, "the offer is not SDP: %v", err)
	}
	var offered []string
	supported := false
	count := map[string]int{}
	for _, m := range d.MediaDescriptions {
		kind := m.MediaName.Media
		if kind != "audio" && kind != "video" {
			continue
		}
		count[kind]++
		if count[kind] > 1 {
			return recsink.Errorf(recsink.EINVALID, "a WHIP publish to recsink sends one audio and one video track at most; the offer has more %s", kind)
		}
		for _, a := range m.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			// "96 VP8/90000"
			_, enc, _ := strings.Cut(a.Value, " ")
			name, _, _ := strings.Cut(enc, "/")
			if name == "" || strings.EqualFold(name, "rtx") || strings.EqualFold(name, "red") || strings.EqualFold(name, "ulpfec") ||
				strings.EqualFold(name, "flexfec-03") || strings.EqualFold(name, "CN") || strings.EqualFold(name, "telephone-event") {
				continue
			}
			if !slices.Contains(offered, kind+" "+name) {
				offered = append(offered, kind+" "+name)
			}
			if kind == "video" && slices.ContainsFunc(videoCodecs, func(c string) bool { return strings.EqualFold(c, name) }) ||
				kind == "audio" && slices.ContainsFunc(audioCodecs, func(c string) bool { return strings.EqualFold(c, name) }) {
				supported = true
			}
		}
	}
	if len(count) == 0 {
		return recsink.Errorf(recsink.EINVALID, "the offer has no audio or video track")
	}
	if !supported {
		return recsink.Errorf(recsink.EUNSUPPORTED, "no codec recsink records was offered (offered: %s); recsink records VP8, VP9 or H.264 video and Opus audio",
			cmp.Or(strings.Join(offered, ", "), "none"))
	}
	return nil
}

// hashKey is what a session keeps of its key, to check a DELETE.
func hashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

func (sess *session) keyIs(key string) bool {
	h := hashKey(key)
	return subtle.ConstantTimeCompare(h[:], sess.keyHash[:]) == 1
}
