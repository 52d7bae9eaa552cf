package s3

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/recsink/recsink"
)

// storageError converts an error of the SDK for operation op into a
// *recsink.StorageError. It returns ctx.Err() when ctx is done, because
// cancellation is the caller's doing and not a failure of the storage, and
// err unchanged when no request reached the network (an internal failure).
func storageError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	se := &recsink.StorageError{Op: op, Err: err}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		se.StatusCode = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		se.Code = apiCode(se.StatusCode, ae)
	}
	if se.StatusCode == 0 && se.Code == "" && !transportError(err) {
		return err
	}
	return se
}

// apiCode returns S3's error code, or "" when the SDK made it up: a HEAD
// response carries no body, so the SDK names the code after the status text
// ("Forbidden", "NotFound"), which would hide that S3 said nothing.
func apiCode(status int, ae smithy.APIError) string {
	code := ae.ErrorCode()
	if code == "UnknownError" {
		return ""
	}
	if text := http.StatusText(status); text != "" && code == strings.ReplaceAll(text, " ", "") {
		if msg := ae.ErrorMessage(); msg == "" || msg == text || msg == code {
			return ""
		}
	}
	return code
}

// transportError reports whether err means that no response arrived:
// refused or reset connections, DNS failures, timeouts.
func transportError(err error) bool {
	var rse *smithyhttp.RequestSendError
	var ne net.Error
	var ra *refusedAddressError
	return errors.As(err, &rse) || errors.As(err, &ne) || errors.As(err, &ra) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded)
}
