package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/sqlstore"
)

const recordingColumns = `seq, id, org_id, meeting_id, room_name, state, credential_id, access_key_id, part_size,
	provider, bucket, prefix, region, endpoint, force_path_style, file_format,
	object_key, upload_id, ingest_token_hash, start_date, end_date, stop_reason,
	bytes_received, bytes_uploaded, size_bytes, sha256, last_error, updated_at,
	owner_node, owner_url, lease_epoch, lease_expires_at, checksum_algorithm, checksum, source`

// holdingStates are the states in which a recording holds its credential,
// as an SQL list.
const holdingStates = sqlstore.HoldingStates

// transitions is recsink.CanTransition as an SQL list of 'from>to'.
var transitions = sqlstore.Transitions()

// CreateRecording inserts r owned by r.Owner.Node and r.Owner.URL with a
// lease of ttl on the database's clock at epoch 1, all in one statement, and
// sets r.Owner and r.UpdatedAt. A duplicate ID is ECONFLICT, as is a second
// recording (not deleted) of the same object: endpoint, bucket and key
// (Field "objectKey"); an unknown organization is ENOTFOUND.
func (db *DB) CreateRecording(ctx context.Context, r *recsink.Recording, ttl time.Duration) error {
	d := r.Destination
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return errorf("sqlite: create recording %s: %w", r.ID, err)
	}
	defer tx.Rollback()
	var updatedAt, expires string
	err = tx.QueryRowContext(ctx, `
		INSERT INTO recordings (id, org_id, meeting_id, room_name, state, credential_id, access_key_id, part_size,
			provider, bucket, prefix, region, endpoint, force_path_style, file_format,
			object_key, upload_id, ingest_token_hash, start_date, end_date, stop_reason,
			bytes_received, bytes_uploaded, size_bytes, sha256, last_error, updated_at,
			owner_node, owner_url, lease_epoch, lease_expires_at, checksum_algorithm, checksum, source)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, `+sqlNow+`,
			?, ?, 1, `+sqlNowPlus+`, ?, ?, ?)
		RETURNING updated_at, lease_expires_at`,
		r.ID, r.OrgID, r.MeetingID, r.RoomName, r.State, r.CredentialID, r.AccessKeyID, r.PartSize,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, blob(r.IngestTokenHash), formatTime(r.StartDate), formatNullTime(r.EndDate), r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError,
		r.Owner.Node, r.Owner.URL, modifier(ttl), r.ChecksumAlgorithm, r.Checksum, r.Source).Scan(&updatedAt, &expires)
	switch {
	case isUnique(err):
		// Which unique index: the ID's, or the object's. One writer, so
		// the answer cannot change under us.
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM recordings WHERE id = ?)`, r.ID).Scan(&exists); err != nil {
			return errorf("sqlite: create recording %s: %w", r.ID, err)
		}
		if exists {
			return recsink.Errorf(recsink.ECONFLICT, "recording %s already exists", r.ID)
		}
		return errObjectTaken(r)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("sqlite: create recording %s: %w", r.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return errorf("sqlite: create recording %s: commit: %w", r.ID, err)
	}
	if r.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return err
	}
	t, err := parseTime(expires)
	if err != nil {
		return err
	}
	r.Owner.Epoch, r.Owner.LeaseExpiresAt = 1, &t
	return nil
}

// errObjectTaken is the conflict of a second recording into one object.
func errObjectTaken(r *recsink.Recording) error {
	return &recsink.Error{Code: recsink.ECONFLICT, Field: "objectKey",
		Message: fmt.Sprintf("another recording already writes s3://%s/%s", r.Destination.Bucket, r.ObjectKey)}
}

// FindRecording returns the organization's recording id.
func (db *DB) FindRecording(ctx context.Context, orgID, id string) (*recsink.Recording, error) {
	row := db.read.QueryRowContext(ctx, `
		SELECT `+recordingColumns+` FROM recordings WHERE org_id = ? AND id = ?`, orgID, id)
	r, _, err := scanRecording(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("recording")
	} else if err != nil {
		return nil, errorf("sqlite: find recording %s: %w", id, err)
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
		return nil, errorf("sqlite: find recording %s: %w", id, err)
	}
	return r, nil
}

// UpdateRecording saves every field of r but its ID, organization, meeting,
// room name, start date, ingest token hash and owner, and sets r.UpdatedAt
// to the database's now. The destination and object key are saved too, for a
// recording that moves to a new credential generation.
//
// The write is fenced: it happens only while r.Owner.Node at r.Owner.Epoch
// still owns the row (else recsink.ErrLeaseLost), and only when the row's
// state may move to r.State (recsink.CanTransition) without clearing its end
// date or restarting a stopped recording (else ECONFLICT).
func (db *DB) UpdateRecording(ctx context.Context, r *recsink.Recording) error {
	d := r.Destination
	var updatedAt string
	err := db.updateRecording.QueryRowContext(ctx,
		r.State, r.CredentialID, r.AccessKeyID,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, formatNullTime(r.EndDate), r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError,
		r.OrgID, r.ID, r.Owner.Node, r.Owner.Epoch, r.ChecksumAlgorithm, r.Checksum).Scan(&updatedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return db.refusedUpdate(ctx, r)
	case isUnique(err):
		return errObjectTaken(r)
	case isTrigger(err):
		return recsink.Errorf(recsink.ECONFLICT, "recording %s is finished: it cannot become %s", r.ID, r.State)
	case err != nil:
		return errorf("sqlite: update recording %s: %w", r.ID, err)
	}
	if r.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return err
	}
	return nil
}

// updateRecordingSQL is UpdateRecording's statement: the update is fenced
// by the lease (owner and epoch) and allowed only along the state machine's
// transitions.
var updateRecordingSQL = `
		UPDATE recordings SET
			state = ?1, credential_id = ?2, access_key_id = ?3,
			provider = ?4, bucket = ?5, prefix = ?6, region = ?7, endpoint = ?8, force_path_style = ?9, file_format = ?10,
			object_key = ?11, upload_id = ?12, end_date = ?13, stop_reason = ?14,
			bytes_received = ?15, bytes_uploaded = ?16, size_bytes = ?17, sha256 = ?18, last_error = ?19,
			checksum_algorithm = ?24, checksum = ?25, updated_at = ` + sqlNow + `
		WHERE org_id = ?20 AND id = ?21 AND owner_node = ?22 AND lease_epoch = ?23
			AND (state || '` + sqlstore.TransitionSeparator + `' || ?1) IN ` + transitions + `
			AND NOT (end_date IS NOT NULL AND ?13 IS NULL)
			AND NOT (?1 = '` + recsink.RecordingRecording + `' AND state <> ?1 AND end_date IS NOT NULL)
		RETURNING updated_at`

// refusedUpdate reads the row that a fenced update did not change and says
// why: no such row, another owner or epoch, or a transition backwards.
func (db *DB) refusedUpdate(ctx context.Context, r *recsink.Recording) error {
	var state, node string
	var epoch int64
	var endDate sql.NullString
	err := db.write.QueryRowContext(ctx, `
		SELECT state, owner_node, lease_epoch, end_date FROM recordings WHERE org_id = ? AND id = ?`,
		r.OrgID, r.ID).Scan(&state, &node, &epoch, &endDate)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return notFound("recording")
	case err != nil:
		return errorf("sqlite: update recording %s: %w", r.ID, err)
	case node != r.Owner.Node || epoch != r.Owner.Epoch:
		return errorf("sqlite: update recording %s as %s at epoch %d (now %s at %d): %w",
			r.ID, r.Owner.Node, r.Owner.Epoch, node, epoch, recsink.ErrLeaseLost)
	}
	return sqlstore.TransitionError(r, state, endDate.Valid)
}

// MarkRecordingDeleted implements recsink.Store: a finished recording
// becomes deleted, whichever node asks; a deleted one stays so; an
// unfinished one is ECONFLICT.
func (db *DB) MarkRecordingDeleted(ctx context.Context, orgID, id string) error {
	res, err := db.write.ExecContext(ctx, `
		UPDATE recordings SET state = ?, updated_at = `+sqlNow+`
		WHERE org_id = ? AND id = ? AND state IN (?, ?)`,
		recsink.RecordingDeleted, orgID, id, recsink.RecordingUploaded, recsink.RecordingFailed)
	if err != nil {
		return errorf("sqlite: delete recording %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return errorf("sqlite: delete recording %s: %w", id, err)
	} else if n > 0 {
		return nil
	}
	var state string
	err = db.write.QueryRowContext(ctx, `SELECT state FROM recordings WHERE org_id = ? AND id = ?`, orgID, id).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return notFound("recording")
	case err != nil:
		return errorf("sqlite: delete recording %s: %w", id, err)
	case state == recsink.RecordingDeleted:
		return nil
	}
	return sqlstore.ErrNotFinished(id, state)
}

// ListRecordings returns up to f.Limit (clamped to 1..100) of the
// organization's recordings after f.Cursor, oldest first, filtered by room
// name and state when they are not empty, and the cursor of the next page
// ("" when there is none). A malformed cursor is EINVALID.
func (db *DB) ListRecordings(ctx context.Context, orgID string, f recsink.RecordingFilter) ([]*recsink.Recording, string, error) {
	if f.Sort.Field != "" {
		return db.listSortedRecordings(ctx, orgID, f)
	}
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
		return nil, "", errorf("sqlite: list recordings: %w", err)
	}
	var next string
	if len(rs) > limit {
		rs, next = rs[:limit], encodeCursor(seqs[limit-1])
	}
	return rs, next, nil
}

// sortKeys are the SQL sort key of each recsink.RecordingSorts field.
// Duration is in milliseconds (julianday's precision), -1 while the
// recording has no end; the size is the object's, else the bytes received.
var sortKeys = map[string]string{
	recsink.SortStartDate: `start_date`, // stored as fixed-width UTC text: text order is time order
	recsink.SortRoomName:  `room_name`,
	recsink.SortDuration:  `COALESCE(CAST(ROUND((julianday(end_date) - julianday(start_date)) * 86400000.0) AS INTEGER), -1)`,
	recsink.SortSize:      `COALESCE(size_bytes, bytes_received)`,
}

// listSortedRecordings lists recordings in f.Sort's order with keyset
// cursors: (sort key, seq) of the page's last row, so that a page continues
// exactly where the previous one stopped, whatever was added since.
func (db *DB) listSortedRecordings(ctx context.Context, orgID string, f recsink.RecordingFilter) ([]*recsink.Recording, string, error) {
	key, ok := sortKeys[f.Sort.Field]
	if !ok {
		return nil, "", recsink.FieldErrorf("sortBy", "sortBy %q is not a sort field", f.Sort.Field)
	}
	limit := clampLimit(f.Limit)
	query := `SELECT ` + recordingColumns + ` FROM recordings WHERE org_id = ?`
	args := []any{orgID}
	cmp, dir := ">", "ASC"
	if f.Sort.Desc {
		cmp, dir = "<", "DESC"
	}
	if f.Cursor != "" {
		after, seq, err := sqlstore.DecodeSortCursor(f.Cursor, f.Sort.String())
		if err != nil {
			return nil, "", err
		}
		query += ` AND (` + key + ` ` + cmp + ` ? OR (` + key + ` = ? AND seq ` + cmp + ` ?))`
		args = append(args, after, after, seq)
	}
	if f.RoomName != "" {
		query += ` AND room_name = ?`
		args = append(args, f.RoomName)
	}
	if f.State != "" {
		query += ` AND state = ?`
		args = append(args, f.State)
	}
	query += ` ORDER BY ` + key + ` ` + dir + `, seq ` + dir + ` LIMIT ?`
	args = append(args, limit+1)

	rs, seqs, err := db.queryRecordings(ctx, query, args...)
	if err != nil {
		return nil, "", errorf("sqlite: list recordings by %s: %w", f.Sort, err)
	}
	if len(rs) <= limit {
		return rs, "", nil
	}
	rs, last := rs[:limit], seqs[limit-1]
	// The key as SQL computes it, so that the next page compares like with like.
	var k any
	if err := db.read.QueryRowContext(ctx, `SELECT `+key+` FROM recordings WHERE seq = ?`, last).Scan(&k); err != nil {
		return nil, "", errorf("sqlite: list recordings by %s: %w", f.Sort, err)
	}
	next, err := sqlstore.EncodeSortCursor(f.Sort.String(), k, last)
	if err != nil {
		return nil, "", errorf("sqlite: list recordings by %s: %w", f.Sort, err)
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
		return nil, errorf("sqlite: list unfinished recordings: %w", err)
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
		return nil, errorf("sqlite: list holding recordings: %w", err)
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
		&r.Owner.Node, &r.Owner.URL, &r.Owner.Epoch, &leaseExpires, &r.ChecksumAlgorithm, &r.Checksum, &r.Source); err != nil {
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
		return errorf("sqlite: add event to recording %s: %w", recordingID, err)
	}
	return nil
}

// ListRecordingEvents returns the recording's events in the order they were
// added; none for an unknown recording.
func (db *DB) ListRecordingEvents(ctx context.Context, recordingID string) ([]recsink.RecordingEvent, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT time, type, message FROM recording_events WHERE recording_id = ? ORDER BY seq`, recordingID)
	if err != nil {
		return nil, errorf("sqlite: list events of recording %s: %w", recordingID, err)
	}
	defer rows.Close()

	es := []recsink.RecordingEvent{}
	for rows.Next() {
		var e recsink.RecordingEvent
		var t string
		if err := rows.Scan(&t, &e.Type, &e.Message); err != nil {
			return nil, errorf("sqlite: list events of recording %s: %w", recordingID, err)
		}
		if e.Time, err = parseTime(t); err != nil {
			return nil, errorf("sqlite: list events of recording %s: %w", recordingID, err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: list events of recording %s: %w", recordingID, err)
	}
	return es, nil
}

// PutPart records a part confirmed by S3, replacing a part with the same
// number; an unknown recording is ENOTFOUND.
func (db *DB) PutPart(ctx context.Context, recordingID string, p recsink.Part) error {
	_, err := db.write.ExecContext(ctx, `
		INSERT INTO recording_parts (recording_id, number, byte_offset, size, etag, checksum) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (recording_id, number) DO UPDATE SET
			byte_offset = excluded.byte_offset, size = excluded.size, etag = excluded.etag, checksum = excluded.checksum`,
		recordingID, p.Number, p.Offset, p.Size, p.ETag, p.Checksum)
	if isForeignKey(err) {
		return notFound("recording")
	} else if err != nil {
		return errorf("sqlite: put part %d of recording %s: %w", p.Number, recordingID, err)
	}
	return nil
}

// ListParts returns the recording's confirmed parts by number; none for an
// unknown recording.
func (db *DB) ListParts(ctx context.Context, recordingID string) ([]recsink.Part, error) {
	rows, err := db.read.QueryContext(ctx, `
		SELECT number, byte_offset, size, etag, checksum FROM recording_parts WHERE recording_id = ? ORDER BY number`, recordingID)
	if err != nil {
		return nil, errorf("sqlite: list parts of recording %s: %w", recordingID, err)
	}
	defer rows.Close()

	ps := []recsink.Part{}
	for rows.Next() {
		var p recsink.Part
		if err := rows.Scan(&p.Number, &p.Offset, &p.Size, &p.ETag, &p.Checksum); err != nil {
			return nil, errorf("sqlite: list parts of recording %s: %w", recordingID, err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlite: list parts of recording %s: %w", recordingID, err)
	}
	return ps, nil
}
