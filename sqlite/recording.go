package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/recsink/recsink"
)

const recordingColumns = `seq, id, org_id, meeting_id, room_name, state, credential_id, access_key_id, part_size,
	provider, bucket, prefix, region, endpoint, force_path_style, file_format,
	object_key, upload_id, ingest_token_hash, start_date, end_date, stop_reason,
	bytes_received, bytes_uploaded, size_bytes, sha256, last_error, updated_at,
	owner_node, owner_url, lease_expires_at`

// holdingStates are the states in which a recording holds its credential,
// as an SQL list.
const holdingStates = `('` + recsink.RecordingRecording + `', '` + recsink.RecordingBlocked + `', '` + recsink.RecordingStopping + `')`

// CreateRecording inserts r and sets r.UpdatedAt to now. A duplicate ID is
// ECONFLICT; an unknown organization is ENOTFOUND.
func (db *DB) CreateRecording(ctx context.Context, r *recsink.Recording) error {
	now := db.now()
	d := r.Destination
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO recordings (id, org_id, meeting_id, room_name, state, credential_id, access_key_id, part_size,
			provider, bucket, prefix, region, endpoint, force_path_style, file_format,
			object_key, upload_id, ingest_token_hash, start_date, end_date, stop_reason,
			bytes_received, bytes_uploaded, size_bytes, sha256, last_error, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.OrgID, r.MeetingID, r.RoomName, r.State, r.CredentialID, r.AccessKeyID, r.PartSize,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, blob(r.IngestTokenHash), formatTime(r.StartDate), formatNullTime(r.EndDate), r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError, formatTime(now))
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "recording %s already exists", r.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return fmt.Errorf("sqlite: create recording %s: %w", r.ID, err)
	}
	r.UpdatedAt = now
	return nil
}

// FindRecording returns the organization's recording id.
func (db *DB) FindRecording(ctx context.Context, orgID, id string) (*recsink.Recording, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+recordingColumns+` FROM recordings WHERE org_id = ? AND id = ?`, orgID, id)
	r, _, err := scanRecording(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("recording")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find recording %s: %w", id, err)
	}
	return r, nil
}

// FindRecordingByID returns recording id of any organization.
func (db *DB) FindRecordingByID(ctx context.Context, id string) (*recsink.Recording, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+recordingColumns+` FROM recordings WHERE id = ?`, id)
	r, _, err := scanRecording(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("recording")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: find recording %s: %w", id, err)
	}
	return r, nil
}

// UpdateRecording saves every field of r but its ID, organization, meeting,
// room name, start date and ingest token hash, which never change, and sets
// r.UpdatedAt to now. The destination and object key are saved too, for a
// recording that moves to a new credential generation.
func (db *DB) UpdateRecording(ctx context.Context, r *recsink.Recording) error {
	now := db.now()
	d := r.Destination
	res, err := db.write.ExecContext(ctx, `
		UPDATE recordings SET
			state = ?, credential_id = ?, access_key_id = ?,
			provider = ?, bucket = ?, prefix = ?, region = ?, endpoint = ?, force_path_style = ?, file_format = ?,
			object_key = ?, upload_id = ?, end_date = ?, stop_reason = ?,
			bytes_received = ?, bytes_uploaded = ?, size_bytes = ?, sha256 = ?, last_error = ?,
			updated_at = ?
		WHERE org_id = ? AND id = ?`,
		r.State, r.CredentialID, r.AccessKeyID,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, formatNullTime(r.EndDate), r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError,
		formatTime(now),
		r.OrgID, r.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update recording %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: update recording %s: %w", r.ID, err)
	} else if n == 0 {
		return notFound("recording")
	}
	r.UpdatedAt = now
	return nil
}

// ListRecordings returns up to f.Limit (clamped to 1..100) of the
// organization's recordings after f.Cursor, oldest first, filtered by room
// name and state when they are not empty, and the cursor of the next page
// ("" when there is none). A malformed cursor is EINVALID.
func (db *DB) ListRecordings(ctx context.Context, orgID string, f recsink.RecordingFilter) ([]*recsink.Recording, string, error) {
	after, err := decodeCursor(f.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := clampLimit(f.Limit)
	query := `SELECT ` + recordingColumns + ` FROM recordings WHERE org_id = ? AND seq > ?`
	args := []any{orgID, after}
	if f.RoomName != "" {
		query += ` AND room_name = ?`
		args = append(args, f.RoomName)
	}
	if f.State != "" {
		query += ` AND state = ?`
		args = append(args, f.State)
	}
	// One row more than the page tells whether there is a next page.
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, limit+1)

	rs, seqs, err := db.queryRecordings(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list recordings: %w", err)
	}
	var next string
	if len(rs) > limit {
		rs, next = rs[:limit], encodeCursor(seqs[limit-1])
	}
	return rs, next, nil
}

// ListUnfinishedRecordings returns the recordings of every organization
// that hold their credential (recording, blocked, stopping), oldest first.
func (db *DB) ListUnfinishedRecordings(ctx context.Context) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE state IN `+holdingStates+` ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list unfinished recordings: %w", err)
	}
	return rs, nil
}

