package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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

// objectKeyIndex is the unique index of an object's recordings.
const objectKeyIndex = "recordings_object_key_idx"

// CreateRecording inserts r owned by r.Owner.Node and r.Owner.URL with a
// lease of ttl on the server's clock at epoch 1, all in one statement, and
// sets r.Owner and r.UpdatedAt. A duplicate ID is ECONFLICT, as is a second
// recording (not deleted) of the same object: endpoint, bucket and key
// (Field "objectKey"); an unknown organization is ENOTFOUND.
func (db *DB) CreateRecording(ctx context.Context, r *recsink.Recording, ttl time.Duration) error {
	d := r.Destination
	var updatedAt, expires time.Time
	err := db.pool.QueryRow(ctx, `
		INSERT INTO recordings (id, org_id, meeting_id, room_name, state, credential_id, access_key_id, part_size,
			provider, bucket, prefix, region, endpoint, force_path_style, file_format,
			object_key, upload_id, ingest_token_hash, start_date, end_date, stop_reason,
			bytes_received, bytes_uploaded, size_bytes, sha256, last_error, updated_at,
			owner_node, owner_url, lease_epoch, lease_expires_at, checksum_algorithm, checksum, source)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
			$16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, now(),
			$27, $28, 1, now() + $29::float8 * interval '1 second', $30, $31, $32)
		RETURNING updated_at, lease_expires_at`,
		r.ID, r.OrgID, r.MeetingID, r.RoomName, r.State, r.CredentialID, r.AccessKeyID, r.PartSize,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, blob(r.IngestTokenHash), r.StartDate, r.EndDate, r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError,
		r.Owner.Node, r.Owner.URL, ttl.Seconds(), string(r.ChecksumAlgorithm), r.Checksum, r.Source).Scan(&updatedAt, &expires)
	switch {
	case isUnique(err) && constraint(err) == objectKeyIndex:
		return errObjectTaken(r)
	case isUnique(err):
		return recsink.Errorf(recsink.ECONFLICT, "recording %s already exists", r.ID)
	case isForeignKey(err):
		return notFound("organization")
	case err != nil:
		return errorf("postgres: create recording %s: %w", r.ID, err)
	}
	r.UpdatedAt = updatedAt
	r.Owner.Epoch, r.Owner.LeaseExpiresAt = 1, &expires
	return nil
}

// errObjectTaken is the conflict of a second recording into one object.
func errObjectTaken(r *recsink.Recording) error {
	return &recsink.Error{Code: recsink.ECONFLICT, Field: "objectKey",
		Message: fmt.Sprintf("another recording already writes s3://%s/%s", r.Destination.Bucket, r.ObjectKey)}
}

// FindRecording returns the organization's recording id.
func (db *DB) FindRecording(ctx context.Context, orgID, id string) (*recsink.Recording, error) {
	row := db.pool.QueryRow(ctx, `
		SELECT `+recordingColumns+` FROM recordings WHERE org_id = $1 AND id = $2`, orgID, id)
	r, _, err := scanRecording(row)
	if isNoRows(err) {
		return nil, notFound("recording")
	} else if err != nil {
		return nil, errorf("postgres: find recording %s: %w", id, err)
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
		return nil, errorf("postgres: find recording %s: %w", id, err)
	}
	return r, nil
}

