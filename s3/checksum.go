package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
)

// checksumType is the only checksum type recsink asks for: a CRC of the
// whole object's bytes, which does not depend on how it was cut into parts
// and which anyone can check against the file.
const checksumType = types.ChecksumTypeFullObject

// crcOf returns the CRC of alg, nil for ChecksumNone, or an error for a
// name S3 does not combine.
func crcOf(alg recsink.ChecksumAlgorithm) (*crc.Algorithm, error) {
	if alg == recsink.ChecksumNone {
		return nil, nil
	}
	if a := crc.ByName(string(alg)); a != nil {
		return a, nil
	}
	return nil, fmt.Errorf("s3: %q is not a full-object checksum S3 defines (CRC64NVME, CRC32C, CRC32)", alg)
}

// refusedChecksums remembers, per endpoint, the checksum algorithms it
// refused at CreateMultipartUpload, so that only the first upload to an
// endpoint pays for finding out. A restart asks again.
type refusedChecksums struct {
	mu sync.Mutex
	m  map[string]map[recsink.ChecksumAlgorithm]bool // endpoint ("" for AWS) → refused
}

func (r *refusedChecksums) refused(endpoint string, alg recsink.ChecksumAlgorithm) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[endpoint][alg]
}

func (r *refusedChecksums) add(endpoint string, algs []recsink.ChecksumAlgorithm) {
	if len(algs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]map[recsink.ChecksumAlgorithm]bool)
	}
	if r.m[endpoint] == nil {
		r.m[endpoint] = make(map[recsink.ChecksumAlgorithm]bool)
	}
	for _, a := range algs {
		r.m[endpoint][a] = true
	}
}

// checksumRefused reports whether err is how a server says that it does
// not take a checksum algorithm or type: S3-compatible servers answer 400
// InvalidRequest or InvalidArgument, or 501 NotImplemented. Another 400 is
// taken for one too; the next attempt, without it, then shows the real
// failure, and the refusal is remembered only when an attempt succeeds.
func checksumRefused(err error) bool {
	var se *recsink.StorageError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case "InvalidRequest", "InvalidArgument", "NotImplemented", "InvalidChecksumAlgorithm", "UnsupportedChecksumAlgorithm":
		return true
	}
	return se.StatusCode == 501
}

// createUpload starts a multipart upload with the first algorithm of prefs
// that the endpoint takes, or none. It is shared by the client and the
// storage check.
func createUpload(ctx context.Context, s3c *awss3.Client, refused *refusedChecksums, endpoint, secret string,
	in *awss3.CreateMultipartUploadInput, prefs []recsink.ChecksumAlgorithm, optFns ...func(*awss3.Options),
) (recsink.Upload, error) {
	var tried []recsink.ChecksumAlgorithm
	for _, alg := range slices.Concat(prefs, []recsink.ChecksumAlgorithm{recsink.ChecksumNone}) {
		if _, err := crcOf(alg); err != nil {
			return recsink.Upload{}, err
		}
		if alg != recsink.ChecksumNone && refused.refused(endpoint, alg) {
			continue
		}
		try := *in
		if alg != recsink.ChecksumNone {
			try.ChecksumAlgorithm = types.ChecksumAlgorithm(alg)
			try.ChecksumType = checksumType
		}
		out, err := s3c.CreateMultipartUpload(ctx, &try, optFns...)
		if err == nil {
			refused.add(endpoint, tried)
			// A server that ignored the headers does not echo them; the
			// upload then still carries recsink's checksums, which such a
			// server ignores as well.
			return recsink.Upload{ID: aws.ToString(out.UploadId), Checksum: alg}, nil
		}
		err = storageError(ctx, "CreateMultipartUpload", err, secret)
		if alg == recsink.ChecksumNone || !checksumRefused(err) {
			return recsink.Upload{}, err
		}
		tried = append(tried, alg)
	}
	panic("unreachable: the last attempt returns")
}

