package recsink

import (
	"context"
	"fmt"
	"time"
)

// LeaseStore assigns each unfinished recording to the recsink node that
// runs it, through a lease the node renews. Part of Store. With several
// nodes on one PostgreSQL, a recording whose node died is taken over once its
// lease expires. Every lease time is on the database's clock: a node's own
// clock never decides who owns a recording.
type LeaseStore interface {
	// Now returns the database's clock: leases and drain times use it, never
	// a node's own clock.
	Now(ctx context.Context) (time.Time, error)
	// ClaimRecording makes node (reachable at nodeURL) the owner of
	// recording id until the database's now()+ttl, if the recording is
	// unowned, already owned by node, its lease expired at the database's
	// now(), or force is set (the node holds the recording's spool). A claim
	// that changes the owner, or is forced, increments the epoch. It returns
	// the owner after the claim, which is another node's when the claim was
	// refused (not an error: compare Owner.Node); ENOTFOUND when there is no
	// such recording.
	ClaimRecording(ctx context.Context, id, node, nodeURL string, ttl time.Duration, force bool) (Owner, error)
	// RenewLeases extends to the database's now()+ttl the lease of every
	// unfinished recording that node owns and returns their IDs and epochs:
	// a recording that the node runs and that is missing from the map is
	// lost to it.
	RenewLeases(ctx context.Context, node string, ttl time.Duration) (map[string]int64, error)
	// ListOrphanedRecordings returns unfinished recordings whose lease
	// expired at the database's now(), or that have no owner or no lease at
	// all, across organizations.
	ListOrphanedRecordings(ctx context.Context) ([]*Recording, error)
}

// Owner is the node that runs a recording.
type Owner struct {
	Node string
	URL  string
	// Epoch counts claims: a claim that changes the owner or is forced sets
	// epoch = epoch+1; renewals keep it. Every write by the owner is fenced
	// by (Node, Epoch).
	Epoch          int64
	LeaseExpiresAt *time.Time
}

// ErrLeaseLost is returned by a fenced write when the writer no longer owns
// the recording (another owner, or a later epoch). Test with errors.Is.
var ErrLeaseLost = &Error{Code: ECONFLICT, Message: "the recording is now run by another node"}

// ElsewhereError says that another node runs the recording: the request is
// to be sent on to it.
type ElsewhereError struct {
	RecordingID string
	URL         string // the owner's base URL
}

// Error implements error.
func (e *ElsewhereError) Error() string {
	return fmt.Sprintf("recording %s is run by the node at %s", e.RecordingID, e.URL)
}
