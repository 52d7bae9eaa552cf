package service

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/recsink/recsink"
)

// bulkDeleteWorkers is how many objects of one bulk delete are deleted at
// once: enough for 100 small DELETEs in a few seconds, few enough not to
// crowd a customer's bucket.
const bulkDeleteWorkers = 4

// BulkDeleteRecordings implements recsink.RecordingService. The recordings
// are looked up now, so that the call fails at once when the database does;
// each one taken gets a delete_requested event before the call returns, and
// the deletions run in the background with the service's lifetime.
func (s *Service) BulkDeleteRecordings(ctx context.Context, orgID string, ids []string) error {
	if len(ids) > recsink.MaxBulkDelete {
		return recsink.FieldErrorf("recordingIds", "recordingIds may hold at most %d recordings, not %d", recsink.MaxBulkDelete, len(ids))
	}
	seen := map[string]bool{}
	var todo []string
	for i, id := range ids {
		if id == "" || len(id) > 128 {
			return recsink.FieldErrorf(fmt.Sprintf("recordingIds[%d]", i), "a recording ID is 1 to 128 characters")
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		rec, err := s.store.FindRecording(ctx, orgID, id)
		if recsink.ErrorCode(err) == recsink.ENOTFOUND {
			continue // as Whereby: a recording that does not exist is not an error
		} else if err != nil {
			return err
		}
		if rec.State == recsink.RecordingDeleted {
			continue
		}
		if err := s.store.AddRecordingEvent(ctx, id, recsink.RecordingEvent{Time: recsink.Now(), Type: recsink.EventDeleteRequested,
			Message: "deletion requested in a bulk delete"}); err != nil {
			return err
		}
		todo = append(todo, id)
	}
	if len(todo) == 0 {
		return nil
	}
	if s.ctx.Err() != nil {
		return &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the server is shutting down; try again", RetryAfter: 2}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.bulkDelete(s.ctx, orgID, todo)
	}()
	return nil
}

// bulkDelete deletes the recordings' objects, a few at a time, and records
// on each recording that could not be deleted why.
func (s *Service) bulkDelete(ctx context.Context, orgID string, ids []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(bulkDeleteWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				err := s.DeleteRecording(ctx, orgID, id)
				if err == nil || ctx.Err() != nil {
					continue
				}
				s.log.Warn("bulk delete", "org", orgID, "recording", id, "err", err)
				if err := s.store.AddRecordingEvent(ctx, id, recsink.RecordingEvent{Time: recsink.Now(), Type: recsink.EventDeleteFailed,
					Message: "bulk delete failed: " + deleteFailure(err)}); err != nil {
					s.log.Error("bulk delete: record the failure", "recording", id, "err", err)
				}
			}
		}()
	}
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}

// deleteFailure says in plain words why a deletion failed, without the
// detail of an internal error.
func deleteFailure(err error) string {
	var se *recsink.StorageError
	var e *recsink.Error
	switch {
	case errors.As(err, &se):
		return se.Explain()
	case errors.As(err, &e) && e.Code != recsink.EINTERNAL:
		return e.Message
	}
	return "internal error; delete it again"
}
