package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/recsink/recsink"
)

// errUnavailable is what a caller sees when the database cannot answer now:
// the server is down, restarting, refusing connections or too slow to hand
// out a connection. The request may be tried again.
var errUnavailable = &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 2, Message: "the database is unavailable; try again"}

// errBadText is the answer to text the database cannot store. The API
// checks its input first and names the field; this is the backstop.
var errBadText = &recsink.Error{Code: recsink.EINVALID, Message: "the request holds text that cannot be stored: invalid UTF-8 or a NUL character"}

// errorf formats an error like fmt.Errorf and, when the driver error it
// wraps says that the database is unavailable or cannot store the input,
// wraps the domain error too, so that recsink.ErrorCode reads EUNAVAILABLE
// or EINVALID while the log keeps the detail.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	var e *recsink.Error
	switch {
	case errors.As(err, &e):
		return err // already a domain error
	case badText(err):
		return fmt.Errorf("%w: %w", errBadText, err)
	case unavailable(err):
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}

// badText reports whether err is the server refusing a string's bytes:
// 22021 character_not_in_repertoire (invalid UTF-8, NUL), 22P05
// untranslatable_character.
func badText(err error) bool {
	switch sqlState(err) {
	case "22021", "22P05":
		return true
	}
	return false
}

// unavailable reports whether err says that the database cannot be reached
// or is shutting down or starting, decided by type and SQLSTATE, never by
// message: class 08 (connection exception), 57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now, 53300 too_many_connections;
// failed connects and network errors; a connection lost mid-statement; a
// deadline that passed while waiting for the pool or the server.
func unavailable(err error) bool {
	if state := sqlState(err); state != "" {
		switch {
		case strings.HasPrefix(state, "08"), state == "57P01", state == "57P02", state == "57P03", state == "53300":
			return true
		}
		return false // the server answered: it is up
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return false // the caller gave up: not the database's fault
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// isFinalState reports whether err is the recordings_final_state trigger
// refusing to take a recording out of a final state.
func isFinalState(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && pe.ConstraintName == "recordings_final_state"
}

// constraint returns the name of the constraint (or index) that err
// violates, or "".
func constraint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}
