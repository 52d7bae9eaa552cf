package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/recsink/recsink"
)

// IdentityTokens signs the web identity tokens recsink presents to STS:
// *oidc.Provider implements it.
type IdentityTokens interface {
	Token(ctx context.Context, subject string) (string, error)
}

// Defaults of the role session settings.
const (
	// DefaultRoleSessionDuration is the DurationSeconds asked of STS.
	DefaultRoleSessionDuration = time.Hour
	// DefaultRoleRefreshMargin is how long before their expiry temporary
	// credentials are refreshed.
	DefaultRoleRefreshMargin = 10 * time.Minute
)

// roleProvider exchanges recsink's identity token for a role's temporary
// credentials. Wrapped in an aws.CredentialsCache, whose ExpiryWindow
// refreshes them RefreshMargin before they expire, so a multipart upload
// never signs with expired credentials: SeaweedFS answers an expired
// session with InvalidAccessKeyId, which would read as a deleted key.
type roleProvider struct {
	sts      *sts.Client
	tokens   IdentityTokens
	arn      string
	subject  string
	duration time.Duration
	log      *slog.Logger
}

// assumeError marks a failure to obtain a role's credentials, so that the S3
// call that needed them reports the STS refusal and not an S3 one.
type assumeError struct{ err error }

func (e *assumeError) Error() string { return "assume role: " + e.err.Error() }
func (e *assumeError) Unwrap() error { return e.err }

// Retrieve implements aws.CredentialsProvider.
func (p *roleProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	tok, err := p.tokens.Token(ctx, p.subject)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("sign identity token: %w", err)
	}
	out, err := p.sts.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(p.arn),
		RoleSessionName:  aws.String(sessionName(p.subject)),
		WebIdentityToken: aws.String(tok),
		DurationSeconds:  aws.Int32(int32(p.duration / time.Second)),
	})
	if err != nil {
		return aws.Credentials{}, &assumeError{err: err}
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil {
		return aws.Credentials{}, &assumeError{err: errors.New("STS answered without credentials")}
	}
	creds := aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "recsink role " + p.arn,
		CanExpire:       true,
		Expires:         time.Now().Add(p.duration),
	}
	// STS's expiration is authoritative when sent, but never later than what
	// was asked: SeaweedFS silently shortens a too-long request, and a
	// shortened session refreshed too late would expire mid-upload.
	if c.Expiration != nil && c.Expiration.Before(creds.Expires) {
		creds.Expires = *c.Expiration
	}
	p.log.Debug("role assumed", "role", p.arn, "subject", p.subject, "accessKeyId", creds.AccessKeyID, "expires", creds.Expires)
	return creds, nil
}

var sessionNameBad = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionName returns the RoleSessionName: the subject, which shows in the
// customer's CloudTrail, within STS's 2–64 characters of [\w+=,.@-].
func sessionName(subject string) string {
	s := "recsink-" + sessionNameBad.ReplaceAllString(subject, "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// stsClient returns an STS client for dest: its custom endpoint (S3-compatible
// servers such as SeaweedFS and MinIO answer STS on the S3 endpoint, already
// checked against the allowlist), else AWS's regional STS. Requests go
// through the same guarded HTTP client as S3's.
func (s *Storage) stsClient(dest recsink.Destination, region string) *sts.Client {
	o := sts.Options{
		Region:     region,
		Retryer:    s.retryer,
		HTTPClient: s.http,
	}
	if e := strings.TrimRight(dest.Endpoint, "/"); e != "" {
		o.BaseEndpoint = aws.String(e)
	}
	return sts.New(o)
}

// roleCredentials returns the cached credentials of key's role for dest,
// refreshed RoleRefreshMargin before they expire.
func (s *Storage) roleCredentials(dest recsink.Destination, key recsink.AccessKey, region string) aws.CredentialsProvider {
	return aws.NewCredentialsCache(s.newRoleProvider(dest, key, region), func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = s.roleMargin
	})
}

func (s *Storage) newRoleProvider(dest recsink.Destination, key recsink.AccessKey, region string) *roleProvider {
	return &roleProvider{
		sts:      s.stsClient(dest, region),
		tokens:   s.identity,
		arn:      key.ID,
		subject:  key.Subject,
		duration: s.roleDuration,
		log:      s.logger,
	}
}

// assumeRoleError converts a failure to obtain a role's credentials into a
// *recsink.StorageError of Op recsink.OpAssumeRole with the refusal
// classified, or returns nil when err is not one.
func assumeRoleError(err error, secret string) *recsink.StorageError {
	var ae *assumeError
	if !errors.As(err, &ae) {
		return nil
	}
	se := &recsink.StorageError{Op: recsink.OpAssumeRole, Err: &redactedError{msg: redact(err.Error(), secret), err: err}}
	var te *timeoutError
	if errors.As(err, &te) {
		se.Code, se.Deadline = "Timeout", te.after
		return se
	}
	if code := certificateCode(err); code != "" {
		se.Code = code
		return se
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		se.StatusCode = re.HTTPStatusCode()
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		se.Code = api.ErrorCode()
		se.Reason = classifyAssumeRole(se.Code, api.ErrorMessage())
	}
	return se
}

// classifyAssumeRole names the reason of an STS refusal. STS uses one code
// for several refusals (AWS: AccessDenied for a trust policy that does not
// match and for a missing role; InvalidIdentityToken for an unknown provider
// and a wrong audience. SeaweedFS: AccessDenied for an unknown issuer, an
// unknown role and a trust policy that does not match), so the message,
// which is the only thing that tells them apart, is read. Texts seen:
// SeaweedFS weed/iam (2026-11) and AWS STS documentation.
func classifyAssumeRole(code, message string) string {
	m := strings.ToLower(message)
	switch {
	case strings.Contains(m, "audience"):
		return recsink.RoleAudienceMismatch
	case strings.Contains(m, "no identity provider registered"), strings.Contains(m, "no openidconnect provider"):
		return recsink.RoleProviderUnknown
	case strings.Contains(m, "role not found"), strings.Contains(m, "nosuchentity"):
		return recsink.RoleNotFound
	case strings.Contains(m, "trust policy"):
		return recsink.RoleTrustDenied
	case strings.Contains(m, "durationseconds"), strings.Contains(m, "maxsessionduration"):
		return recsink.RoleDurationNotAllowed
	case code == "AccessDenied":
		// AWS: "Not authorized to perform sts:AssumeRoleWithWebIdentity",
		// the same for a role that does not exist and one that does not
		// trust this subject.
		return recsink.RoleTrustDeniedOrAbsent
	case code == "InvalidIdentityToken", code == "IDPRejectClaim", code == "InvalidParameterValue", code == "ExpiredTokenException", code == "ExpiredToken":
		return recsink.RoleTokenRejected
	}
	return ""
}
