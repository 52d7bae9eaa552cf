package http

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 document of the API, written by hand beside the
// route table; TestOpenAPIMatchesRoutes keeps the two in step.
//
//go:embed openapi.json
var openAPI []byte

// handleOpenAPI handles GET /v1/openapi.json.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
