// Package sqlite implements recsink.Store on a SQLite file with
// modernc.org/sqlite (pure Go, no cgo).
//
// Writes go through a pool of one connection, so concurrent writers queue in
// Go instead of failing with SQLITE_BUSY; reads use a separate pool of
// query-only connections, which WAL lets run beside the writer. Times are
// stored as UTC text with nanosecond precision and returned in UTC.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/migrate"
	"github.com/recsink/recsink/internal/sqlstore"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// maxListLimit is the largest page ListMeetings and ListRecordings return;
// callers validate the limit, this only bounds a bad one.
const maxListLimit = 100

// timeLayout is fixed-width so that stored times sort as text, and keeps
// nanoseconds so that a time reads back Equal to the one written.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

var _ recsink.Store = (*DB)(nil)

// DB is recsink's state in one SQLite file. It is safe for concurrent use.
type DB struct {
	write *sql.DB // one connection: the single writer
	read  *sql.DB // query-only connections

	// updateRecording is UpdateRecording's statement, prepared once: each
	// running recording saves its progress every few seconds, and parsing
	// the statement anew took 40 % of each save's CPU time.
	updateRecording *sql.Stmt

	// credentials wakes the watchers of every handle on this file.
	credentials *sqlstore.Broadcaster
	path        string
}

// Open opens the SQLite database at path, creating the file if needed, and
// applies pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: open: path required")
	}
	// synchronous=FULL: an acknowledged write must survive power loss, which
	// NORMAL does not promise in WAL mode. _txlock=immediate takes the write
	// lock at BEGIN, so a transaction never fails to upgrade a read lock.
	write, err := sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout(5000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(ON)",
		"_txlock=immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	db := &DB{write: write, path: path, credentials: broadcasterFor(path)}
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		releaseBroadcaster(path)
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		write.Close()
		releaseBroadcaster(path)
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}

	if db.updateRecording, err = write.PrepareContext(ctx, updateRecordingSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: prepare: %w", path, err)
	}

	// Opened after migrating, so the file is already in WAL mode.
	read, err := sql.Open("sqlite", dsn(path,
		"_pragma=busy_timeout(5000)",
		"_pragma=foreign_keys(ON)",
		"_pragma=query_only(1)",
	))
	if err != nil {
		db.Close() // closes the prepared statement too
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	db.read = read
	if err := read.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return db, nil
}

// dsn returns a file: URI for path with the driver parameters. The path is
// escaped so that a '?' or '#' in it is not taken for the query.
func dsn(path string, params ...string) string {
	u := url.URL{Path: path}
	return "file:" + u.EscapedPath() + "?" + strings.Join(params, "&")
}

// Close closes the database. The writer closes last so that its close
// checkpoints the WAL into the main file.
func (db *DB) Close() error {
	var errs []error
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.updateRecording != nil {
		errs = append(errs, db.updateRecording.Close())
	}
	errs = append(errs, db.write.Close())
	releaseBroadcaster(db.path)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// migrate applies each migration not yet recorded in schema_migrations, one
// transaction each. The version check runs inside the (immediate)
// transaction, so two processes opening the file at once apply each
// migration once.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.write.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at TEXT NOT NULL
		) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	ms, err := migrate.Load(migrationsFS)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := db.applyMigration(ctx, m); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	return nil
}

func (db *DB) applyMigration(ctx context.Context, m migrate.Migration) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, formatTime(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// sqlNow is the database's clock as a stored time: SQLite's 'now' (the
// same for every use within one statement) in timeLayout. SQLite keeps
// milliseconds; the zeros pad them to the layout's nanoseconds.
const sqlNow = `(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000000Z')`

// sqlNowPlus is sqlNow moved by the duration in its one parameter, which
// must be given as modifier(d).
const sqlNowPlus = `(strftime('%Y-%m-%dT%H:%M:%f', 'now', ?) || '000000Z')`

// modifier returns the SQLite date modifier that adds d.
func modifier(d time.Duration) string {
	return fmt.Sprintf("%+.3f seconds", d.Seconds())
}

// formatTime formats t for storage, in UTC.
func formatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// formatNullTime formats t for storage, or returns nil (NULL) for nil.
func formatNullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

// parseTime parses a stored time; the result is in UTC.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// parseNullTime parses a nullable stored time.
func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// blob returns b, or an empty slice for nil so that a NOT NULL BLOB column
// gets an empty value instead of NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// encodeCursor returns the opaque cursor that continues a list after seq.
func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(seq, 10)))
}

// decodeCursor returns the seq a cursor continues after; 0 for "".
func decodeCursor(cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil {
		seq, err := strconv.ParseInt(string(b), 10, 64)
		if err == nil && seq > 0 {
			return seq, nil
		}
	}
	return 0, recsink.FieldErrorf("cursor", "cursor is invalid: pass the cursor of the previous page unchanged")
}

// clampLimit bounds a page size to 1..maxListLimit.
func clampLimit(limit int) int {
	return min(max(limit, 1), maxListLimit)
}

// notFound returns the ENOTFOUND error for a missing thing.
func notFound(thing string) error {
	return &recsink.Error{Code: recsink.ENOTFOUND, Message: thing + " not found"}
}

// sqliteCode returns the extended result code of a driver error, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	code := sqliteCode(err)
	return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isForeignKey reports whether err is a foreign key violation: the parent
// row (organization, recording) does not exist.
func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}
