package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/recsink/recsink"
)

// CheckTimeout bounds a whole Check, so that an endpoint that does not
// answer is reported while the user waits.
const CheckTimeout = 20 * time.Second

// checkAttempts and checkMaxBackoff keep the SDK's retries short during a
// check: a dead endpoint should be reported in seconds, not after a minute.
const (
	checkAttempts   = 2
	checkMaxBackoff = 500 * time.Millisecond
)

// checkOps are the checks in the order they run. The Endpoint check comes
// first for custom endpoints.
var checkOps = []string{"HeadBucket", "PutObject", "DeleteObject", "CreateMultipartUpload", "AbortMultipartUpload"}

// deniedBucketHint ends the explanation of a bucket on which the key may
// do nothing.
const deniedBucketHint = "Check the bucket name too: some S3 servers (SeaweedFS) answer AccessDenied, not NoSuchBucket, for a bucket that does not exist when the key's permissions name only other buckets."

// checkProbeBody is the content of the probe object, which is deleted at once.
const checkProbeBody = "recsink storage check: safe to delete\n"

// Check proves that key can do on dest what recordings need, and finds the
// bucket's region when dest.Region is empty. Failures of the customer's
// making are in the report; err is for internal failures and cancellation.
func (s *Storage) Check(ctx context.Context, dest recsink.Destination, key recsink.AccessKey) (*recsink.CheckReport, error) {
	r := &checker{s: s, dest: dest, key: key, report: &recsink.CheckReport{Region: dest.Region}}
	if dest.Endpoint != "" {
		c := recsink.Check{Name: "Endpoint", OK: true}
		if err := s.allowEndpoint(dest.Endpoint); err != nil {
			c.OK, c.Message = false, recsink.ErrorMessage(err)
		}
		r.report.Checks = append(r.report.Checks, c)
		if !c.OK {
			r.skipRest()
			return r.report, nil
		}
	}
	cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	if recsink.IsRoleARN(key.ID) {
		ok, err := r.assumeRole(cctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("s3: check %s: %w", dest.BucketPath(), ctx.Err())
		}
		if err != nil {
			return nil, fmt.Errorf("s3: check %s: %w", dest.BucketPath(), err)
		}
		if !ok {
			r.skipRest()
			return r.report, nil
		}
	}
	err := r.run(cctx)
	if ctx.Err() != nil {
		// The caller gave up: what the checks saw says nothing about the bucket.
		return nil, fmt.Errorf("s3: check %s: %w", dest.BucketPath(), ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("s3: check %s: %w", dest.BucketPath(), err)
	}
	r.report.OK = true
	for _, c := range r.report.Checks {
		r.report.OK = r.report.OK && c.OK
	}
	return r.report, nil
}

// checker holds the state of one Check.
type checker struct {
	s      *Storage
	dest   recsink.Destination
	key    recsink.AccessKey
	report *recsink.CheckReport
	s3     *awss3.Client
	// role holds a role's temporary credentials, obtained by assumeRole,
	// with which the S3 checks run.
	role *aws.Credentials
}

// assumeRole runs the first check of a role: AssumeRoleWithWebIdentity with
// a fresh identity token, never cached credentials, so that a trust policy
// changed a moment ago is what is checked. It reports false when STS refused.
func (r *checker) assumeRole(ctx context.Context) (bool, error) {
	c := recsink.Check{Name: recsink.OpAssumeRole, Permission: recsink.Permission(recsink.OpAssumeRole), OK: true}
	defer func() { r.report.Checks = append(r.report.Checks, c) }()
	if err := r.s.allowRole(r.key); err != nil {
		c.OK, c.Message = false, recsink.ErrorMessage(err)
		return false, nil
	}
	creds, err := r.s.newRoleProvider(r.dest, r.key, regionOrDefault(r.dest.Region)).Retrieve(ctx)
	if err != nil {
		se := assumeRoleError(err, "")
		if se == nil {
			return false, err
		}
		r.s.logger.Info("storage check: assume role refused", "role", r.key.ID, "code", se.Code, "reason", se.Reason, "err", se.Err)
		c.OK, c.Code, c.Message = false, se.Code, se.Explain()
		c.Transient = se.StatusCode == 0 && se.Code == "" && se.Reason == "" // STS did not answer
		return false, nil
	}
	r.role = &creds
	return true, nil
}

// client returns the SDK client of the checks in region.
func (r *checker) client(region string) *awss3.Client {
	if r.role != nil {
		return r.s.s3ClientWith(r.dest, *r.role, region)
	}
	return r.s.s3Client(r.dest, r.key, region)
}

// run runs the S3 checks in order, stopping at the first failure, and
// returns an error only for internal failures.
func (r *checker) run(ctx context.Context) error {
	region := r.dest.Region
	finding := region == ""
	if finding {
		region = defaultRegion
	}
	r.s3 = r.client(region)

	// HeadBucket, asked in us-east-1 when the region is unknown: S3 names the
	// bucket's region in the x-amz-bucket-region header of its answer, even
	// of a 301 or 403, and then we ask again in that region.
	out, err := r.s3.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(r.dest.Bucket)}, checkOptions)
	if finding {
		found := bucketRegion(out, err)
		if found != "" && found != region {
			region = found
			r.s3 = r.client(region)
			if err != nil {
				_, err = r.s3.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(r.dest.Bucket)}, checkOptions)
			}
		}
		r.report.Region = region
	}
	head, err := r.result(ctx, "HeadBucket", err)
	if err != nil {
		return err
	}
	if head != nil && head.StatusCode == 404 && head.Code == "" {
		// A HEAD answer has no body; on a bucket, 404 can only mean this.
		head.Code = "NoSuchBucket"
	}
	// A HEAD answer has no body, so a bare 403 does not say whether the key
	// is unknown, the secret wrong or the permission missing. PutObject's
	// answer has the code; it then explains HeadBucket too.
	bare403 := head != nil && head.Code == "" && head.StatusCode == 403
	r.add("HeadBucket", head)
	if head != nil && !bare403 {
		r.skipRest()
		return nil
	}

	probe := r.probeKey()
	_, err = r.s3.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(r.dest.Bucket),
		Key:           aws.String(probe),
		Body:          strings.NewReader(checkProbeBody),
		ContentLength: aws.Int64(int64(len(checkProbeBody))),
		ContentType:   aws.String("text/plain"),
	}, checkOptions)
	put, err := r.result(ctx, "PutObject", err)
	if err != nil {
		return err
	}
	if bare403 {
		code := "AccessDenied" // the key works (PutObject passed), HeadBucket alone is denied
		if put != nil {
			code = put.Code
		}
		if code != "" {
			head.Code = code
			r.report.Checks[len(r.report.Checks)-1] = checkOf("HeadBucket", head)
		}
		if put != nil && code != "AccessDenied" {
			// A wrong key or a missing bucket is one failure, now explained
			// on HeadBucket; repeating it on PutObject would say nothing
			// about PutObject's permission.
			r.skipRest()
			return nil
		}
	}
	if bare403 && put != nil && put.Code == "AccessDenied" {
		// Denied both, the key has no right at all on this bucket: on
		// SeaweedFS that is also how a bucket that does not
		// exist looks to a key whose permissions name only other buckets,
		// where AWS would say NoSuchBucket. A mistyped name is then as
		// likely as a missing permission.
		c := &r.report.Checks[len(r.report.Checks)-1]
		c.Message += " " + deniedBucketHint
	}
	if !r.add("PutObject", put) {
		return nil
	}

	_, err = r.s3.DeleteObject(ctx, &awss3.DeleteObjectInput{
		Bucket: aws.String(r.dest.Bucket),
		Key:    aws.String(probe),
	}, checkOptions)
	del, err := r.result(ctx, "DeleteObject", err)
	if err != nil {
		return err
	}
	if !r.add("DeleteObject", del) {
		return nil
	}

	// The probe upload asks for the full-object checksums recordings ask
	// for: the report says which one the endpoint takes, and the refusals
	// are remembered for the recordings' uploads.
	probe = r.probeKey()
	mp, err := createUpload(ctx, r.s3, &r.s.refused, r.dest.Endpoint, r.key.Secret, &awss3.CreateMultipartUploadInput{
		Bucket:      aws.String(r.dest.Bucket),
		Key:         aws.String(probe),
		ContentType: aws.String(r.dest.ContentType()),
	}, recsink.FullObjectChecksums, checkOptions)
	create, err := r.result(ctx, "CreateMultipartUpload", err)
	if err != nil {
		return err
	}
	if !r.add("CreateMultipartUpload", create) {
		return nil
	}
	r.report.Checksum = mp.Checksum

	_, err = r.s3.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(r.dest.Bucket),
		Key:      aws.String(probe),
		UploadId: aws.String(mp.ID),
	}, checkOptions)
	abort, err := r.result(ctx, "AbortMultipartUpload", err)
	if err != nil {
		return err
	}
	r.add("AbortMultipartUpload", abort)
	return nil
}

