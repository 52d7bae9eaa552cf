package recsink

import "context"

// How a recording was received (Recording.Source).
const (
	SourceHTTP = "http"
	SourceRTMP = "rtmp"
	SourceSRT  = "srt"
	SourceWHIP = "whip"
)

type sourceKey struct{}

// WithSource returns ctx telling RecordingService.StartRecording how the
// recording will be received: the live service starts its recordings
// through the same call as the API (same destination, webhooks, rotation),
// and this says "rtmp" or "srt" without a parameter on every caller.
func WithSource(ctx context.Context, source string) context.Context {
	return context.WithValue(ctx, sourceKey{}, source)
}

// SourceFrom returns the source set by WithSource, else SourceHTTP.
func SourceFrom(ctx context.Context) string {
	if s, _ := ctx.Value(sourceKey{}).(string); s != "" {
		return s
	}
	return SourceHTTP
}
