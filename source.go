package recsink

// How a recording was received (Recording.Source).
const (
	SourceHTTP = "http"
	SourceRTMP = "rtmp"
	SourceSRT  = "srt"
)
