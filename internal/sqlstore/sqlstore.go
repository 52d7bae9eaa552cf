// Package sqlstore holds what the sqlite and postgres stores share word for
// word: the recording state table as SQL, and the in-process broadcast of
// credential changes. Dialect-specific SQL stays in each store.
package sqlstore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/recsink/recsink"
)

// States are every recording state.
var States = []string{
	recsink.RecordingRecording, recsink.RecordingBlocked, recsink.RecordingStopping,
	recsink.RecordingUploaded, recsink.RecordingFailed, recsink.RecordingDeleted,
}

// TransitionSeparator joins a from and a to state in the strings of
// Transitions.
const TransitionSeparator = ">"

// Transitions returns recsink.CanTransition as an SQL list of quoted
// "from>to" strings, e.g. ('blocked>recording', ...), so that a statement can
// refuse a transition in its WHERE with
//
//	(state || '>' || <new state>) IN <Transitions()>
//
// which names the new state once (one placeholder in either dialect). The
// list is built from CanTransition so that the SQL and Go cannot disagree.
func Transitions() string {
	var pairs []string
	for _, from := range States {
		for _, to := range States {
			if recsink.CanTransition(from, to) {
				pairs = append(pairs, "'"+from+TransitionSeparator+to+"'")
			}
		}
	}
	sort.Strings(pairs)
	return "(" + strings.Join(pairs, ", ") + ")"
}

// FinishedStates is the SQL list of the final states.
const FinishedStates = `('` + recsink.RecordingUploaded + `', '` + recsink.RecordingFailed + `', '` + recsink.RecordingDeleted + `')`

// HoldingStates is the SQL list of the unfinished states, in which a
// recording holds its credential.
const HoldingStates = `('` + recsink.RecordingRecording + `', '` + recsink.RecordingBlocked + `', '` + recsink.RecordingStopping + `')`

// WatchedCredentials is the SQL condition on credentials that the key
// health watch checks: current, or held by an unfinished recording.
const WatchedCredentials = `(replaced_at IS NULL OR id IN (
	SELECT credential_id FROM recordings WHERE state IN ` + HoldingStates + `))`

// PruneBatch is the most rows one statement of Store.Prune deletes, so that
// no statement holds its locks (SQLite: the one writer) for long.
const PruneBatch = 1000

// TransitionError says why a recording in state from (with an end date or
// not) may not take r's state and end date: a stopped recording does not
// restart, its end date is not cleared, and CanTransition holds.
func TransitionError(r *recsink.Recording, from string, ended bool) error {
	switch {
	case !recsink.CanTransition(from, r.State):
		return recsink.Errorf(recsink.ECONFLICT, "recording %s is %s: it cannot become %s", r.ID, from, r.State)
	case ended && r.EndDate == nil:
		return recsink.Errorf(recsink.ECONFLICT, "recording %s has stopped: its end date cannot be cleared", r.ID)
	case ended && r.State == recsink.RecordingRecording && from != recsink.RecordingRecording:
		return recsink.Errorf(recsink.ECONFLICT, "recording %s has stopped: it cannot record again", r.ID)
	}
	// The row changed between the update and this read; the caller may read
	// it again.
	return recsink.Errorf(recsink.ECONFLICT, "recording %s changed while it was being saved", r.ID)
}

// ErrNotFinished is the conflict of deleting a recording that still runs.
func ErrNotFinished(id, state string) error {
	return recsink.Errorf(recsink.ECONFLICT, "recording %s is %s: only a finished recording (uploaded or failed) can be deleted", id, state)
}

// PruneJob is one table's share of Store.Prune: a statement that deletes at
// most PruneBatch old rows, and where to count them.
type PruneJob struct {
	What  string // what the rows are, for an error
	N     *int64 // counts the rows deleted
	Query string
	Args  []any
}

// Prune runs each job's statement with exec until it deletes fewer than
// PruneBatch rows. exec runs one statement and returns how many rows it
// deleted; its error is returned naming the job.
func Prune(ctx context.Context, jobs []PruneJob, exec func(ctx context.Context, query string, args ...any) (int64, error)) error {
	for _, job := range jobs {
		for {
			n, err := exec(ctx, job.Query, job.Args...)
			if err != nil {
				return fmt.Errorf("prune %s: %w", job.What, err)
			}
			*job.N += n
			if n < PruneBatch {
				break
			}
		}
	}
	return nil
}
