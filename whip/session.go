package whip

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/media/mkvmux"
)

// session is one WHIP publish: a peer connection, its tracks, and the
// publication they feed once every track is known.
type session struct {
	s       *Server
	id      string
	key     string
	keyHash [32]byte
	origin  time.Time // the timeline's zero: every track's first packet is placed on it by its arrival
	pc      *webrtc.PeerConnection
	kinds   []webrtc.RTPCodecType // the tracks the answer accepted

	frames    chan frame
	connected chan struct{}
	connOnce  sync.Once
	done      chan struct{}

	mu       sync.Mutex
	ended    bool
	clean    bool
	why      string
	closeRun sync.Once
}

// frame is one depacketized sample of a track.
type frame struct {
	kind     webrtc.RTPCodecType
	codec    string // mkvmux's codec name
	pts      time.Duration
	data     []byte
	keyframe bool
	at       time.Time // arrival
	ssrc     webrtc.SSRC
	rate     int // audio: clock rate
	channels int
}

func newSession(s *Server, key string) *session {
	return &session{
		s: s, id: recsink.RandomToken(16), key: key, keyHash: hashKey(key), origin: time.Now(),
		frames: make(chan frame, 64), connected: make(chan struct{}), done: make(chan struct{}),
	}
}

// negotiate answers the offer; the answer holds every candidate (no
// trickle).
func (sess *session) negotiate(ctx context.Context, offer string) (string, error) {
	pc, err := sess.s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("whip: new peer connection: %w", err)
	}
	sess.pc = pc
	pc.OnTrack(sess.onTrack)
	pc.OnConnectionStateChange(sess.onState)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", recsink.Errorf(recsink.EINVALID, "the offer was refused: %v", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", recsink.Errorf(recsink.EINVALID, "no answer to the offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("whip: set local description: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("whip: gather candidates: %w", ctx.Err())
	}
	local := pc.LocalDescription()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(local.SDP); err != nil {
		return "", fmt.Errorf("whip: parse own answer: %w", err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Port.Value == 0 {
			continue
		}
		recv := false
		for _, a := range m.Attributes {
			recv = recv || a.Key == "recvonly" || a.Key == "sendrecv"
		}
		switch {
		case !recv:
		case m.MediaName.Media == "video":
			sess.kinds = append(sess.kinds, webrtc.RTPCodecTypeVideo)
		case m.MediaName.Media == "audio":
			sess.kinds = append(sess.kinds, webrtc.RTPCodecTypeAudio)
		}
	}
	if len(sess.kinds) == 0 {
		return "", recsink.Errorf(recsink.EUNSUPPORTED, "no track of the offer can be recorded: recsink records VP8, VP9 or H.264 video and Opus audio")
	}
	return local.SDP, nil
}

func (sess *session) kindsString() string {
	var ks []string
	for _, k := range sess.kinds {
		ks = append(ks, k.String())
	}
	return strings.Join(ks, "+")
}

func (sess *session) onState(st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		sess.connOnce.Do(func() { close(sess.connected) })
	case webrtc.PeerConnectionStateFailed:
		go sess.close(false, "the peer connection failed")
	case webrtc.PeerConnectionStateClosed:
		// The publisher closed its peer connection (DTLS close_notify)
		// without a DELETE, which is how RFC 9725 ends a publish: a page
		// reloaded or a client restarting. The recording waits the grace
		// period for it to come back.
		go sess.close(false, "the publisher closed the peer connection without DELETE")
	}
}

// close ends the session: clean means the publisher ended the stream (the
// recording stops), else it dropped (the recording waits the grace period).
// The first reason wins.
func (sess *session) close(clean bool, why string) {
	sess.mu.Lock()
	if !sess.ended {
		sess.ended, sess.clean, sess.why = true, clean, why
	}
	sess.mu.Unlock()
	sess.closeRun.Do(func() {
		close(sess.done)
		if sess.pc != nil {
			sess.pc.Close()
		}
		sess.s.remove(sess)
	})
}

func (sess *session) endReason() (bool, string) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.clean, sess.why
}

