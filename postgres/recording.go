package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	_, err := db.pool.Exec(ctx, `
		INSERT INTO recordings (id, org_id, meeting_id, room_name, state, credential_id, access_key_id, part_size,
			provider, bucket, prefix, region, endpoint, force_path_style, file_format,
			object_key, upload_id, ingest_token_hash, start_date, end_date, stop_reason,
			bytes_received, bytes_uploaded, size_bytes, sha256, last_error, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
			$16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)`,
		r.ID, r.OrgID, r.MeetingID, r.RoomName, r.State, r.CredentialID, r.AccessKeyID, r.PartSize,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, blob(r.IngestTokenHash), r.StartDate, r.EndDate, r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError, now)
	switch {
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "recording %s already exists", r.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return fmt.Errorf("postgres: create recording %s: %w", r.ID, err)
	}
	r.UpdatedAt = now
	return nil
}

// FindRecording returns the organization's recording id.
func (db *DB) FindRecording(ctx context.Context, orgID, id string) (*recsink.Recording, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+recordingColumns+` FROM recordings WHERE org_id = $1 AND id = $2`, orgID, id)
	r, _, err := scanRecording(row)
	if isNoRows(err) {
		return nil, notFound("recording")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find recording %s: %w", id, err)
	}
	return r, nil
}

// FindRecordingByID returns recording id of any organization.
func (db *DB) FindRecordingByID(ctx context.Context, id string) (*recsink.Recording, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+recordingColumns+` FROM recordings WHERE id = $1`, id)
	r, _, err := scanRecording(row)
	if isNoRows(err) {
		return nil, notFound("recording")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: find recording %s: %w", id, err)
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
	tag, err := db.pool.Exec(ctx, `
		UPDATE recordings SET
			state = $1, credential_id = $2, access_key_id = $3,
			provider = $4, bucket = $5, prefix = $6, region = $7, endpoint = $8, force_path_style = $9, file_format = $10,
			object_key = $11, upload_id = $12, end_date = $13, stop_reason = $14,
			bytes_received = $15, bytes_uploaded = $16, size_bytes = $17, sha256 = $18, last_error = $19,
			updated_at = $20
		WHERE org_id = $21 AND id = $22`,
		r.State, r.CredentialID, r.AccessKeyID,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, r.EndDate, r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError,
		now,
		r.OrgID, r.ID)
	if err != nil {
		return fmt.Errorf("postgres: update recording %s: %w", r.ID, err)
	}
	if tag.RowsAffected() == 0 {
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
	query := `SELECT ` + recordingColumns + ` FROM recordings WHERE org_id = $1 AND seq > $2`
	args := []any{orgID, after}
	if f.RoomName != "" {
		args = append(args, f.RoomName)
		query += fmt.Sprintf(` AND room_name = $%d`, len(args))
	}
	if f.State != "" {
		args = append(args, f.State)
		query += fmt.Sprintf(` AND state = $%d`, len(args))
	}
	// One row more than the page tells whether there is a next page.
	args = append(args, limit+1)
	query += fmt.Sprintf(` ORDER BY seq LIMIT $%d`, len(args))

	rs, seqs, err := db.queryRecordings(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list recordings: %w", err)
	}
	rs, next := page(rs, seqs, limit)
	return rs, next, nil
}

// ListUnfinishedRecordings returns the recordings of every organization
// that hold their credential (recording, blocked, stopping), oldest first.
func (db *DB) ListUnfinishedRecordings(ctx context.Context) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE state IN `+holdingStates+` ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list unfinished recordings: %w", err)
	}
	return rs, nil
}

// ListHoldingRecordings returns the organization's recordings that hold
// their credential (recording, blocked, stopping), oldest first.
func (db *DB) ListHoldingRecordings(ctx context.Context, orgID string) ([]*recsink.Recording, error) {
	rs, _, err := db.queryRecordings(ctx, `
		SELECT `+recordingColumns+` FROM recordings
		WHERE org_id = $1 AND state IN `+holdingStates+` ORDER BY seq`, orgID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list holding recordings: %w", err)
	}
	return rs, nil
}

