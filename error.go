package recsink

import (
	"errors"
	"fmt"
)

// Error codes: the small set of kinds of failure that callers branch on.
// The http package maps each code to one status.
const (
	EINVALID      = "invalid"      // bad input: 400/422 with the field named
	ENOTFOUND     = "not_found"    // no such thing, or not this organization's
	ECONFLICT     = "conflict"     // state does not allow it (wrong offset, already stopped)
	EUNAUTHORIZED = "unauthorized" // no or bad credentials for recsink itself
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed (refused endpoint)
	EDESTINATION  = "destination"  // the customer's bucket or key refused: theirs, not ours
	EUNAVAILABLE  = "unavailable"  // try again later (spool full)
	EUNSUPPORTED  = "unsupported"  // media of a container the destination does not take (415)
	EINTERNAL     = "internal"     // our fault; detail is logged, never shown
)

// Error is recsink's domain error. Message is shown to the user for every code
// but EINTERNAL, so it must never carry a secret.
type Error struct {
	Code    string
	Message string
	// Field names the input field at fault, in the API's JSON spelling.
	Field string
	// RetryAfter is a hint in seconds for EUNAVAILABLE.
	RetryAfter int
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("recsink error: code=%s field=%s message=%s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("recsink error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EINVALID error that names the field at fault.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: the code of an *Error, EDESTINATION for a
// *StorageError, "" for nil and EINTERNAL for anything else.
func ErrorCode(err error) string {
	var e *Error
	var se *StorageError
	var ce *CheckError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case errors.As(err, &se), errors.As(err, &ce):
		return EDESTINATION
	}
	return EINTERNAL
}

// ErrorMessage returns the message that a user may see for err. Internal
// errors read "internal error"; their detail belongs in the log only.
func ErrorMessage(err error) string {
	var e *Error
	var se *StorageError
	var ce *CheckError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	case errors.As(err, &se):
		return se.Explain()
	case errors.As(err, &ce):
		return ce.Error()
	}
	return "internal error"
}

// ErrorField returns the field named by err, if any.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
