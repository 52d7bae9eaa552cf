package http

// Hooks for the external tests: the parsers that the fuzz targets drive.
var (
	DecodeJSONBytes = decodeJSONBytes
	ParseTusPatch   = parseTusPatch
	StatusOf        = statusOf
)

// Inputs returns a new value of each JSON request body type.
func Inputs() []any {
	return []any{new(meetingInput), new(destinationInput), new(webhookInput)}
}
