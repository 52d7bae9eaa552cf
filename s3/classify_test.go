package s3_test

import (
	"testing"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/s3"
)

// TestClassifyAssumeRole: the refusals of SeaweedFS (seen on its STS) and of
// AWS (its documented messages) each get their reason.
func TestClassifyAssumeRole(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, code, message, want string }{
		{"SeaweedTrust", "AccessDenied", "trust policy validation failed: trust policy denies access", recsink.RoleTrustDenied},
		{"SeaweedRoleNotFound", "AccessDenied", "role not found: Missing", recsink.RoleNotFound},
		{"SeaweedNoProvider", "AccessDenied", "failed to validate web identity token: no identity provider registered for issuer: http://127.0.0.1:1", recsink.RoleProviderUnknown},
		{"SeaweedAudience", "InvalidParameterValue", "invalid token audience: provider: invalid token audience: token audience matches none of the configured client IDs", recsink.RoleAudienceMismatch},
		{"SeaweedSignature", "InvalidParameterValue", "invalid token format: token signature is invalid", recsink.RoleTokenRejected},
		{"AWSNotAuthorized", "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", recsink.RoleTrustDeniedOrAbsent},
		{"AWSNoProvider", "InvalidIdentityToken", "No OpenIDConnect provider found in your account for https://recsink.example.com", recsink.RoleProviderUnknown},
		{"AWSAudience", "InvalidIdentityToken", "Incorrect token audience", recsink.RoleAudienceMismatch},
		{"AWSDuration", "ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", recsink.RoleDurationNotAllowed},
		{"Unknown", "Throttling", "Rate exceeded", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := s3.ClassifyAssumeRole(tt.code, tt.message); got != tt.want {
				t.Fatalf("classify(%s, %q) = %q, want %q", tt.code, tt.message, got, tt.want)
			}
		})
	}
}
