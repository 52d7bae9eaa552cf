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
	jobs := []sqlstore.PruneJob{
		{What: "recording events", N: &st.RecordingEvents, Query: `
			DELETE FROM recording_events WHERE seq IN (
				SELECT e.seq FROM recording_events e JOIN recordings r ON r.id = e.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < $1 LIMIT $2)`,
			Args: []any{before, sqlstore.PruneBatch}},
		{What: "recording parts", N: &st.Parts, Query: `
			DELETE FROM recording_parts WHERE (recording_id, number) IN (
				SELECT p.recording_id, p.number FROM recording_parts p JOIN recordings r ON r.id = p.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < $1 LIMIT $2)`,
			Args: []any{before, sqlstore.PruneBatch}},
		{What: "webhook deliveries", N: &st.WebhookDeliveries, Query: `
			DELETE FROM webhook_deliveries WHERE seq IN (
				SELECT seq FROM webhook_deliveries WHERE state <> $1 AND created_at < $2 LIMIT $3)`,
			Args: []any{recsink.DeliveryPending, before, sqlstore.PruneBatch}},
		{What: "audit events", N: &st.AuditEvents, Query: `
			DELETE FROM audit_events WHERE seq IN (
				SELECT seq FROM audit_events WHERE time < $1 LIMIT $2)`,
			Args: []any{before, sqlstore.PruneBatch}},
	}
	err := sqlstore.Prune(ctx, jobs, func(ctx context.Context, query string, args ...any) (int64, error) {
		tag, err := db.pool.Exec(ctx, query, args...)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return st, errorf("postgres: %w", err)
	}
	return st, nil
}