// result turns the SDK's error for op into the customer's failure, nil on
// success, or into err for an internal failure. Running out of the check's
// own time means the endpoint did not answer.
func (r *checker) result(ctx context.Context, op string, err error) (*recsink.StorageError, error) {
	if err == nil {
		return nil, nil
	}
	serr := err
	if _, done := err.(*recsink.StorageError); !done {
		serr = storageError(ctx, op, err, r.key.Secret)
	}
	var se *recsink.StorageError
	switch {
	case errors.As(serr, &se):
	case errors.Is(serr, context.DeadlineExceeded):
		se = &recsink.StorageError{Op: op, Err: fmt.Errorf("no answer within %v: %w", CheckTimeout, err)}
	default:
		return nil, serr
	}
	r.s.logger.LogAttrs(ctx, slog.LevelInfo, "s3: storage check failed",
		slog.String("op", op), slog.String("bucket", r.dest.BucketPath()), slog.String("endpoint", r.dest.Endpoint),
		slog.String("accessKeyId", r.key.ID), slog.String("err", se.Error()))
	return se, nil
}

// add appends the check for op, failed when se is set, and skips the rest
// after a failure. It reports whether the check passed.
func (r *checker) add(op string, se *recsink.StorageError) bool {
	r.report.Checks = append(r.report.Checks, checkOf(op, se))
	if se != nil && op != "HeadBucket" {
		r.skipRest()
	}
	return se == nil
}

