package postgres

import "time"

// SetListenTiming changes how db's credential listener retries; call it
// before the first WatchCredentials.
func SetListenTiming(db *DB, backoffMin, backoffMax, poll time.Duration) {
	db.listenTiming = listenTiming{backoffMin: backoffMin, backoffMax: backoffMax, poll: poll}
}