// onTrack reads one track's RTP, puts its packets in order and into
// frames, and passes them on with their timestamps.
func (sess *session) onTrack(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	var depack rtp.Depacketizer
	codec := ""
	mime := strings.ToLower(track.Codec().MimeType)
	switch mime {
	case strings.ToLower(webrtc.MimeTypeVP8):
		depack, codec = &codecs.VP8Packet{}, mkvmux.VP8
	case strings.ToLower(webrtc.MimeTypeVP9):
		depack, codec = &codecs.VP9Packet{}, mkvmux.VP9
	case strings.ToLower(webrtc.MimeTypeH264):
		depack, codec = &codecs.H264Packet{}, mkvmux.H264
	case strings.ToLower(webrtc.MimeTypeOpus):
		depack, codec = &codecs.OpusPacket{}, mkvmux.Opus
	default:
		sess.s.Logger.Warn("whip: a track with a codec recsink does not record", "session", sess.id, "codec", track.Codec().MimeType)
		return
	}
	rate := track.Codec().ClockRate
	if rate == 0 {
		return
	}
	sb := samplebuilder.New(maxLate, depack, rate, samplebuilder.WithMaxTimeDelay(time.Second))
	var (
		first    bool
		firstAt  time.Time
		lastTS   uint32
		extTS    int64 // the RTP timestamp unwrapped, from firstTS
		channels = int(track.Codec().Channels)
	)
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		if !first {
			first, firstAt, lastTS = true, time.Now(), pkt.Timestamp
		}
		sb.Push(pkt)
		for sample := sb.Pop(); sample != nil; sample = sb.Pop() {
			ts := sample.PacketTimestamp
			extTS += int64(int32(ts - lastTS))
			lastTS = ts
			pts := firstAt.Sub(sess.origin) + time.Duration(extTS)*time.Second/time.Duration(rate)
			f := frame{kind: track.Kind(), codec: codec, pts: pts, data: sample.Data, at: time.Now(), ssrc: track.SSRC(), rate: int(rate), channels: channels}
			switch codec {
			case mkvmux.VP8:
				// RFC 6386 9.1: bit 0 of the frame tag is 0 on a key frame.
				f.keyframe = len(f.data) > 0 && f.data[0]&1 == 0
			case mkvmux.VP9:
				f.keyframe = vp9Keyframe(f.data)
			case mkvmux.H264:
				f.keyframe = h264Keyframe(f.data)
			default:
				f.keyframe = true
			}
			select {
			case sess.frames <- f:
			case <-sess.done:
				return
			}
		}
	}
}

