package http

import (
	"encoding/json"
	"net/http"

	"github.com/recsink/recsink"
)

// roleSetupView is what a customer creates in IAM for roleBased access.
type roleSetupView struct {
	// IdentityProviderURL is recsink's OIDC issuer, to register in IAM as an
	// OpenID Connect identity provider; Audience its audience (client ID).
	IdentityProviderURL string `json:"identityProviderUrl"`
	Audience            string `json:"audience"`
	// Subject is the sub of the tokens recsink signs for this organization.
	Subject string `json:"subject"`
	// TrustPolicy is the role's trust policy, ACCOUNT_ID to fill in.
	TrustPolicy json.RawMessage `json:"trustPolicy"`
}

// handleRoleSetup handles GET /v1/storage/role-setup: the identity provider,
// audience, subject and trust policy of a role recsink can assume for the
// organization (the permission policy is GET /v1/storage/iam-policy).
func (s *Server) handleRoleSetup(w http.ResponseWriter, r *http.Request) {
	if s.OIDCIssuer == "" {
		s.Error(w, r, recsink.Errorf(recsink.ENOTFOUND, "roleBased access is not enabled on this recsink server"))
		return
	}
	rs := recsink.NewRoleSetup(s.OIDCIssuer, s.OIDCAudience, orgFrom(r.Context()).ID)
	writeJSON(w, http.StatusOK, roleSetupView{
		IdentityProviderURL: rs.IdentityProviderURL,
		Audience:            rs.Audience,
		Subject:             rs.Subject,
		TrustPolicy:         rs.TrustPolicy,
	})
}
