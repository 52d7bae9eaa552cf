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
	s3     *awss3.Client
	bucket string
	// secret returns the access secret, to take it out of error texts. A
	// func, so that printing a client cannot print the secret.
	secret func() string
}

// fail returns err of op as a *recsink.StorageError where it is one.
func (c *client) fail(ctx context.Context, op string, err error) error {
	return storageError(ctx, op, err, c.secret())
}

var _ recsink.StorageClient = (*client)(nil)

// CreateMultipartUpload starts a multipart upload of key and returns its ID.
func (c *client) CreateMultipartUpload(ctx context.Context, key, contentType string, metadata map[string]string) (string, error) {
	out, err := c.s3.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket:      aws.String(c.bucket),
		Key:         aws.String(key),
		ContentType: nonEmpty(contentType),
		Metadata:    metadata,
	})
	if err != nil {
		return "", fmt.Errorf("s3: create multipart upload of %s: %w", key, c.fail(ctx, "CreateMultipartUpload", err))
	}
	return aws.ToString(out.UploadId), nil
}

// UploadPart sends size bytes of body, from its current position, as part
// number of the upload. The SDK seeks body back to that position on a retry,
// so every attempt sends identical bytes.
func (c *client) UploadPart(ctx context.Context, key, uploadID string, number int32, body io.ReadSeeker, size int64) (string, error) {
	sec, err := newSection(body, size)
	if err != nil {
		return "", fmt.Errorf("s3: upload part %d of %s: %w", number, key, err)
	}
	out, err := c.s3.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket:        aws.String(c.bucket),
		Key:           aws.String(key),
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(number),
		Body:          sec,
		ContentLength: aws.Int64(size),
	})
	if err != nil {
		return "", fmt.Errorf("s3: upload part %d of %s: %w", number, key, c.fail(ctx, "UploadPart", err))
	}
	return aws.ToString(out.ETag), nil
}

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
				Number: aws.ToInt32(p.PartNumber),
				Size:   aws.ToInt64(p.Size),
				ETag:   aws.ToString(p.ETag),
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
// time to assemble the object before it must answer.
func (c *client) CompleteMultipartUpload(ctx context.Context, key, uploadID string, parts []recsink.Part) error {
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b recsink.Part) int { return int(a.Number) - int(b.Number) })
	completed := make([]types.CompletedPart, len(sorted))
	var size int64
	for i, p := range sorted {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		size += p.Size
	}
	_, err := c.s3.CompleteMultipartUpload(withWork(ctx, size), &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(c.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		return fmt.Errorf("s3: complete multipart upload of %s: %w", key, c.fail(ctx, "CompleteMultipartUpload", err))
	}
	return nil
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
	out, err := c.s3.HeadObject(ctx, &awss3.HeadObjectInput{
		Bucket: aws.String(c.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return 0, nil, fmt.Errorf("s3: head object %s: %w", key, c.fail(ctx, "HeadObject", err))
	}
	return aws.ToInt64(out.ContentLength), out.Metadata, nil
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

// ReplaceMetadata sets key's user metadata with a copy of the object onto
// itself inside the bucket (no bytes pass through recsink). S3 copies in one
// request only up to 5 GiB. The object's size, asked first, gives the
// endpoint time to copy it before it must answer.
func (c *client) ReplaceMetadata(ctx context.Context, key, contentType string, metadata map[string]string) error {
	size, _, err := c.HeadObject(ctx, key)
	if err != nil {
		return fmt.Errorf("s3: replace metadata of %s: %w", key, err)
	}
	_, err = c.s3.CopyObject(withWork(ctx, size), &awss3.CopyObjectInput{
		Bucket:            aws.String(c.bucket),
		Key:               aws.String(key),
		CopySource:        aws.String(url.PathEscape(c.bucket) + "/" + escapeKey(key)),
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       nonEmpty(contentType),
		Metadata:          metadata,
	})
	if err != nil {
		return fmt.Errorf("s3: replace metadata of %s: %w", key, c.fail(ctx, "CopyObject", err))
	}
	return nil
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
