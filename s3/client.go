package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/recsink/recsink"
)

// client does the S3 operations of one recording in one bucket with one key.
type client struct {
	s3       *awss3.Client
	bucket   string
	endpoint string            // the destination's custom endpoint, "" for AWS
	refused  *refusedChecksums // the Storage's, shared by its clients
	tls      bool              // the endpoint is reached over TLS
	// secret returns the access secret, to take it out of error texts. A
	// func, so that printing a client cannot print the secret.
	secret func() string
	// role holds a role's temporary credentials; nil for an access key.
	role *aws.CredentialsCache
}

// fail returns err of op as a *recsink.StorageError where it is one.
//
// On a role, S3 refusing the credentials themselves means the session
// expired or was lost (SeaweedFS answers an expired session with
// InvalidAccessKeyId, not ExpiredToken): never "the key was deleted". The
// cached credentials are dropped, so the next attempt assumes the role
// again, and the error says so.
func (c *client) fail(ctx context.Context, op string, err error) error {
	err = storageError(ctx, op, err, c.secret())
	var se *recsink.StorageError
	if c.role != nil && errors.As(err, &se) && se.Op != recsink.OpAssumeRole {
		switch se.Code {
		case "InvalidAccessKeyId", "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "SignatureDoesNotMatch":
			c.role.Invalidate()
			se.Reason = recsink.RoleSessionExpired
		}
	}
	return err
}

var _ recsink.StorageClient = (*client)(nil)

// CreateMultipartUpload starts a multipart upload of key with the first
// full-object checksum of checksums that the endpoint takes, or none.
// Endpoints that refuse one are remembered, so that later uploads ask them
// for the next one at once.
func (c *client) CreateMultipartUpload(ctx context.Context, key, contentType string, metadata map[string]string, checksums ...recsink.ChecksumAlgorithm) (recsink.Upload, error) {
	up, err := createUpload(ctx, c.s3, c.refused, c.endpoint, c.secret(), &awss3.CreateMultipartUploadInput{
		Bucket:      aws.String(c.bucket),
		Key:         aws.String(key),
		ContentType: nonEmpty(contentType),
		Metadata:    metadata,
	}, checksums)
	if err != nil {
		return recsink.Upload{}, fmt.Errorf("s3: create multipart upload of %s: %w", key, err)
	}
	return up, nil
}

// UploadPart sends size bytes of body, from its current position, as part
// number of the upload. The SDK seeks body back to that position on a retry,
// so every attempt sends identical bytes. In an upload with a checksum, one
// read of the part gives its CRC and, where the payload is signed, the
// payload's SHA-256; over TLS the payload is not signed, as the CRC that S3
// verifies stands for it. A body that is a recsink.PartChecksummer gives
// its CRC: over TLS the part is then read only to be sent, and over plain
// HTTP the read for the payload hash also checks the bytes against it.
func (c *client) UploadPart(ctx context.Context, key string, up recsink.Upload, number int32, body io.ReadSeeker, size int64) (recsink.Part, error) {
	fail := func(err error) (recsink.Part, error) {
		return recsink.Part{}, fmt.Errorf("s3: upload part %d of %s: %w", number, key, err)
	}
	alg, err := crcOf(up.Checksum)
	if err != nil {
		return fail(err)
	}
	sec, err := newSection(body, size)
	if err != nil {
		return fail(err)
	}
	in := &awss3.UploadPartInput{
		Bucket:        aws.String(c.bucket),
		Key:           aws.String(key),
		UploadId:      aws.String(up.ID),
		PartNumber:    aws.Int32(number),
		Body:          sec,
		ContentLength: aws.Int64(size),
	}
	part := recsink.Part{Number: number, Size: size}
	var opts []func(*awss3.Options)
	if alg != nil {
		known, ok := "", false
		if pc, is := body.(recsink.PartChecksummer); is {
			if known, ok = pc.PartChecksum(up.Checksum); ok {
				if _, err := alg.Decode(known); err != nil {
					return fail(err)
				}
			}
		}
		if !ok || !c.tls {
			sum, payloadHash, err := partDigest(sec, alg, !c.tls)
			if err != nil {
				return fail(fmt.Errorf("read part: %w", err))
			}
			if ok && alg.Encode(sum) != known {
				return fail(fmt.Errorf("the part's bytes read back have %s %s, not %s as when they were received", alg, alg.Encode(sum), known))
			}
			known = alg.Encode(sum)
			if !c.tls {
				opts = append(opts, withPayloadHash(payloadHash))
			}
		}
		if c.tls {
			opts = append(opts, unsignedPayload)
		}
		part.Checksum = known
		setPartChecksum(in, up.Checksum, part.Checksum)
	}
	out, err := c.s3.UploadPart(ctx, in, opts...)
	if err != nil {
		return fail(c.refusalBehind(ctx, key, up.ID, c.fail(ctx, "UploadPart", err)))
	}
	part.ETag = aws.ToString(out.ETag)
	return part, nil
}

