package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// Client calls recsink's REST API with an organization's API key and
// returns domain types and errors: an error answer of the API becomes a
// *recsink.Error with its code, message and field, so that callers branch
// with recsink.ErrorCode as they would on the server.
type Client struct {
	// URL is the server's base URL, such as "http://127.0.0.1:8080".
	URL string
	// APIKey is the organization's API key.
	APIKey string
	// HTTPClient sends the requests; nil means DefaultHTTPClient.
	HTTPClient *http.Client
}

// NewClient returns a client of the server at url with apiKey.
func NewClient(url, apiKey string) *Client {
	return &Client{URL: strings.TrimSuffix(url, "/"), APIKey: apiKey}
}

// DefaultHTTPClient is the HTTP client of a Client or Uploader without one.
// It has no overall timeout, since an ingest request streams as long as the
// media does, but gives up on a server that accepts no connection or sends
// no answer once a request is written.
var DefaultHTTPClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 2 * time.Minute, // the server syncs a body before it answers
	IdleConnTimeout:       90 * time.Second,
	MaxIdleConnsPerHost:   4,
}}

func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return DefaultHTTPClient
}

// do sends a JSON request to path and decodes a 2xx JSON answer into out
// (when not nil). An error answer is returned as a *recsink.Error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.APIKey)
	resp, err := httpClient(c.HTTPClient).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return responseError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("http: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// statusCode maps an HTTP status back to a domain code, for answers without
// a JSON error body (HEAD, or a proxy's own error page).
func statusCode(status int) string {
	for code, s := range codes {
		if s == status {
			return code
		}
	}
	switch {
	case status == http.StatusRequestEntityTooLarge, status == http.StatusUnsupportedMediaType,
		status == http.StatusPreconditionFailed, status == http.StatusMethodNotAllowed:
		return recsink.EINVALID
	case status == http.StatusBadGateway, status == http.StatusGatewayTimeout:
		return recsink.EUNAVAILABLE
	}
	return recsink.EINTERNAL
}

// responseError reads an error answer into a *recsink.Error: the API's JSON
// error body when there is one, else the status alone.
func responseError(resp *http.Response) error {
	e := &recsink.Error{Code: statusCode(resp.StatusCode)}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body ErrorResponse
	if err := json.Unmarshal(b, &body); err == nil && body.Code != "" {
		e.Code, e.Message, e.Field = body.Code, body.Error, body.Field
	} else {
		e.Message = fmt.Sprintf("the server answered %s", resp.Status)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = s
	}
	if resp.StatusCode == http.StatusRequestTimeout {
		// The server cut a body that went quiet (the ingest idle timeout)
		// or came too slowly: what arrived is kept, so sending again from
		// Upload-Offset is the cure, as for a busy server.
		e.Code = recsink.EUNAVAILABLE
	}
	return e
}

// recording converts the API's recording into the domain's.
func (v *recordingView) recording() *recsink.Recording {
	bucket, prefix := recsink.SplitBucket(v.Bucket)
	return &recsink.Recording{
		ID:            v.RecordingID,
		MeetingID:     v.MeetingID,
		RoomName:      v.RoomName,
		State:         v.State,
		CredentialID:  v.Credential.ID,
		AccessKeyID:   v.Credential.AccessKeyID,
		Destination:   recsink.Destination{Bucket: bucket, Prefix: prefix, FileFormat: v.FileFormat},
		ObjectKey:     v.ObjectKey,
		StartDate:     v.StartDate.Time(),
		EndDate:       v.EndDate.TimePtr(),
		StopReason:    v.StopReason,
		BytesReceived: v.BytesReceived,
		BytesUploaded: v.BytesUploaded,
		SizeBytes:     v.SizeBytes,
		SHA256:        v.SHA256,
		Checksum:      v.Checksum,
		LastError:     v.LastError,
	}
}

// StartRecording starts a recording in the meeting and returns it with the
// URL and token that its media is sent to; the token is shown only once.
func (c *Client) StartRecording(ctx context.Context, meetingID string) (rec *recsink.Recording, ingestURL, token string, err error) {
	var v recordingView
	if err := c.do(ctx, "POST", "/v1/meetings/"+url.PathEscape(meetingID)+"/recordings", nil, &v); err != nil {
		return nil, "", "", err
	}
	if v.Ingest == nil {
		return nil, "", "", fmt.Errorf("http: start recording: the answer has no ingest URL")
	}
	return v.recording(), v.Ingest.URL, v.Ingest.Token, nil
}

// StopRecording stops a recording. It returns once recsink has taken the
// stop (state "stopping" or later); the object completes in the background.
func (c *Client) StopRecording(ctx context.Context, id string) (*recsink.Recording, error) {
	var v recordingView
	if err := c.do(ctx, "POST", "/v1/recordings/"+url.PathEscape(id)+"/stop", nil, &v); err != nil {
		return nil, err
	}
	return v.recording(), nil
}

// FindRecording returns a recording and its events.
func (c *Client) FindRecording(ctx context.Context, id string) (*recsink.Recording, []recsink.RecordingEvent, error) {
	var v recordingView
	if err := c.do(ctx, "GET", "/v1/recordings/"+url.PathEscape(id), nil, &v); err != nil {
		return nil, nil, err
	}
	var events []recsink.RecordingEvent
	if v.Events != nil {
		for _, e := range *v.Events {
			events = append(events, recsink.RecordingEvent{Time: e.Time.Time(), Type: e.Type, Message: e.Message})
		}
	}
	return v.recording(), events, nil
}

// ListCredentials returns every generation of the organization's and its
// rooms' keys with the recordings holding each: the rotation view.
func (c *Client) ListCredentials(ctx context.Context) ([]*recsink.CredentialUsage, error) {
	var v struct {
		Results []credentialView `json:"results"`
	}
	if err := c.do(ctx, "GET", "/v1/credentials", nil, &v); err != nil {
		return nil, err
	}
	out := make([]*recsink.CredentialUsage, 0, len(v.Results))
	for _, r := range v.Results {
		bucket, prefix := recsink.SplitBucket(r.Bucket)
		ids := r.ActiveRecordings.IDs
		if ids == nil {
			ids = []string{}
		}
		out = append(out, &recsink.CredentialUsage{
			Credential: recsink.Credential{
				ID:          r.ID,
				Scope:       r.Scope,
				Destination: recsink.Destination{Bucket: bucket, Prefix: prefix},
				AccessKeyID: r.AccessKeyID,
				CreatedAt:   r.CreatedAt.Time(),
				ReplacedAt:  r.ReplacedAt.TimePtr(),
			},
			State:             r.State,
			ActiveRecordings:  ids,
			SafeToDeleteAfter: r.SafeToDeleteAfter.TimePtr(),
		})
	}
	return out, nil
}

// IAMPolicy returns the least-privilege IAM policy document for bucket
// ("name" or "name/prefix").
func (c *Client) IAMPolicy(ctx context.Context, bucket string) (json.RawMessage, error) {
	var out json.RawMessage
	if err := c.do(ctx, "GET", "/v1/storage/iam-policy?bucket="+url.QueryEscape(bucket), nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Uploader sends a recording's media to its ingest URL with the resumable
// protocol (tus 1.0.0 core): Offset asks how many bytes recsink holds
// durably, Patch appends at that offset. A recorder keeps every byte past
// the last acknowledged offset until a Patch or Offset confirms it.
type Uploader struct {
	// URL and Token are the ingest URL and token returned by StartRecording.
	URL   string
	Token string
	// HTTPClient sends the requests; nil means DefaultHTTPClient.
	HTTPClient *http.Client
}

// tusRequest returns an ingest request with the token and tus version.
func (u *Uploader) tusRequest(ctx context.Context, method string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.URL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+u.Token)
	req.Header.Set("Tus-Resumable", tusVersion)
	return req, nil
}

// Offset returns the number of bytes recsink holds durably (tus HEAD).
func (u *Uploader) Offset(ctx context.Context) (int64, error) {
	req, err := u.tusRequest(ctx, "HEAD", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient(u.HTTPClient).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, responseError(resp)
	}
	n, ok := uploadOffset(resp)
	if !ok {
		return 0, fmt.Errorf("http: ingest HEAD: no valid Upload-Offset in the answer")
	}
	return n, nil
}

// Patch appends body at offset (tus PATCH) and returns the durable offset
// after it: every byte of body is synced by recsink once it returns nil. The
// body may stream for as long as the media does; it is sent chunked.
//
// On an error answer the returned offset is the one the server reported
// with it, or -1: a conflict (the offset was not the current one, or the
// recording takes no more media) and a full spool (EUNAVAILABLE, with
// RetryAfter) carry it. A transport error returns -1: ask Offset.
func (u *Uploader) Patch(ctx context.Context, offset int64, body io.Reader) (int64, error) {
	if body == nil {
		body = http.NoBody
	}
	req, err := u.tusRequest(ctx, "PATCH", body)
	if err != nil {
		return -1, err
	}
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := httpClient(u.HTTPClient).Do(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	n, ok := uploadOffset(resp)
	if !ok {
		n = -1
	}
	if resp.StatusCode/100 != 2 {
		return n, responseError(resp)
	}
	if !ok {
		return -1, fmt.Errorf("http: ingest PATCH: no valid Upload-Offset in the answer")
	}
	return n, nil
}

// uploadOffset returns the Upload-Offset header of resp.
func uploadOffset(resp *http.Response) (int64, bool) {
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return n, err == nil && n >= 0
}

// Retryable reports whether a failed ingest or API call is worth trying
// again: the connection failed or was cut, or the server is busy or
// failing for now. Client errors, such as a wrong token, are not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *recsink.Error
	if errors.As(err, &e) {
		return e.Code == recsink.EUNAVAILABLE || e.Code == recsink.EINTERNAL
	}
	return true // a transport error: refused, reset, EOF, timeout
}
