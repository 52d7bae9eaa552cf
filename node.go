package recsink

import (
	"context"
	"fmt"
	"time"
)

// LeaseStore assigns each unfinished recording to the recsink node that
// runs it, through a lease the node renews. Part of Store. With several
// nodes on one PostgreSQL, a recording whose node died is taken over once its
// lease expires.
type LeaseStore interface {
	// ClaimRecording makes node (reachable at nodeURL) the owner of
	// recording id until until, if the recording is unowned, already owned
	// by node, its lease expired at now, or force is set (the node holds the
	// recording's spool). It returns the owner after the claim.
	ClaimRecording(ctx context.Context, id, node, nodeURL string, now, until time.Time, force bool) (owner Owner, err error)
	// RenewLeases extends to until the lease of every unfinished recording
	// that node owns.
	RenewLeases(ctx context.Context, node string, until time.Time) error
	// ListOrphanedRecordings returns unfinished recordings whose lease
	// expired before now, across organizations.
	ListOrphanedRecordings(ctx context.Context, now time.Time) ([]*Recording, error)
}

// Owner is the node that runs a recording.
type Owner struct {
	Node           string
	URL            string
	LeaseExpiresAt *time.Time
}

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
