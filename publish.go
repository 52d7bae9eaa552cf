package recsink

import (
	"net"
	"net/url"
	"strings"
)

// PublishEndpoint is where a publisher sends a room's live stream. URL is
// the complete URL when the key is known (only when it is created), else a
// template with {streamKey} in its place; Server and StreamKey are the two
// fields that encoders such as OBS ask for separately.
type PublishEndpoint struct {
	Protocol  string
	URL       string
	Server    string
	StreamKey string
}

// PublishEndpoints returns the publish URLs of the live listeners at
// rtmpAddr and srtAddr (an empty address is a listener that is off), as
// publishers reach them: the host of publicURL, else requestHost, with each
// listener's port. key fills the URLs when it is known.
func PublishEndpoints(publicURL, requestHost, rtmpAddr, srtAddr, key string) []PublishEndpoint {
	eps := []PublishEndpoint{}
	if rtmpAddr != "" {
		server := "rtmp://" + publishHost(publicURL, requestHost, rtmpAddr) + "/live"
		p := PublishEndpoint{Protocol: "rtmp", Server: server, URL: server + "/{streamKey}"}
		if key != "" {
			p.URL, p.StreamKey = server+"/"+key, key
		}
		eps = append(eps, p)
	}
	if srtAddr != "" {
		server := "srt://" + publishHost(publicURL, requestHost, srtAddr)
		p := PublishEndpoint{Protocol: "srt", Server: server, URL: server + "?streamid=publish:{streamKey}"}
		if key != "" {
			p.URL, p.StreamKey = server+"?streamid=publish:"+key, key
		}
		eps = append(eps, p)
	}
	return eps
}

// WHIPPath is the path of the WHIP endpoint on the HTTP listener.
const WHIPPath = "/v1/whip"

// WHIPEndpoint returns the WHIP endpoint (RFC 9725) under baseURL, the
// server's public base URL: a publisher POSTs its SDP offer there with the
// stream key as Bearer token, so the URL never holds the key. StreamKey is
// set when key is known.
func WHIPEndpoint(baseURL, key string) PublishEndpoint {
	u := strings.TrimSuffix(baseURL, "/") + WHIPPath
	return PublishEndpoint{Protocol: "whip", URL: u, Server: u, StreamKey: key}
}

// publishHost is HOST:PORT of a live listener at addr: the host of
// publicURL (else requestHost) and the listener's port.
func publishHost(publicURL, requestHost, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	host := requestHost
	if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
		host = u.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return net.JoinHostPort(host, port)
}
