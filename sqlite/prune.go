package sqlite

import (
	"context"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

// Prune implements recsink.Store: it deletes the events and parts of
// recordings finished (last changed) before before, and webhook deliveries
// no longer pending that were created before before, sqlstore.PruneBatch
// rows per statement so that the one writer is never held for long.
func (db *DB) Prune(ctx context.Context, before time.Time) (recsink.PruneStats, error) {
	var st recsink.PruneStats
	b := formatTime(before)
	for _, job := range []struct {
		what  string
		n     *int64
		query string
		args  []any
	}{
		{"recording events", &st.RecordingEvents, `
			DELETE FROM recording_events WHERE seq IN (
				SELECT e.seq FROM recording_events e JOIN recordings r ON r.id = e.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < ? LIMIT ?)`, []any{b, sqlstore.PruneBatch}},
		{"recording parts", &st.Parts, `
			DELETE FROM recording_parts WHERE rowid IN (
				SELECT p.rowid FROM recording_parts p JOIN recordings r ON r.id = p.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < ? LIMIT ?)`, []any{b, sqlstore.PruneBatch}},
		{"webhook deliveries", &st.WebhookDeliveries, `
			DELETE FROM webhook_deliveries WHERE seq IN (
				SELECT seq FROM webhook_deliveries WHERE state <> ? AND created_at < ? LIMIT ?)`,
			[]any{recsink.DeliveryPending, b, sqlstore.PruneBatch}},
		{"audit events", &st.AuditEvents, `
			DELETE FROM audit_events WHERE seq IN (
				SELECT seq FROM audit_events WHERE time < ? LIMIT ?)`, []any{b, sqlstore.PruneBatch}},
	} {
		for {
			res, err := db.write.ExecContext(ctx, job.query, job.args...)
			if err != nil {
				return st, errorf("sqlite: prune %s: %w", job.what, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return st, errorf("sqlite: prune %s: %w", job.what, err)
			}
			*job.n += n
			if n < sqlstore.PruneBatch {
				break
			}
		}
	}
	return st, nil
}