// refusalBehind returns S3's own refusal when err is a part upload whose
// connection was lost with no answer read, and err otherwise.
//
// An endpoint that refuses a request (a deleted key, a denied permission)
// may answer at once and close the connection while the part's body is
// still on its way; the client then sees a reset, not the answer (versitygw
// does this under load). A lost connection is retried as S3 being down, so
// the recording would read "S3 keeps failing" for what is a refused key.
// A request with no body, signed the same way, gets the answer instead.
func (c *client) refusalBehind(ctx context.Context, key, uploadID string, err error) error {
	var se *recsink.StorageError
	if !errors.As(err, &se) || se.StatusCode != 0 || se.Code != "" {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, refusalProbeTimeout)
	defer cancel()
	_, perr := c.s3.ListParts(ctx, &awss3.ListPartsInput{
		Bucket:   aws.String(c.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
		MaxParts: aws.Int32(1),
	})
	var pe *recsink.StorageError
	if perr = c.fail(ctx, "UploadPart", perr); errors.As(perr, &pe) && pe.StatusCode >= 400 && pe.StatusCode < 500 && pe.Code != "NoSuchUpload" {
		return perr
	}
	return err
}

// refusalProbeTimeout bounds the request that asks S3 why a part's
// connection was lost.
const refusalProbeTimeout = 10 * time.Second

// ListParts returns every part of the upload that S3 holds, sorted by
// number, paging through S3's listing. Offsets assume that the parts are
// contiguous from part 1, as recsink uploads them.
func (c *client) ListParts(ctx context.Context, key, uploadID string) ([]recsink.Part, error) {
	var parts []recsink.Part
	in := &awss3.ListPartsInput{
		Bucket:   aws.String(c.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	}
	for {
		out, err := c.s3.ListParts(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("s3: list parts of %s: %w", key, c.fail(ctx, "ListParts", err))
		}
		for _, p := range out.Parts {
			parts = append(parts, recsink.Part{
				Number:   aws.ToInt32(p.PartNumber),
				Size:     aws.ToInt64(p.Size),
				ETag:     aws.ToString(p.ETag),
				Checksum: checksumOf("", p.ChecksumCRC64NVME, p.ChecksumCRC32C, p.ChecksumCRC32).Value,
			})
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		next := aws.ToString(out.NextPartNumberMarker)
		if next == "" || next == aws.ToString(in.PartNumberMarker) {
			return nil, fmt.Errorf("s3: list parts of %s: the listing is truncated but the next part marker %q does not advance", key, next)
		}
		in.PartNumberMarker = aws.String(next)
	}
	slices.SortFunc(parts, func(a, b recsink.Part) int { return int(a.Number) - int(b.Number) })
	var offset int64
	for i := range parts {
		parts[i].Offset = offset
		offset += parts[i].Size
	}
	return parts, nil
}

// CompleteMultipartUpload assembles the object from parts, sorted by number
// as S3 requires. It never replaces an object that has the key meanwhile
// (If-None-Match: *, which AWS honours since 2024), and gives the endpoint
// time to assemble the object before it must answer. In an upload with a
// checksum it sends every part's CRC and the object's, checksum or the
// parts' CRCs combined in number order, and S3 completes the object only
// when its bytes match.
func (c *client) CompleteMultipartUpload(ctx context.Context, key string, up recsink.Upload, parts []recsink.Part, checksum string) (recsink.Checksum, error) {
	fail := func(err error) (recsink.Checksum, error) {
		return recsink.Checksum{}, fmt.Errorf("s3: complete multipart upload of %s: %w", key, err)
	}
	alg, err := crcOf(up.Checksum)
	if err != nil {
		return fail(err)
	}
	if alg == nil && checksum != "" {
		return fail(errors.New("a full-object checksum was given for an upload without one"))
	}
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b recsink.Part) int { return int(a.Number) - int(b.Number) })
	unlisted := false
	if alg != nil {
		if sorted, unlisted, err = c.partChecksums(ctx, key, up.ID, sorted); err != nil {
			return fail(err)
		}
	}
	completed := make([]types.CompletedPart, len(sorted))
	var size int64
	var full uint64
	for i, p := range sorted {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		size += p.Size
		if alg != nil && !unlisted {
			v, err := alg.Decode(p.Checksum)
			if err != nil {
				return fail(fmt.Errorf("part %d: %w", p.Number, err))
			}
			full = alg.Combine(full, v, p.Size)
			setCompletedChecksum(&completed[i], up.Checksum, p.Checksum)
		}
	}
	in := &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(c.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(up.ID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		IfNoneMatch:     aws.String("*"),
	}
	switch {
	case alg != nil && unlisted && checksum == "":
		// Only the full-object checksum type: S3 computes the object's CRC
		// from the parts' CRCs that it verified when it took them, and
		// reports it.
		in.ChecksumType = checksumType
	case alg != nil:
		if checksum == "" {
			checksum = alg.Encode(full)
		}
		if _, err := alg.Decode(checksum); err != nil {
			return fail(err)
		}
		setFullChecksum(in, up.Checksum, checksum)
	}
	out, err := c.s3.CompleteMultipartUpload(withWork(ctx, size), in)
	if err != nil {
		return fail(c.fail(ctx, "CompleteMultipartUpload", err))
	}
	// Only what S3 reports: a server that ignores checksums reports none,
	// and then none was verified.
	return checksumOf(out.ChecksumType, out.ChecksumCRC64NVME, out.ChecksumCRC32C, out.ChecksumCRC32), nil
}

// partChecksums returns parts with each one's checksum, taking those that
// the caller does not have from S3's ListParts: S3 verified each against
// the CRC that recsink sent with the part. unlisted is true when S3 lists a
// part without its checksum (SeaweedFS lists none, though it verified and
// keeps them: seen after a restart picked up parts that recsink had sent
// but not recorded); a full-object checksum upload is then completed
// without part checksums, which S3 allows for that type, and S3 computes the
// object's CRC from the ones it holds.
func (c *client) partChecksums(ctx context.Context, key, uploadID string, parts []recsink.Part) (_ []recsink.Part, unlisted bool, _ error) {
	if !slices.ContainsFunc(parts, func(p recsink.Part) bool { return p.Checksum == "" }) {
		return parts, false, nil
	}
	listed, err := c.ListParts(ctx, key, uploadID)
	if err != nil {
		return nil, false, err
	}
	byNumber := make(map[int32]recsink.Part, len(listed))
	for _, p := range listed {
		byNumber[p.Number] = p
	}
	for i, p := range parts {
		if p.Checksum != "" {
			continue
		}
		l, ok := byNumber[p.Number]
		if !ok || l.ETag != p.ETag {
			return nil, false, fmt.Errorf("part %d has no checksum, and S3 does not list it with ETag %s", p.Number, p.ETag)
		}
		if l.Checksum == "" {
			unlisted = true
			continue
		}
		parts[i].Checksum = l.Checksum
	}
	return parts, unlisted, nil
}

// AbortMultipartUpload discards the upload and the parts S3 holds for it.
func (c *client) AbortMultipartUpload(ctx context.Context, key, uploadID string) error {
	_, err := c.s3.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(c.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	if err != nil {
		return fmt.Errorf("s3: abort multipart upload of %s: %w", key, c.fail(ctx, "AbortMultipartUpload", err))
	}
	return nil
}

// PutObject writes size bytes of body, from its current position, as key.
func (c *client) PutObject(ctx context.Context, key, contentType string, metadata map[string]string, body io.ReadSeeker, size int64) error {
	sec, err := newSection(body, size)
	if err != nil {
		return fmt.Errorf("s3: put object %s: %w", key, err)
	}
	_, err = c.s3.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(c.bucket),
		Key:           aws.String(key),
		ContentType:   nonEmpty(contentType),
		Metadata:      metadata,
		Body:          sec,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return fmt.Errorf("s3: put object %s: %w", key, c.fail(ctx, "PutObject", err))
	}
	return nil
}

// HeadObject returns the size and the user metadata of key. S3 returns
// metadata keys in lower case.
func (c *client) HeadObject(ctx context.Context, key string) (int64, map[string]string, error) {
	info, err := c.head(ctx, key, "")
	return info.Size, info.Metadata, err
}

// StatObject returns the size, the user metadata and the checksum of key,
// asked with checksum mode enabled as head-object --checksum-mode ENABLED.
// HeadObject and ObjectExists do not ask for the checksum: on AWS, the
// checksum of an object encrypted with a KMS key also needs kms:Decrypt,
// which a key may lack, and a name must not look taken for that.
func (c *client) StatObject(ctx context.Context, key string) (recsink.ObjectInfo, error) {
	return c.head(ctx, key, types.ChecksumModeEnabled)
}

func (c *client) head(ctx context.Context, key string, mode types.ChecksumMode) (recsink.ObjectInfo, error) {
	out, err := c.s3.HeadObject(ctx, &awss3.HeadObjectInput{
		Bucket:       aws.String(c.bucket),
		Key:          aws.String(key),
		ChecksumMode: mode,
	})
	if err != nil {
		return recsink.ObjectInfo{}, fmt.Errorf("s3: head object %s: %w", key, c.fail(ctx, "HeadObject", err))
	}
	return recsink.ObjectInfo{
		Size:     aws.ToInt64(out.ContentLength),
		Metadata: out.Metadata,
		Checksum: checksumOf(out.ChecksumType, out.ChecksumCRC64NVME, out.ChecksumCRC32C, out.ChecksumCRC32),
	}, nil
}

// ObjectExists reports whether key names an object: false only on a 404
// (NoSuchKey, or a bare 404 since a HEAD answer has no body); any other
// failure is an error.
func (c *client) ObjectExists(ctx context.Context, key string) (bool, error) {
	_, _, err := c.HeadObject(ctx, key)
	var se *recsink.StorageError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound && (se.Code == "" || se.Code == "NoSuchKey" || se.Code == "NotFound"):
		return false, nil
	}
	return false, err
}

// escapeKey escapes each segment of an object key for x-amz-copy-source.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// DeleteObject deletes key. Deleting a missing key succeeds, as on S3.
func (c *client) DeleteObject(ctx context.Context, key string) error {
	_, err := c.s3.DeleteObject(ctx, &awss3.DeleteObjectInput{
		Bucket: aws.String(c.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return fmt.Errorf("s3: delete object %s: %w", key, c.fail(ctx, "DeleteObject", err))
	}
	return nil
}

// PresignGet returns a presigned GET of key valid for validFor (SigV4 query
// signing, signed locally: no request is made).
func (c *client) PresignGet(ctx context.Context, key string, validFor time.Duration) (string, error) {
	req, err := awss3.NewPresignClient(c.s3).PresignGetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(c.bucket),
		Key:    aws.String(key),
	}, awss3.WithPresignExpires(validFor))
	if err != nil {
		return "", fmt.Errorf("s3: presign get %s: %w", key, c.fail(ctx, "GetObject", err))
	}
	return req.URL, nil
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

// section is the size bytes of a seekable body that start at its position
// when the section was made. The SDK hashes the body for the signature, then
// seeks back and sends it, and seeks back again on a retry: a section keeps
// every pass to exactly the same bytes even when the body runs on.
type section struct {
	rs    io.ReadSeeker
	start int64 // position of the section in rs
	size  int64
	pos   int64 // position within the section
}

func newSection(rs io.ReadSeeker, size int64) (*section, error) {
	if size < 0 {
		return nil, errors.New("negative size")
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("body position: %w", err)
	}
	return &section{rs: rs, start: start, size: size}, nil
}

// Read implements io.Reader.
func (s *section) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if rest := s.size - s.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := s.rs.Read(p)
	s.pos += int64(n)
	if err == io.EOF && s.pos < s.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Seek implements io.Seeker within the section.
func (s *section) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	if _, err := s.rs.Seek(s.start+offset, io.SeekStart); err != nil {
		return 0, err
	}
	s.pos = offset
	return offset, nil
}