// UpdateRecording saves every field of r but its ID, organization, meeting,
// room name, start date, ingest token hash and owner, and sets r.UpdatedAt
// to the server's now(). The destination and object key are saved too, for
// a recording that moves to a new credential generation.
//
// The write is fenced: it happens only while r.Owner.Node at r.Owner.Epoch
// still owns the row (else recsink.ErrLeaseLost), and only when the row's
// state may move to r.State (recsink.CanTransition) without clearing its end
// date or restarting a stopped recording (else ECONFLICT). The conditions
// are in the UPDATE's WHERE, so that two writers cannot interleave between
// a check and the write.
func (db *DB) UpdateRecording(ctx context.Context, r *recsink.Recording) error {
	d := r.Destination
	var updatedAt time.Time
	err := db.pool.QueryRow(ctx, `
		UPDATE recordings SET
			state = $1, credential_id = $2, access_key_id = $3,
			provider = $4, bucket = $5, prefix = $6, region = $7, endpoint = $8, force_path_style = $9, file_format = $10,
			object_key = $11, upload_id = $12, end_date = $13, stop_reason = $14,
			bytes_received = $15, bytes_uploaded = $16, size_bytes = $17, sha256 = $18, last_error = $19,
			checksum_algorithm = $24, checksum = $25, updated_at = now()
		WHERE org_id = $20 AND id = $21 AND owner_node = $22 AND lease_epoch = $23
			AND (state || '`+sqlstore.TransitionSeparator+`' || $1::text) IN `+transitions+`
			AND NOT (end_date IS NOT NULL AND $13::timestamptz IS NULL)
			AND NOT ($1::text = '`+recsink.RecordingRecording+`' AND state <> $1::text AND end_date IS NOT NULL)
		RETURNING updated_at`,
		r.State, r.CredentialID, r.AccessKeyID,
		d.Provider, d.Bucket, d.Prefix, d.Region, d.Endpoint, d.ForcePathStyle, d.FileFormat,
		r.ObjectKey, r.UploadID, r.EndDate, r.StopReason,
		r.BytesReceived, r.BytesUploaded, r.SizeBytes, r.SHA256, r.LastError,
		r.OrgID, r.ID, r.Owner.Node, r.Owner.Epoch, string(r.ChecksumAlgorithm), r.Checksum).Scan(&updatedAt)
	switch {
	case isNoRows(err):
		return db.refusedUpdate(ctx, r)
	case isUnique(err) && constraint(err) == objectKeyIndex:
		return errObjectTaken(r)
	case isFinalState(err):
		return recsink.Errorf(recsink.ECONFLICT, "recording %s is finished: it cannot become %s", r.ID, r.State)
	case err != nil:
		return errorf("postgres: update recording %s: %w", r.ID, err)
	}
	r.UpdatedAt = updatedAt
	return nil
}

// refusedUpdate reads the row that a fenced update did not change and says
// why: no such row, another owner or epoch, or a transition backwards.
func (db *DB) refusedUpdate(ctx context.Context, r *recsink.Recording) error {
	var state, node string
	var epoch int64
	var ended bool
	err := db.pool.QueryRow(ctx, `
		SELECT state, owner_node, lease_epoch, end_date IS NOT NULL FROM recordings WHERE org_id = $1 AND id = $2`,
		r.OrgID, r.ID).Scan(&state, &node, &epoch, &ended)
	switch {
	case isNoRows(err):
		return notFound("recording")
	case err != nil:
		return errorf("postgres: update recording %s: %w", r.ID, err)
	case node != r.Owner.Node || epoch != r.Owner.Epoch:
		return fmt.Errorf("postgres: update recording %s as %s at epoch %d (now %s at %d): %w",
			r.ID, r.Owner.Node, r.Owner.Epoch, node, epoch, recsink.ErrLeaseLost)
	}
	return sqlstore.TransitionError(r, state, ended)
}

// MarkRecordingDeleted implements recsink.Store: a finished recording
// becomes deleted, whichever node asks; a deleted one stays so; an
// unfinished one is ECONFLICT.
func (db *DB) MarkRecordingDeleted(ctx context.Context, orgID, id string) error {
	var state string
	// The CTE's UPDATE and the outer SELECT share a snapshot: state is the
	// row's state before the update.
	err := db.pool.QueryRow(ctx, `
		WITH deleted AS (
			UPDATE recordings SET state = 'deleted', updated_at = now()
			WHERE org_id = $1 AND id = $2 AND state IN ('uploaded', 'failed')
			RETURNING id
		)
		SELECT CASE WHEN EXISTS (SELECT 1 FROM deleted) THEN 'deleted' ELSE state END
		FROM recordings WHERE org_id = $1 AND id = $2`, orgID, id).Scan(&state)
	switch {
	case isNoRows(err):
		return notFound("recording")
	case err != nil:
		return errorf("postgres: delete recording %s: %w", id, err)
	case state != recsink.RecordingDeleted:
		return sqlstore.ErrNotFinished(id, state)
	}
	return nil
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
		return nil, "", errorf("postgres: list recordings: %w", err)
	}
	rs, next := page(rs, seqs, limit)
	return rs, next, nil
}