// partDigest reads the section once and returns the CRC of alg and, when
// sha is set, the hex SHA-256 that SigV4 signs as the payload hash; the SDK
// would otherwise read the body once more for it. It seeks the section
// back to its start.
func partDigest(sec *section, alg *crc.Algorithm, sha bool) (sum uint64, payloadHash string, err error) {
	var h hash.Hash
	if sha {
		h = sha256.New()
	}
	bp := digestBufs.Get().(*[]byte)
	defer digestBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := sec.Read(buf)
		if n > 0 {
			sum = alg.Update(sum, buf[:n])
			if h != nil {
				h.Write(buf[:n])
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, "", rerr
		}
	}
	if _, err := sec.Seek(0, io.SeekStart); err != nil {
		return 0, "", err
	}
	if h != nil {
		payloadHash = hex.EncodeToString(h.Sum(nil))
	}
	return sum, payloadHash, nil
}

var digestBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// withPayloadHash hands the signer a payload hash computed beforehand, so
// that the SDK does not read the body for it.
func withPayloadHash(payloadHash string) func(*awss3.Options) {
	return awss3.WithAPIOptions(func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("recsink:PayloadHash",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				return next.HandleFinalize(v4.SetPayloadHash(ctx, payloadHash), in)
			}), "ComputePayloadHash", middleware.Before)
	})
}

// unsignedPayload signs a request without its payload's SHA-256, for parts
// that carry a CRC over TLS: S3 verifies the CRC, TLS keeps the bytes from
// being changed on purpose, and SHA-256 costs more per byte than the CRC
// (internal/crc BenchmarkThroughput). aws-sdk-go-v2 does the same for its
// own checksums over TLS (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
var unsignedPayload = awss3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// setPartChecksum puts a part's CRC in its header.
func setPartChecksum(in *awss3.UploadPartInput, alg recsink.ChecksumAlgorithm, v string) {
	switch alg {
	case recsink.ChecksumCRC64NVME:
		in.ChecksumCRC64NVME = &v
	case recsink.ChecksumCRC32C:
		in.ChecksumCRC32C = &v
	case recsink.ChecksumCRC32:
		in.ChecksumCRC32 = &v
	}
}

// setCompletedChecksum puts a part's CRC in the completion's part list,
// where S3 wants it for every part of an upload with a checksum ("The
// complete request must include the checksum for each part", versitygw
// 1.8.0 and AWS alike).
func setCompletedChecksum(p *types.CompletedPart, alg recsink.ChecksumAlgorithm, v string) {
	switch alg {
	case recsink.ChecksumCRC64NVME:
		p.ChecksumCRC64NVME = &v
	case recsink.ChecksumCRC32C:
		p.ChecksumCRC32C = &v
	case recsink.ChecksumCRC32:
		p.ChecksumCRC32 = &v
	}
}

// setFullChecksum puts the object's CRC in the completion.
func setFullChecksum(in *awss3.CompleteMultipartUploadInput, alg recsink.ChecksumAlgorithm, v string) {
	in.ChecksumType = checksumType
	switch alg {
	case recsink.ChecksumCRC64NVME:
		in.ChecksumCRC64NVME = &v
	case recsink.ChecksumCRC32C:
		in.ChecksumCRC32C = &v
	case recsink.ChecksumCRC32:
		in.ChecksumCRC32 = &v
	}
}

// checksumOf returns the checksum among S3's fields, the 64-bit one first.
func checksumOf(typ types.ChecksumType, crc64nvme, crc32c, crc32 *string) recsink.Checksum {
	c := recsink.Checksum{Type: string(typ)}
	switch {
	case aws.ToString(crc64nvme) != "":
		c.Algorithm, c.Value = recsink.ChecksumCRC64NVME, *crc64nvme
	case aws.ToString(crc32c) != "":
		c.Algorithm, c.Value = recsink.ChecksumCRC32C, *crc32c
	case aws.ToString(crc32) != "":
		c.Algorithm, c.Value = recsink.ChecksumCRC32, *crc32
	default:
		return recsink.Checksum{}
	}
	if c.Type == "" {
		// A composite checksum is "value-N", N the number of parts.
		c.Type = string(types.ChecksumTypeFullObject)
		if strings.Contains(c.Value, "-") {
			c.Type = string(types.ChecksumTypeComposite)
		}
	}
	return c
}
