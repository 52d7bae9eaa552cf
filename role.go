package recsink

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Authentication types of a destination, as Whereby's meeting API names them.
const (
	AuthAccessKey = "accessKey"
	AuthRoleBased = "roleBased"
)

// OpAssumeRole is the StorageError.Op of a refused or failed exchange of
// recsink's identity token for a role's temporary credentials.
const OpAssumeRole = "AssumeRoleWithWebIdentity"

// Reasons of a refused AssumeRoleWithWebIdentity (StorageError.Reason): STS
// answers most refusals with one code (AccessDenied, InvalidIdentityToken,
// InvalidParameterValue), so the adapter classifies them for the customer.
const (
	RoleTrustDenied         = "TrustPolicyDenied"     // the trust policy does not allow this organization's sub
	RoleAudienceMismatch    = "AudienceMismatch"      // the provider in IAM expects another audience
	RoleProviderUnknown     = "ProviderNotRegistered" // no identity provider for recsink's URL in IAM
	RoleNotFound            = "RoleNotFound"          // no role has this ARN
	RoleTokenRejected       = "TokenRejected"         // the token's signature or claims were refused
	RoleDurationNotAllowed  = "DurationNotAllowed"    // the requested session duration exceeds the role's maximum
	RoleTrustDeniedOrAbsent = "TrustPolicyDeniedOrRoleNotFound"
	// RoleSessionExpired: S3 refused a role's temporary credentials (an
	// expired or lost session); the role is assumed again, it is not a
	// refused key.
	RoleSessionExpired = "SessionExpired"
)

// roleARNRE matches an IAM role ARN: arn:PARTITION:iam::ACCOUNT:role/PATH/NAME
// (SeaweedFS leaves the account out: arn:aws:iam::role/NAME).
var roleARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::([0-9]{12}:)?role/[\w+=,.@/-]{1,512}$`)

// IsRoleARN reports whether id names an IAM role rather than an access key:
// a credential whose AccessKeyID is a role ARN is reached with role-based
// access. Access key IDs never contain ':'.
func IsRoleARN(id string) bool { return strings.HasPrefix(id, "arn:") }

// ValidateRoleARN checks the shape of oidcRoleArn.
func ValidateRoleARN(arn string) error {
	if arn == "" {
		return FieldErrorf("oidcRoleArn", "oidcRoleArn is required for roleBased access: the ARN of the IAM role that trusts recsink, such as arn:aws:iam::123456789012:role/recsink-recordings")
	}
	if !roleARNRE.MatchString(arn) {
		return FieldErrorf("oidcRoleArn", "oidcRoleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/recsink-recordings")
	}
	return nil
}

// OrganizationSubject returns the sub of the identity tokens recsink signs
// for an organization: what the customer's trust policy pins.
func OrganizationSubject(orgID string) string { return "org:" + orgID }

// explainAssumeRole returns the plain sentence for a refused or failed
// AssumeRoleWithWebIdentity.
func (e *StorageError) explainAssumeRole() string {
	if e.Op != OpAssumeRole {
		return "S3 refused the role's temporary credentials as expired or unknown (" + e.Code + "); recsink assumes the role again. If this repeats, check that the STS and S3 endpoints belong to the same service."
	}
	switch e.Reason {
	case RoleTrustDenied:
		return "the role's trust policy does not allow this organization: the trust policy must name recsink's identity provider and pin the sub claim to this organization's subject (recsink shows the exact policy)."
	case RoleTrustDeniedOrAbsent:
		return "the role's trust policy does not allow this organization, or no role has this ARN (STS does not say which): check the ARN, and that the trust policy names recsink's identity provider and this organization's subject."
	case RoleAudienceMismatch:
		return "The audience does not match: the identity provider registered in IAM for recsink expects another audience (client ID) than the one recsink signs; set it to recsink's audience."
	case RoleProviderUnknown:
		return "The identity provider is not registered: add recsink's URL as an OpenID Connect identity provider in IAM, with recsink's audience, then try again."
	case RoleNotFound:
		return "The role was not found: no IAM role has this ARN. Check oidcRoleArn, or create the role."
	case RoleTokenRejected:
		return "STS refused recsink's identity token: the identity provider registered in IAM may have cached old signing keys, or its URL differs from recsink's. Try again in a minute."
	case RoleDurationNotAllowed:
		return "The role's maximum session duration is shorter than what recsink asks; raise it to at least one hour in IAM."
	}
	switch {
	case e.StatusCode == 0:
		return "The security token service (STS) does not answer: check the endpoint and that the network allows it."
	case e.StatusCode >= 500:
		return "The security token service (STS) failed with a server error; recsink retries."
	}
	return "The security token service refused to let recsink assume the role (" + e.Code + ")."
}

// RoleTrustPolicy returns the trust policy, ready to paste into IAM, of a
// role that lets recsink assume it for one organization only: the identity
// provider registered for issuer (recsink's public URL) in the customer's
// account, the audience, and the organization's subject pinned. accountID
// "" leaves the placeholder ACCOUNT_ID for the customer to fill in.
func RoleTrustPolicy(issuer, audience, orgID, accountID string) []byte {
	host := strings.TrimRight(strings.TrimPrefix(strings.TrimPrefix(issuer, "https://"), "http://"), "/")
	if accountID == "" {
		accountID = "ACCOUNT_ID"
	}
	policy := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":    "Allow",
			"Principal": map[string]any{"Federated": "arn:aws:iam::" + accountID + ":oidc-provider/" + host},
			"Action":    "sts:AssumeRoleWithWebIdentity",
			"Condition": map[string]any{"StringEquals": map[string]any{
				host + ":aud": audience,
				host + ":sub": OrganizationSubject(orgID),
			}},
		}},
	}
	b, _ := json.MarshalIndent(policy, "", "  ")
	return b
}

// RoleSetup is what a customer creates in IAM so that recsink can assume a
// role for one organization: the REST API (GET /v1/storage/role-setup) and
// the admin page both show it, built by NewRoleSetup.
type RoleSetup struct {
	// IdentityProviderURL is recsink's OIDC issuer (its public URL), to
	// register in IAM as an OpenID Connect identity provider; Audience is
	// the audience (client ID) to register with it.
	IdentityProviderURL string
	Audience            string
	// Subject is the sub of the tokens recsink signs for the organization.
	Subject string
	// TrustPolicy is the role's trust policy, ACCOUNT_ID to fill in.
	TrustPolicy []byte
}

// NewRoleSetup returns the role setup of organization orgID for recsink's
// issuer and audience.
func NewRoleSetup(issuer, audience, orgID string) *RoleSetup {
	return &RoleSetup{
		IdentityProviderURL: issuer,
		Audience:            audience,
		Subject:             OrganizationSubject(orgID),
		TrustPolicy:         RoleTrustPolicy(issuer, audience, orgID, ""),
	}
}
