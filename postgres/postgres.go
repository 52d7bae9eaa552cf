// Package postgres implements recsink.Store on PostgreSQL with pgx, so that
// several recsink nodes can share one database.
//
// Times are stored as timestamptz, which keeps microseconds: the store
// truncates the times it stamps itself (Recording.UpdatedAt) so that what it
// returns equals what it stored, and returns every time in UTC. Driver
// errors are translated into domain errors by SQLSTATE, never by message.
package postgres

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/migrate"
	"github.com/recsink/recsink/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// maxListLimit is the largest page the list methods return; callers
// validate the limit, this only bounds a bad one.
const maxListLimit = 100

// migrateLockID is the key of the session advisory lock that serializes
// migrations between nodes starting at once: "recsink" in ASCII.
const migrateLockID int64 = 0x72_65_63_73_69_6e_6b

// SQLSTATE codes the store branches on (PostgreSQL Appendix A).
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

var _ recsink.Store = (*DB)(nil)

// DB is recsink's state in a PostgreSQL database. It is safe for concurrent
// use, also by several processes on one database.
type DB struct {
	pool *pgxpool.Pool

	// Credential changes: one listening connection, started by the first
	// WatchCredentials, sends to every watcher.
	credentials  sqlstore.Broadcaster
	listenTiming listenTiming
	listenOnce   sync.Once
	listenCancel context.CancelFunc
	listenDone   chan struct{}
	closeOnce    sync.Once
	// Logger reports the listening connection's losses; nil for none.
	Logger *slog.Logger
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string; pool_max_conns and the other pgxpool parameters apply) and
// applies pending migrations.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		// pgx returns timestamptz in time.Local; the store promises UTC.
		conn.TypeMap().RegisterType(&pgtype.Type{
			Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
		})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db := &DB{pool: pool, listenTiming: defaultListenTiming}
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return db, nil
}

// Close stops the credential listener and closes the connections, waiting
// for those in use to be released.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.listenOnce.Do(func() {}) // no listener may start after Close
		if db.listenCancel != nil {
			db.listenCancel()
			<-db.listenDone
		}
		db.pool.Close()
	})
	return nil
}

// migrate applies each migration not yet recorded in schema_migrations, one
// transaction each, holding a session advisory lock so that nodes starting
// at once apply each migration once (even CREATE TABLE IF NOT EXISTS races
// in PostgreSQL). The lock lives on a connection of its own, closed at the
// end, so that it can never stay behind in the pool.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockID); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL
		)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	ms, err := migrate.Load(migrationsFS)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := applyMigration(ctx, conn, m); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrateLockID); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migrate.Migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var applied bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`,
			m.Version).Scan(&applied); err != nil || applied {
			return err
		}
		// Without arguments pgx uses the simple protocol, which runs a
		// file of several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`,
			m.Version, m.Name)
		return err
	})
}

// blob returns b, or an empty slice for nil: pgx sends a nil slice as NULL,
// which a NOT NULL bytea column refuses.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// encodeCursor returns the opaque cursor that continues a list after seq.
// The format is the sqlite store's.
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

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	return sqlState(err) == codeUniqueViolation
}

// isForeignKey reports whether err is a foreign key violation: the parent
// row (organization, recording) does not exist.
func isForeignKey(err error) bool {
	return sqlState(err) == codeForeignKeyViolation
}

// isNoRows reports whether a QueryRow found nothing.
func isNoRows(err error) bool {
	return errors.Is(err, pgx.ErrNoRows)
}

// querier is the pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// queryAll runs query and scans every row with scan; it returns an empty,
// not nil, slice when there are none.
func queryAll[T any](ctx context.Context, q querier, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}

// page cuts a list fetched with one row more than limit to limit and
// returns the cursor of the next page, "" when there is none.
func page[T any](items []T, seqs []int64, limit int) ([]T, string) {
	if len(items) > limit {
		return items[:limit], encodeCursor(seqs[limit-1])
	}
	return items, ""
}
