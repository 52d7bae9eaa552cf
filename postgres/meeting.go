package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/recsink/recsink"
)

const meetingColumns = `seq, id, org_id, room_name, start_date, end_date, recording_type, start_trigger, created_at`

// CreateMeeting inserts m. A room name already taken (by any organization)
// or a duplicate ID is ECONFLICT; an unknown organization is ENOTFOUND.
func (db *DB) CreateMeeting(ctx context.Context, m *recsink.Meeting) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO meetings (id, org_id, room_name, start_date, end_date, recording_type, start_trigger, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		m.ID, m.OrgID, m.RoomName, m.StartDate, m.EndDate, m.RecordingType, m.StartTrigger, m.CreatedAt)
	switch {
	case isUnique(err):
		// Room names are unique across organizations, so the message must
		// not reveal whose room it is.
		return &recsink.Error{Code: recsink.ECONFLICT, Field: "roomName", Message: fmt.Sprintf("room name %q is already taken", m.RoomName)}
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("postgres: create meeting %s: %w", m.ID, err)
	}
	return nil
}

// FindMeeting returns the organization's meeting id.
func (db *DB) FindMeeting(ctx context.Context, orgID, id string) (*recsink.Meeting, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+meetingColumns+` FROM meetings WHERE org_id = $1 AND id = $2`, orgID, id)
	m, _, err := scanMeeting(row)
	if isNoRows(err) {
		return nil, notFound("meeting")
	} else if err != nil {
		return nil, errorf("postgres: find meeting %s: %w", id, err)
	}
	return m, nil
}

// ListMeetings returns up to limit (clamped to 1..100) of the organization's
// meetings after cursor, oldest first, and the cursor of the next page, ""
// when there is none. A malformed cursor is EINVALID.
func (db *DB) ListMeetings(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.Meeting, string, error) {
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	var seqs []int64
	// One row more than the page tells whether there is a next page.
	ms, err := queryAll(ctx, db.pool, func(row pgx.Row) (*recsink.Meeting, error) {
		m, seq, err := scanMeeting(row)
		seqs = append(seqs, seq)
		return m, err
	}, `
		SELECT `+meetingColumns+` FROM meetings
		WHERE org_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, orgID, after, limit+1)
	if err != nil {
		return nil, "", errorf("postgres: list meetings: %w", err)
	}
	ms, next := page(ms, seqs, limit)
	return ms, next, nil
}

// DeleteMeeting deletes the organization's meeting id. Its recordings and
// storage settings stay: recordings keep the room name they started with.
func (db *DB) DeleteMeeting(ctx context.Context, orgID, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM meetings WHERE org_id = $1 AND id = $2`, orgID, id)
	if err != nil {
		return errorf("postgres: delete meeting %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound("meeting")
	}
	return nil
}

// scanMeeting scans meetingColumns and returns the row's seq; it returns
// pgx.ErrNoRows as is.
func scanMeeting(row pgx.Row) (*recsink.Meeting, int64, error) {
	var m recsink.Meeting
	var seq int64
	if err := row.Scan(&seq, &m.ID, &m.OrgID, &m.RoomName, &m.StartDate, &m.EndDate,
		&m.RecordingType, &m.StartTrigger, &m.CreatedAt); err != nil {
		return nil, 0, err
	}
	return &m, seq, nil
}
