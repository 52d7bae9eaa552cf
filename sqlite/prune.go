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
	jobs := []sqlstore.PruneJob{
		{What: "recording events", N: &st.RecordingEvents, Query: `
			DELETE FROM recording_events WHERE seq IN (
				SELECT e.seq FROM recording_events e JOIN recordings r ON r.id = e.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < ? LIMIT ?)`, Args: []any{b, sqlstore.PruneBatch}},
		{What: "recording parts", N: &st.Parts, Query: `
			DELETE FROM recording_parts WHERE rowid IN (
				SELECT p.rowid FROM recording_parts p JOIN recordings r ON r.id = p.recording_id
				WHERE r.state IN ` + sqlstore.FinishedStates + ` AND r.updated_at < ? LIMIT ?)`, Args: []any{b, sqlstore.PruneBatch}},
		{What: "webhook deliveries", N: &st.WebhookDeliveries, Query: `
			DELETE FROM webhook_deliveries WHERE seq IN (
				SELECT seq FROM webhook_deliveries WHERE state <> ? AND created_at < ? LIMIT ?)`,
			Args: []any{recsink.DeliveryPending, b, sqlstore.PruneBatch}},
		{What: "audit events", N: &st.AuditEvents, Query: `
			DELETE FROM audit_events WHERE seq IN (
				SELECT seq FROM audit_events WHERE time < ? LIMIT ?)`, Args: []any{b, sqlstore.PruneBatch}},
	}
	err := sqlstore.Prune(ctx, jobs, func(ctx context.Context, query string, args ...any) (int64, error) {
		res, err := db.write.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	})
	if err != nil {
		return st, errorf("sqlite: %w", err)
	}
	return st, nil
}