// run waits for the connection and the tracks, starts the publication and
// feeds it until the session ends.
func (sess *session) run() {
	log := sess.s.Logger.With("session", sess.id)
	timer := time.NewTimer(connectTimeout)
	defer timer.Stop()
	select {
	case <-sess.connected:
	case <-timer.C:
		sess.close(false, "ICE/DTLS did not connect within "+connectTimeout.String())
		log.Info("whip: session ended", "why", "no connection")
		return
	case <-sess.done:
		_, why := sess.endReason()
		log.Info("whip: session ended before it connected", "why", why)
		return
	}

	// Until every track is known (a video track by a keyframe, for its
	// codec's parameters), frames wait here, within bounds.
	var (
		pending      []frame
		pendingBytes int
		video, audio *frame
		since        time.Time
	)
	want := func(k webrtc.RTPCodecType) bool { return slices.Contains(sess.kinds, k) }
	ready := func() bool {
		return (!want(webrtc.RTPCodecTypeVideo) || video != nil) && (!want(webrtc.RTPCodecTypeAudio) || audio != nil)
	}
	keyframes := time.NewTicker(keyframeInterval / 4)
	defer keyframes.Stop()
	timer.Reset(tracksTimeout)
	var videoSSRC webrtc.SSRC
wait:
	for !ready() {
		select {
		case f := <-sess.frames:
			if since.IsZero() {
				since = f.at
			}
			if f.kind == webrtc.RTPCodecTypeVideo {
				videoSSRC = f.ssrc
				if video == nil {
					if !f.keyframe || f.codec == mkvmux.H264 && !hasParams(f.data) {
						continue // a track starts at a keyframe
					}
					video = &f
				}
			} else if audio == nil {
				audio = &f
			}
			pending = append(pending, f)
			pendingBytes += len(f.data)
			for len(pending) > maxPending || pendingBytes > maxPendingBytes {
				pendingBytes -= len(pending[0].data)
				pending = pending[1:]
			}
		case <-keyframes.C:
			if video == nil && videoSSRC != 0 {
				sess.requestKeyframe(videoSSRC)
			}
		case <-timer.C:
			break wait
		case <-sess.done:
			_, why := sess.endReason()
			log.Info("whip: session ended before its tracks were known", "why", why)
			return
		}
	}
	var tracks mkvmux.Tracks
	if video != nil {
		v := &mkvmux.Video{Codec: video.codec}
		if video.codec == mkvmux.H264 {
			v.SPS, v.PPS = params(video.data)
		}
		tracks.Video = v
	}
	if audio != nil {
		tracks.Audio = &mkvmux.Audio{Codec: mkvmux.Opus, SampleRate: 48000, Channels: max(audio.channels, 2)}
	}
	if tracks.Video == nil && tracks.Audio == nil {
		sess.close(false, "no media arrived within "+tracksTimeout.String())
		log.Info("whip: session ended", "why", "no media")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	pub, err := sess.s.Publisher.Publish(ctx, recsink.SourceWHIP, sess.key, tracks, since)
	cancel()
	if err != nil {
		sess.close(false, "publish refused")
		log.Info("whip: publish refused", "err", recsink.RedactStreamKeys(err.Error()))
		return
	}

	write := func(f frame) error {
		switch {
		case f.kind == webrtc.RTPCodecTypeVideo && tracks.Video != nil:
			au := [][]byte{f.data}
			if f.codec == mkvmux.H264 {
				au = nalus(f.data)
			}
			return pub.WriteVideo(f.pts, f.pts, au, f.keyframe)
		case f.kind == webrtc.RTPCodecTypeAudio && tracks.Audio != nil:
			return pub.WriteAudio(f.pts, f.data)
		}
		return nil
	}
	// The held frames go first, in time order, from the first keyframe on.
	slices.SortStableFunc(pending, func(a, b frame) int { return int(a.pts - b.pts) })
	for _, f := range pending {
		if video != nil && f.pts < video.pts && f.kind == webrtc.RTPCodecTypeVideo {
			continue
		}
		if err := write(f); err != nil {
			sess.close(false, "the recording ended")
			pub.End(false, err.Error())
			return
		}
	}
	pending = nil
	lastKey := time.Now()
	keyframes.Reset(keyframeInterval / 2)
	idle := time.NewTimer(idleTimeout)
	defer idle.Stop()
	for {
		select {
		case f := <-sess.frames:
			idle.Reset(idleTimeout)
			if f.kind == webrtc.RTPCodecTypeVideo && f.keyframe {
				lastKey = time.Now()
			}
			if err := write(f); err != nil {
				log.Info("whip: the recording ended", "err", err)
				sess.close(true, "the recording ended")
				pub.End(true, "the recording ended: "+err.Error())
				return
			}
		case <-keyframes.C:
			if video != nil && time.Since(lastKey) >= keyframeInterval {
				sess.requestKeyframe(video.ssrc)
			}
		case <-idle.C:
			sess.close(false, "no media for "+idleTimeout.String())
		case <-sess.done:
			clean, why := sess.endReason()
			pub.End(clean, why)
			log.Info("whip: publish ended", "clean", clean, "why", why)
			return
		}
	}
}

// requestKeyframe asks the publisher for a keyframe (RTCP PLI).
func (sess *session) requestKeyframe(ssrc webrtc.SSRC) {
	_ = sess.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}})
}

// nalus splits an Annex B byte stream (what the H.264 depacketizer
// returns) into its NAL units.
func nalus(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.Index(b, []byte{0, 0, 1})
		if i < 0 {
			out = append(out, b)
			break
		}
		if i > 0 {
			n := b[:i]
			// A 4-byte start code leaves its leading zero on the unit before.
			if len(n) > 0 && n[len(n)-1] == 0 {
				n = n[:len(n)-1]
			}
			if len(n) > 0 {
				out = append(out, n)
			}
		}
		b = b[i+3:]
	}
	return out
}

func h264Keyframe(b []byte) bool {
	for _, n := range nalus(b) {
		if n[0]&0x1F == 5 {
			return true
		}
	}
	return false
}

func hasParams(b []byte) bool {
	sps, pps := params(b)
	return sps != nil && pps != nil
}

// params returns an access unit's SPS and PPS.
func params(b []byte) (sps, pps []byte) {
	for _, n := range nalus(b) {
		switch n[0] & 0x1F {
		case 7:
			sps = n
		case 8:
			pps = n
		}
	}
	return sps, pps
}

// vp9Keyframe reads a VP9 frame's uncompressed header: frame_marker,
// profile, show_existing_frame, frame_type (0: key frame).
func vp9Keyframe(b []byte) bool {
	if len(b) == 0 || b[0]>>6 != 2 {
		return false
	}
	profile := (b[0]>>5)&1 | (b[0]>>4&1)<<1
	bit := 4
	if profile == 3 {
		bit++
	}
	if b[0]>>(7-bit)&1 == 1 { // show_existing_frame
		return false
	}
	bit++
	return b[0]>>(7-bit)&1 == 0
}
