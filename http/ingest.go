package http

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/recsink/recsink"
)

// The ingest routes take media from recorders at
// /v1/recordings/{recordingId}/ingest, authenticated by the recording's
// ingest token: "Authorization: Bearer <token>", or the query parameter
// "token" for recorders that cannot set headers (such as ffmpeg without
// -headers). The request log records the path without the query, so the
// token is never logged.
//
// Two protocols share the URL:
//   - PUT streams the body (chunked or sized) onto the end of the recording:
//     what "ffmpeg -method PUT" and "curl -T -" send.
//   - tus 1.0.0 core (https://tus.io/protocols/resumable-upload): HEAD for
//     the offset, PATCH to append at it, OPTIONS for discovery. The upload's
//     length is deferred: it is unknown while the meeting runs.

// tusVersion is the only tus protocol version served.
const tusVersion = "1.0.0"

// ingestToken returns the token of the request.
func ingestToken(r *http.Request) (string, bool) {
	if token, ok := bearerToken(r); ok {
		return token, true
	}
	token := r.URL.Query().Get("token")
	return token, token != ""
}

// ingestRequest authenticates an ingest request's presence of a token (the
// service checks its value) and frees the connection from the server's
// deadlines, since a recording streams for hours.
func (s *Server) ingestRequest(w http.ResponseWriter, r *http.Request) (string, bool) {
	token, ok := ingestToken(r)
	if !ok {
		s.Error(w, r, recsink.Errorf(recsink.EUNAUTHORIZED, "missing ingest token: send Authorization: Bearer <token> or ?token=<token>"))
		return "", false
	}
	rc := http.NewResponseController(w)
	// ErrNotSupported only where there is no connection (tests).
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return token, true
}

// handleIngestPut handles PUT /v1/recordings/{recordingId}/ingest: append the
// streamed body at the end of the recording. The body is passed on as it
// arrives, never buffered whole.
func (s *Server) handleIngestPut(w http.ResponseWriter, r *http.Request) {
	token, ok := s.ingestRequest(w, r)
	if !ok {
		return
	}
	id := r.PathValue("recordingId")
	offset, err := s.IngestService.Append(r.Context(), id, token, -1, r.Body)
	if err != nil {
		s.ingestError(w, r, id, token, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
	w.WriteHeader(http.StatusNoContent)
}

// handleIngestOptions handles OPTIONS: tus discovery, no authentication.
// No tus extension is served, so Tus-Extension is omitted as the protocol
// requires.
func (s *Server) handleIngestOptions(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Tus-Version", tusVersion)
	w.WriteHeader(http.StatusNoContent)
}

// handleIngestHead handles HEAD: the tus offset of the upload.
func (s *Server) handleIngestHead(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	w.Header().Set("Cache-Control", "no-store")
	token, ok := s.ingestRequest(w, r)
	if !ok {
		return
	}
	offset, err := s.IngestService.Offset(r.Context(), r.PathValue("recordingId"), token)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
	w.Header().Set("Upload-Defer-Length", "1")
	w.WriteHeader(http.StatusOK)
}

// handleIngestPatch handles PATCH: append the body at Upload-Offset, tus core.
func (s *Server) handleIngestPatch(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Tus-Resumable", tusVersion)
	token, ok := s.ingestRequest(w, r)
	if !ok {
		return
	}
	if r.Header.Get("Tus-Resumable") != tusVersion {
		w.Header().Set("Tus-Version", tusVersion)
		s.Error(w, r, withStatus(http.StatusPreconditionFailed,
			&recsink.Error{Code: recsink.EINVALID, Field: "Tus-Resumable", Message: "Tus-Resumable must be " + tusVersion}))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/offset+octet-stream" {
		s.Error(w, r, withStatus(http.StatusUnsupportedMediaType,
			&recsink.Error{Code: recsink.EINVALID, Field: "Content-Type", Message: "Content-Type must be application/offset+octet-stream"}))
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		s.Error(w, r, &recsink.Error{Code: recsink.EINVALID, Field: "Upload-Offset", Message: "Upload-Offset must be the number of bytes already received (see HEAD)"})
		return
	}
	id := r.PathValue("recordingId")
	n, err := s.IngestService.Append(r.Context(), id, token, offset, r.Body)
	if err != nil {
		s.ingestError(w, r, id, token, err)
		return
	}
	w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusNoContent)
}

// ingestError answers a failed append. On a conflict or a full spool the
// response carries the offset acknowledged so far, so that the recorder
// resumes from it.
func (s *Server) ingestError(w http.ResponseWriter, r *http.Request, id, token string, err error) {
	// A request cut off by a newer one (its connection presumed dead) or by
	// a stop: a Read of its body may be blocked still, which holds the
	// answer and the connection until the deadline ends it. End it now.
	var cut interface{ BodyAbandoned() bool }
	if errors.As(err, &cut) && cut.BodyAbandoned() {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	switch recsink.ErrorCode(err) {
	case recsink.ECONFLICT, recsink.EUNAVAILABLE:
		// The request's context may be done if the client went away;
		// the offset is still worth reporting to one that did not.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if offset, oerr := s.IngestService.Offset(ctx, id, token); oerr == nil {
			w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
		} else if !errors.Is(oerr, context.DeadlineExceeded) {
			s.logger().WarnContext(r.Context(), "http: ingest offset after failed append", "recording", id, "err", oerr)
		}
	}
	s.Error(w, r, err)
}