// queryRecordings runs a query selecting recordingColumns and returns the
// recordings with their seqs.
func (db *DB) queryRecordings(ctx context.Context, query string, args ...any) ([]*recsink.Recording, []int64, error) {
	var seqs []int64
	rs, err := queryAll(ctx, db.pool, func(row pgx.Row) (*recsink.Recording, error) {
		r, seq, err := scanRecording(row)
		seqs = append(seqs, seq)
		return r, err
	}, query, args...)
	return rs, seqs, err
}

// scanRecording scans recordingColumns and returns the row's seq; it
// returns pgx.ErrNoRows as is.
func scanRecording(row pgx.Row) (*recsink.Recording, int64, error) {
	var r recsink.Recording
	var seq int64
	d := &r.Destination
	if err := row.Scan(&seq, &r.ID, &r.OrgID, &r.MeetingID, &r.RoomName, &r.State, &r.CredentialID, &r.AccessKeyID, &r.PartSize,
		&d.Provider, &d.Bucket, &d.Prefix, &d.Region, &d.Endpoint, &d.ForcePathStyle, &d.FileFormat,
		&r.ObjectKey, &r.UploadID, &r.IngestTokenHash, &r.StartDate, &r.EndDate, &r.StopReason,
		&r.BytesReceived, &r.BytesUploaded, &r.SizeBytes, &r.SHA256, &r.LastError, &r.UpdatedAt,
		&r.Owner.Node, &r.Owner.URL, &r.Owner.LeaseExpiresAt); err != nil {
		return nil, 0, err
	}
	return &r, seq, nil
}

// AddRecordingEvent appends e to the recording's events; an unknown
// recording is ENOTFOUND.
func (db *DB) AddRecordingEvent(ctx context.Context, recordingID string, e recsink.RecordingEvent) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO recording_events (recording_id, time, type, message) VALUES ($1, $2, $3, $4)`,
		recordingID, e.Time, e.Type, e.Message)
	if isForeignKey(err) {
		return notFound("recording")
	} else if err != nil {
		return fmt.Errorf("postgres: add event to recording %s: %w", recordingID, err)
	}
	return nil
}

// ListRecordingEvents returns the recording's events in the order they were
// added; none for an unknown recording.
func (db *DB) ListRecordingEvents(ctx context.Context, recordingID string) ([]recsink.RecordingEvent, error) {
	es, err := queryAll(ctx, db.pool, func(row pgx.Row) (recsink.RecordingEvent, error) {
		var e recsink.RecordingEvent
		err := row.Scan(&e.Time, &e.Type, &e.Message)
		return e, err
	}, `SELECT time, type, message FROM recording_events WHERE recording_id = $1 ORDER BY seq`, recordingID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list events of recording %s: %w", recordingID, err)
	}
	return es, nil
}

// PutPart records a part confirmed by S3, replacing a part with the same
// number; an unknown recording is ENOTFOUND.
func (db *DB) PutPart(ctx context.Context, recordingID string, p recsink.Part) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO recording_parts (recording_id, number, byte_offset, size, etag) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (recording_id, number) DO UPDATE SET
			byte_offset = excluded.byte_offset, size = excluded.size, etag = excluded.etag`,
		recordingID, p.Number, p.Offset, p.Size, p.ETag)
	if isForeignKey(err) {
		return notFound("recording")
	} else if err != nil {
		return fmt.Errorf("postgres: put part %d of recording %s: %w", p.Number, recordingID, err)
	}
	return nil
}

// ListParts returns the recording's confirmed parts by number; none for an
// unknown recording.
func (db *DB) ListParts(ctx context.Context, recordingID string) ([]recsink.Part, error) {
	ps, err := queryAll(ctx, db.pool, func(row pgx.Row) (recsink.Part, error) {
		var p recsink.Part
		err := row.Scan(&p.Number, &p.Offset, &p.Size, &p.ETag)
		return p, err
	}, `SELECT number, byte_offset, size, etag FROM recording_parts WHERE recording_id = $1 ORDER BY number`, recordingID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list parts of recording %s: %w", recordingID, err)
	}
	return ps, nil
}