// sortKeys are the SQL sort key of each recsink.RecordingSorts field.
// Room names compare byte by byte (COLLATE "C"), as in SQLite, whatever the
// database's collation. Duration is in milliseconds, -1 while the recording
// has no end; the size is the object's, else the bytes received.
var sortKeys = map[string]string{
	recsink.SortStartDate: `start_date`,
	recsink.SortRoomName:  `(room_name COLLATE "C")`,
	recsink.SortDuration:  `COALESCE(ROUND(EXTRACT(EPOCH FROM (end_date - start_date)) * 1000)::bigint, -1)`,
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
	query := `SELECT ` + recordingColumns + ` FROM recordings WHERE org_id = $1`
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
		args = append(args, after, seq)
		k, s := len(args)-1, len(args)
		query += fmt.Sprintf(` AND (%[1]s %[2]s $%[3]d OR (%[1]s = $%[3]d AND seq %[2]s $%[4]d))`, key, cmp, k, s)
	}
	if f.RoomName != "" {
		args = append(args, f.RoomName)
		query += fmt.Sprintf(` AND room_name = $%d`, len(args))
	}
	if f.State != "" {
		args = append(args, f.State)
		query += fmt.Sprintf(` AND state = $%d`, len(args))
	}
	args = append(args, limit+1)
	query += fmt.Sprintf(` ORDER BY %s %s, seq %s LIMIT $%d`, key, dir, dir, len(args))

	rs, seqs, err := db.queryRecordings(ctx, query, args...)
	if err != nil {
		return nil, "", errorf("postgres: list recordings by %s: %w", f.Sort, err)
	}
	if len(rs) <= limit {
		return rs, "", nil
	}
	rs, last := rs[:limit], seqs[limit-1]
	// The key as SQL computes it, so that the next page compares like with like.
	var k any
	if err := db.pool.QueryRow(ctx, `SELECT `+key+` FROM recordings WHERE seq = $1`, last).Scan(&k); err != nil {
		return nil, "", errorf("postgres: list recordings by %s: %w", f.Sort, err)
	}
	next, err := sqlstore.EncodeSortCursor(f.Sort.String(), k, last)
	if err != nil {
		return nil, "", errorf("postgres: list recordings by %s: %w", f.Sort, err)
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
		return nil, errorf("postgres: list unfinished recordings: %w", err)
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
		return nil, errorf("postgres: list holding recordings: %w", err)
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
		&r.Owner.Node, &r.Owner.URL, &r.Owner.Epoch, &r.Owner.LeaseExpiresAt, &r.ChecksumAlgorithm, &r.Checksum, &r.Source); err != nil {
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
		return errorf("postgres: add event to recording %s: %w", recordingID, err)
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
		return nil, errorf("postgres: list events of recording %s: %w", recordingID, err)
	}
	return es, nil
}

// PutPart records a part confirmed by S3, replacing a part with the same
// number; an unknown recording is ENOTFOUND.
func (db *DB) PutPart(ctx context.Context, recordingID string, p recsink.Part) error {
	_, err := db.pool.Exec(ctx, `
		INSERT INTO recording_parts (recording_id, number, byte_offset, size, etag, checksum) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (recording_id, number) DO UPDATE SET
			byte_offset = excluded.byte_offset, size = excluded.size, etag = excluded.etag, checksum = excluded.checksum`,
		recordingID, p.Number, p.Offset, p.Size, p.ETag, p.Checksum)
	if isForeignKey(err) {
		return notFound("recording")
	} else if err != nil {
		return errorf("postgres: put part %d of recording %s: %w", p.Number, recordingID, err)
	}
	return nil
}

// ListParts returns the recording's confirmed parts by number; none for an
// unknown recording.
func (db *DB) ListParts(ctx context.Context, recordingID string) ([]recsink.Part, error) {
	ps, err := queryAll(ctx, db.pool, func(row pgx.Row) (recsink.Part, error) {
		var p recsink.Part
		err := row.Scan(&p.Number, &p.Offset, &p.Size, &p.ETag, &p.Checksum)
		return p, err
	}, `SELECT number, byte_offset, size, etag, checksum FROM recording_parts WHERE recording_id = $1 ORDER BY number`, recordingID)
	if err != nil {
		return nil, errorf("postgres: list parts of recording %s: %w", recordingID, err)
	}
	return ps, nil
}
