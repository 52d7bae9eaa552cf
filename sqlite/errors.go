package sqlite

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/recsink/recsink"
)

// errUnavailable is what a caller sees when the database cannot answer now:
// the disk is full or failing, or the file is locked by another process
// past the busy timeout. The request may be tried again.
var errUnavailable = &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 2, Message: "the database is unavailable; try again"}

// errorf formats an error like fmt.Errorf and, when the driver error it
// wraps says that the database is unavailable, wraps errUnavailable too, so
// that recsink.ErrorCode reads EUNAVAILABLE while the log keeps the detail.
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	var e *recsink.Error
	if errors.As(err, &e) {
		return err // already a domain error
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", errUnavailable, err)
	}
	return err
}

// unavailable reports whether err is a SQLite result code that a later
// attempt may not meet: SQLITE_FULL, SQLITE_IOERR_*, SQLITE_BUSY_*,
// SQLITE_LOCKED_*, SQLITE_CANTOPEN_*. Decided by code, never by message.
func unavailable(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN:
		return true
	}
	return false
}

// isTrigger reports whether err is a RAISE(ABORT) of a trigger: the
// recordings_final_state guard.
func isTrigger(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_TRIGGER
}
