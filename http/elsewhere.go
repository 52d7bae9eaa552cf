package http

import (
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/recsink/recsink"
)

// forwardedHeader marks a request sent on by another node, so that a
// request never goes round between nodes that disagree on an owner.
const forwardedHeader = "Recsink-Forwarded"

// forward sends the request on to the node that runs the recording, so a
// recorder or a client can use one address for all nodes. The body has not
// been read: the service answers ElsewhereError before it reads media.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, e *recsink.ElsewhereError) {
	target, err := url.Parse(e.URL)
	if err != nil || r.Header.Get(forwardedHeader) != "" {
		s.Error(w, r, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 1,
			Message: "the recording is moving between recsink nodes; try again in a moment"})
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(forwardedHeader, "1")
		},
		// Media is streamed: send each chunk on as it arrives.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.logger().WarnContext(r.Context(), "http: forward to owner node failed", "recording", e.RecordingID, "owner", e.URL, "err", err)
			s.Error(w, r, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 2,
				Message: "the recsink node that runs this recording does not answer; try again (another node takes over once its lease expires)"})
		},
	}
	proxy.ServeHTTP(w, r)
}

// asElsewhere returns the ElsewhereError in err, if any.
func asElsewhere(err error) (*recsink.ElsewhereError, bool) {
	var e *recsink.ElsewhereError
	return e, errors.As(err, &e)
}