// skipRest appends every check not yet reported as skipped.
func (r *checker) skipRest() {
	done := make(map[string]bool)
	for _, c := range r.report.Checks {
		done[c.Name] = true
	}
	// A role's checks list the assumption too, skipped when an earlier
	// check (the endpoint's) failed, as when it runs.
	if recsink.IsRoleARN(r.key.ID) && !done[recsink.OpAssumeRole] {
		r.report.Checks = append(r.report.Checks, recsink.Check{Name: recsink.OpAssumeRole, Permission: recsink.Permission(recsink.OpAssumeRole), Skipped: true})
	}
	for _, op := range checkOps {
		if !done[op] {
			r.report.Checks = append(r.report.Checks, recsink.Check{Name: op, Permission: recsink.Permission(op), Skipped: true})
		}
	}
}

// probeKey returns a fresh key for a probe object under the prefix.
func (r *checker) probeKey() string {
	b := make([]byte, 8)
	rand.Read(b)
	name := ".recsink-check-" + hex.EncodeToString(b)
	if r.dest.Prefix == "" {
		return name
	}
	return r.dest.Prefix + "/" + name
}

// checkOf returns the report line for op.
func checkOf(op string, se *recsink.StorageError) recsink.Check {
	c := recsink.Check{Name: op, Permission: recsink.Permission(op), OK: se == nil}
	if se != nil {
		c.Code, c.Message = se.Code, se.Explain()
		c.Transient = se.StatusCode == 0 && se.Code == "" // no answer
	}
	return c
}

// checkOptions keeps the SDK's retries few and short during a check.
func checkOptions(o *awss3.Options) {
	o.Retryer = retry.AddWithMaxBackoffDelay(retry.AddWithMaxAttempts(o.Retryer, checkAttempts), checkMaxBackoff)
}

// bucketRegion returns the region that S3 named for the bucket in a
// HeadBucket answer, successful or not, or "".
func bucketRegion(out *awss3.HeadBucketOutput, err error) string {
	if out != nil && out.BucketRegion != nil {
		return *out.BucketRegion
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get("X-Amz-Bucket-Region")
	}
	return ""
}