// ListHoldingRecordings returns the organization's recordings that hold
// their credential (recording, blocked, stopping), oldest first.
func (db *DB) ListHoldingRecordings(ctx context.Context, orgID string) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE org_id = ? AND state IN `+holdingStates+` ORDER BY seq`, orgID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list holding recordings: %w", err)
	}
	return rs, nil
}

// queryRecordings runs a query selecting recordingColumns on the read pool
// and returns the recordings with their seqs.
func (db *DB) queryRecordings(ctx context.Context, query string, args ...any) ([]*recsink.Recording, []int64, error) {
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()

	rs := []*recsink.Recording{}
	var seqs []int64
	for rows.Next() {
		r, seq, err := scanRecording(rows)
		if err != nil {
			return nil, nil, err
		}
		rs, seqs = append(rs, r), append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return rs, seqs, nil
}

// scanRecording scans recordingColumns and returns the row's seq; it
// returns sql.ErrNoRows as is.
func scanRecording(row scanner) (*recsink.Recording, int64, error) {
	var r recsink.Recording
	var seq int64
	var startDate, updatedAt string
	var endDate, leaseExpires sql.NullString
	var size sql.NullInt64
	d := &r.Destination
	if err := row.Scan(&seq, &r.ID, &r.OrgID, &r.MeetingID, &r.RoomName, &r.State, &r.CredentialID, &r.AccessKeyID, &r.PartSize,
		&d.Provider, &d.Bucket, &d.Prefix, &d.Region, &d.Endpoint, &d.ForcePathStyle, &d.FileFormat,
		&r.ObjectKey, &r.UploadID, &r.IngestTokenHash, &startDate, &endDate, &r.StopReason,
		&r.BytesReceived, &r.BytesUploaded, &size, &r.SHA256, &r.LastError, &updatedAt,
		&r.Owner.Node, &r.Owner.URL, &leaseExpires); err != nil {
		return nil, 0, err
	}
	var err error
	if r.StartDate, err = parseTime(startDate); err != nil {
		return nil, 0, err
	}
	if r.EndDate, err = parseNullTime(endDate); err != nil {
		return nil, 0, err
	}
	if r.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return nil, 0, err
	}
	if r.Owner.LeaseExpiresAt, err = parseNullTime(leaseExpires); err != nil {
		return nil, 0, err
	}
	if size.Valid {
		r.SizeBytes = &size.Int64
	}
	return &r, seq, nil
}

// AddRecordingEvent appends e to the recording's events; an unknown
// recording is ENOTFOUND.
func (db *DB) AddRecordingEvent(ctx context.Context, recordingID string, e recsink.RecordingEvent) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO recording_events (recording_id, time, type, message) VALUES (?, ?, ?, ?)`,
		recordingID, formatTime(e.Time), e.Type, e.Message)
	if isForeignKey(err) {
		return notFound("recording")
	} else if err != nil {
		return fmt.Errorf("sqlite: add event to recording %s: %w", recordingID, err)
	}
	return nil
}

// ListRecordingEvents returns the recording's events in the order they were
// added; none for an unknown recording.
func (db *DB) ListRecordingEvents(ctx context.Context, recordingID string) ([]recsink.RecordingEvent, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT time, type, message FROM recording_events WHERE recording_id = ? ORDER BY seq`, recordingID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events of recording %s: %w", recordingID, err)
	}
	defer rows.Close()

	es := []recsink.RecordingEvent{}
	for rows.Next() {
		var e recsink.RecordingEvent
		var t string
		if err := rows.Scan(&t, &e.Type, &e.Message); err != nil {
			return nil, fmt.Errorf("sqlite: list events of recording %s: %w", recordingID, err)
		}
		if e.Time, err = parseTime(t); err != nil {
			return nil, fmt.Errorf("sqlite: list events of recording %s: %w", recordingID, err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list events of recording %s: %w", recordingID, err)
	}
	return es, nil
}

// PutPart records a part confirmed by S3, replacing a part with the same
// number; an unknown recording is ENOTFOUND.
func (db *DB) PutPart(ctx context.Context, recordingID string, p recsink.Part) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO recording_parts (recording_id, number, byte_offset, size, etag) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (recording_id, number) DO UPDATE SET
			byte_offset = excluded.byte_offset, size = excluded.size, etag = excluded.etag`,
		recordingID, p.Number, p.Offset, p.Size, p.ETag)
	if isForeignKey(err) {
		return notFound("recording")
	} else if err != nil {
		return fmt.Errorf("sqlite: put part %d of recording %s: %w", p.Number, recordingID, err)
	}
	return nil
}

// ListParts returns the recording's confirmed parts by number; none for an
// unknown recording.
func (db *DB) ListParts(ctx context.Context, recordingID string) ([]recsink.Part, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT number, byte_offset, size, etag FROM recording_parts WHERE recording_id = ? ORDER BY number`, recordingID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list parts of recording %s: %w", recordingID, err)
	}
	defer rows.Close()

	ps := []recsink.Part{}
	for rows.Next() {
		var p recsink.Part
		if err := rows.Scan(&p.Number, &p.Offset, &p.Size, &p.ETag); err != nil {
			return nil, fmt.Errorf("sqlite: list parts of recording %s: %w", recordingID, err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list parts of recording %s: %w", recordingID, err)
	}
	return ps, nil
}
