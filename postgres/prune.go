package postgres

import (
	"context"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

// Prune implements recsink.Store: it deletes the events and parts of
// recordings finished (last changed) before before, and webhook deliveries
// no longer pending that were created before before, sqlstore.PruneBatch
// rows per statement so that no statement holds its locks for long.
func (db *DB) Prune(ctx context.Context, before time.Time) (recsink.PruneStats, error) {
	var st recsink.PruneStats
	for _, job := range []struct {
		what  string
		n     *int64
		query string
		args  []any
	}{
		{"recording events", &st.RecordingEvents, `
			DELETE FROM recording_events WHERE seq IN (
				SELECT e.seq FROM recording_events e JOIN recordings r ON r.id = e.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < $1 LIMIT $2)`,
			[]any{before, sqlstore.PruneBatch}},
		{"recording parts", &st.Parts, `
			DELETE FROM recording_parts WHERE (recording_id, number) IN (
				SELECT p.recording_id, p.number FROM recording_parts p JOIN recordings r ON r.id = p.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < $1 LIMIT $2)`,
			[]any{before, sqlstore.PruneBatch}},
		{"webhook deliveries", &st.WebhookDeliveries, `
			DELETE FROM webhook_deliveries WHERE seq IN (
				SELECT seq FROM webhook_deliveries WHERE state <> $1 AND created_at < $2 LIMIT $3)`,
			[]any{recsink.DeliveryPending, before, sqlstore.PruneBatch}},
		{"audit events", &st.AuditEvents, `
			DELETE FROM audit_events WHERE seq IN (
				SELECT seq FROM audit_events WHERE time < $1 LIMIT $2)`,
			[]any{before, sqlstore.PruneBatch}},
	} {
		for {
			tag, err := db.pool.Exec(ctx, job.query, job.args...)
			if err != nil {
				return st, errorf("postgres: prune %s: %w", job.what, err)
			}
			*job.n += tag.RowsAffected()
			if tag.RowsAffected() < sqlstore.PruneBatch {
				break
			}
		}
	}
	return st, nil
}
