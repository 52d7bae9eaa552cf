package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/recsink/recsink"
)

const meetingColumns = `seq, id, org_id, room_name, start_date, end_date, recording_type, start_trigger, created_at`

// CreateMeeting inserts m. A room name already taken (by any organization)
// or a duplicate ID is ECONFLICT; an unknown organization is ENOTFOUND.
func (db *DB) CreateMeeting(ctx context.Context, m *recsink.Meeting) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO meetings (id, org_id, room_name, start_date, end_date, recording_type, start_trigger, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.OrgID, m.RoomName, formatTime(m.StartDate), formatTime(m.EndDate),
		m.RecordingType, m.StartTrigger, formatTime(m.CreatedAt))
	switch {
	case isUnique(err):
		// Room names are unique across organizations, so the message must
		// not reveal whose room it is.
		return &recsink.Error{Code: recsink.ECONFLICT, Field: "roomName", Message: fmt.Sprintf("room name %q is already taken", m.RoomName)}
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("sqlite: create meeting %s: %w", m.ID, err)
	}
	return nil
}

// FindMeeting returns the organization's meeting id.
func (db *DB) FindMeeting(ctx context.Context, orgID, id string) (*recsink.Meeting, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+meetingColumns+` FROM meetings WHERE org_id = ? AND id = ?`, orgID, id)
	m, _, err := scanMeeting(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("meeting")
	} else if err != nil {
		return nil, errorf("sqlite: find meeting %s: %w", id, err)
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
	// One row more than the page tells whether there is a next page.
	rows, err := db.read.QueryContext(ctx, `
		SELECT `+meetingColumns+` FROM meetings
		WHERE org_id = ? AND seq > ?
		ORDER BY seq LIMIT ?`, orgID, after, limit+1)
	if err != nil {
		return nil, "", errorf("sqlite: list meetings: %w", err)
	}
	defer rows.Close()

	ms := []*recsink.Meeting{}
	var seqs []int64
	for rows.Next() {
		m, seq, err := scanMeeting(rows)
		if err != nil {
			return nil, "", errorf("sqlite: list meetings: %w", err)
		}
		ms, seqs = append(ms, m), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, "", errorf("sqlite: list meetings: %w", err)
	}
	var next string
	if len(ms) > limit {
		ms, next = ms[:limit], encodeCursor(seqs[limit-1])
	}
	return ms, next, nil
}

// DeleteMeeting deletes the organization's meeting id. Its recordings and
// storage settings stay: recordings keep the room name they started with.
func (db *DB) DeleteMeeting(ctx context.Context, orgID, id string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM meetings WHERE org_id = ? AND id = ?`, orgID, id)
	if err != nil {
		return errorf("sqlite: delete meeting %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: delete meeting %s: %w", id, err)
	} else if n == 0 {
		return notFound("meeting")
	}
	return nil
}

// scanMeeting scans meetingColumns and returns the row's seq; it returns
// sql.ErrNoRows as is.
func scanMeeting(row scanner) (*recsink.Meeting, int64, error) {
	var m recsink.Meeting
	var seq int64
	var startDate, endDate, createdAt string
	if err := row.Scan(&seq, &m.ID, &m.OrgID, &m.RoomName, &startDate, &endDate,
		&m.RecordingType, &m.StartTrigger, &createdAt); err != nil {
		return nil, 0, err
	}
	var err error
	if m.StartDate, err = parseTime(startDate); err != nil {
		return nil, 0, err
	}
	if m.EndDate, err = parseTime(endDate); err != nil {
		return nil, 0, err
	}
	if m.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, 0, err
	}
	return &m, seq, nil
}
