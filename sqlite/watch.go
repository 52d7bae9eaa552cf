package sqlite

import (
	"context"
	"path/filepath"
	"sync"

	"github.com/recsink/recsink/internal/sqlstore"
)

// SQLite runs on one node: a credential saved through any handle on a file
// in this process wakes the watchers of every handle on that file, through a
// broadcaster shared by path.
var (
	broadcastersMu sync.Mutex
	broadcasters   = map[string]*sharedBroadcaster{}
)

type sharedBroadcaster struct {
	b    sqlstore.Broadcaster
	refs int
}

func broadcasterKey(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// broadcasterFor returns the broadcaster of the file at path, holding it
// until releaseBroadcaster.
func broadcasterFor(path string) *sqlstore.Broadcaster {
	broadcastersMu.Lock()
	defer broadcastersMu.Unlock()
	k := broadcasterKey(path)
	sb := broadcasters[k]
	if sb == nil {
		sb = &sharedBroadcaster{}
		broadcasters[k] = sb
	}
	sb.refs++
	return &sb.b
}

func releaseBroadcaster(path string) {
	broadcastersMu.Lock()
	defer broadcastersMu.Unlock()
	k := broadcasterKey(path)
	if sb := broadcasters[k]; sb != nil {
		if sb.refs--; sb.refs <= 0 {
			delete(broadcasters, k)
		}
	}
}

// WatchCredentials implements recsink.Store: it sends the organization ID of
// every credential saved or replaced through any handle on this file in this
// process, until ctx ends.
func (db *DB) WatchCredentials(ctx context.Context) (<-chan string, error) {
	return db.credentials.Watch(ctx), nil
}
