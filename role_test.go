package recsink_test

import (
	"strings"
	"testing"

	"github.com/recsink/recsink"
)

// TestStorageError_Role: a refused role is a refused key (another saved one
// may work); an expired session is neither refused nor "deleted": it is
// retried after the role is assumed again.
func TestStorageError_Role(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name                string
		err                 recsink.StorageError
		keyRefused, retries bool
		explain             string
	}{
		{"TrustDenied", recsink.StorageError{Op: recsink.OpAssumeRole, Code: "AccessDenied", StatusCode: 403, Reason: recsink.RoleTrustDenied},
			true, false, "the role's trust policy does not allow this organization"},
		{"Audience", recsink.StorageError{Op: recsink.OpAssumeRole, Code: "InvalidParameterValue", StatusCode: 400, Reason: recsink.RoleAudienceMismatch},
			true, false, "The audience does not match"},
		{"STSDown", recsink.StorageError{Op: recsink.OpAssumeRole},
			false, true, "does not answer"},
		{"SessionExpired", recsink.StorageError{Op: "UploadPart", Code: "InvalidAccessKeyId", StatusCode: 403, Reason: recsink.RoleSessionExpired},
			false, true, "assumes the role again"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.err
			if e.KeyRefused() != tt.keyRefused || e.Retryable() != tt.retries {
				t.Fatalf("KeyRefused %v Retryable %v, want %v %v", e.KeyRefused(), e.Retryable(), tt.keyRefused, tt.retries)
			}
			if !strings.Contains(e.Explain(), tt.explain) || strings.Contains(e.Explain(), "deleted") {
				t.Fatalf("Explain = %q, want it to contain %q and not speak of a deleted key", e.Explain(), tt.explain)
			}
		})
	}
	if !recsink.IsRoleARN("arn:aws:iam::123456789012:role/r") || recsink.IsRoleARN("AKIAEXAMPLE") {
		t.Fatal("IsRoleARN")
	}
	for arn, ok := range map[string]bool{
		"arn:aws:iam::123456789012:role/recsink": true, "arn:aws:iam::role/Writer": true,
		"arn:aws:iam::123456789012:user/x": false, "arn:aws:s3:::bucket": false, "": false,
	} {
		if err := recsink.ValidateRoleARN(arn); (err == nil) != ok {
			t.Errorf("ValidateRoleARN(%q) = %v, want ok=%v", arn, err, ok)
		}
	}
}

func TestRoleTrustPolicy(t *testing.T) {
	t.Parallel()
	got := string(recsink.RoleTrustPolicy("https://recsink.example.com/", "sts.amazonaws.com", "org_1", ""))
	for _, want := range []string{
		`"Federated": "arn:aws:iam::ACCOUNT_ID:oidc-provider/recsink.example.com"`,
		`"recsink.example.com:aud": "sts.amazonaws.com"`,
		`"recsink.example.com:sub": "org:org_1"`,
		`"Action": "sts:AssumeRoleWithWebIdentity"`,
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("trust policy lacks %s:\n%s", want, got)
		}
	}
}
