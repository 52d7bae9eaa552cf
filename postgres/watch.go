package postgres

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// listenerApplicationName names the listening connection in
// pg_stat_activity.
const listenerApplicationName = "recsink credential listener"

// credentialsChannel is the NOTIFY channel of credential changes; the
// payload is the organization ID.
const credentialsChannel = "recsink_credentials"

// listenTiming says how the credential listener retries: reconnects back
// off from backoffMin to backoffMax; while the listening connection is down,
// the credentials table is polled every poll through the pool.
type listenTiming struct {
	backoffMin, backoffMax, poll time.Duration
}

var defaultListenTiming = listenTiming{backoffMin: 100 * time.Millisecond, backoffMax: 5 * time.Second, poll: time.Second}

// errClosed is what WatchCredentials returns after Close.
var errClosed = errors.New("postgres: the store is closed")

// WatchCredentials implements recsink.Store. Every node's CreateCredential
// and ReplaceCurrentCredential send pg_notify in their own transaction, so
// a watcher hears of a change once it is committed, whichever node made it.
// One connection per store listens; while it is down, a poll of the
// credentials table every second stands in (sending "" on a change), and
// every (re)connection sends "" since changes may have been missed.
func (db *DB) WatchCredentials(ctx context.Context) (<-chan string, error) {
	// Registered before the listener starts, so that the watcher hears the
	// "" of its first connection.
	ch := db.credentials.Watch(ctx)
	started := false
	db.listenOnce.Do(func() {
		lctx, cancel := context.WithCancel(context.Background())
		db.listenCancel, db.listenDone = cancel, make(chan struct{})
		go func() {
			defer close(db.listenDone)
			db.listen(lctx)
		}()
		started = true
	})
	if !started && db.listenCancel == nil {
		return nil, errClosed // ch ends with ctx
	}
	return ch, nil
}

// listen keeps one connection listening on credentialsChannel until ctx
// ends, reconnecting with capped, jittered backoff.
func (db *DB) listen(ctx context.Context) {
	var sig credentialSignature
	haveSig := false
	failures := 0
	for ctx.Err() == nil {
		err := db.listenConn(ctx, &sig, &haveSig, &failures)
		if ctx.Err() != nil {
			return
		}
		if db.Logger != nil && failures <= 1 {
			db.Logger.Warn("postgres: credential listener lost; polling until it is back", "err", err)
		}
		// Down: poll while waiting for the next attempt.
		delay := min(db.listenTiming.backoffMax, db.listenTiming.backoffMin<<min(failures, 16))
		delay = delay/2 + rand.N(delay/2+1)
		deadline := time.Now().Add(delay)
		for {
			if s, err := db.signature(ctx, db.pool); err == nil {
				if haveSig && s != sig {
					db.credentials.Send("")
				}
				sig, haveSig = s, true
			}
			wait := min(db.listenTiming.poll, time.Until(deadline))
			if wait <= 0 {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// listenConn connects, listens, and sends notifications until the
// connection fails; it returns why.
func (db *DB) listenConn(ctx context.Context, sig *credentialSignature, haveSig *bool, failures *int) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cfg := db.pool.Config().ConnConfig.Copy()
	// Named, so that an operator sees what the connection is for.
	cfg.RuntimeParams["application_name"] = listenerApplicationName
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		*failures++
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+credentialsChannel); err != nil {
		*failures++
		return err
	}
	s, err := db.signature(ctx, conn)
	if err != nil {
		*failures++
		return err
	}
	*sig, *haveSig, *failures = s, true, 0
	// Listening now; anything before may have been missed.
	db.credentials.Send("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			*failures++
			return err
		}
		db.credentials.Send(n.Payload)
	}
}

// credentialSignature changes whenever a credential is saved (the largest
// seq) or replaced (the number of replaced generations).
type credentialSignature struct{ maxSeq, replaced int64 }

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (db *DB) signature(ctx context.Context, q queryRower) (credentialSignature, error) {
	var s credentialSignature
	err := q.QueryRow(ctx, `
		SELECT coalesce(max(seq), 0), count(*) FILTER (WHERE replaced_at IS NOT NULL) FROM credentials`).
		Scan(&s.maxSeq, &s.replaced)
	return s, err
}
