package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/secrets"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
	"github.com/recsink/recsink/sqlite"
)

// env is what services of one test share: a database, a spool folder and
// the master key.
type env struct {
	Store    recsink.Store
	SpoolDir string
	Box      *secrets.Box
}

// MustNewEnv returns an SQLite database and a spool folder in a temp dir.
func MustNewEnv(tb testing.TB) *env {
	tb.Helper()
	dir := tb.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "recsink.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	box, err := secrets.NewBox(key)
	if err != nil {
		tb.Fatal(err)
	}
	return &env{Store: db, SpoolDir: filepath.Join(dir, "spool"), Box: box}
}

// MustOpenSpool opens e's spool folder.
func (e *env) MustOpenSpool(tb testing.TB) *spool.Spool {
	tb.Helper()
	sp, err := spool.Open(e.SpoolDir, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return sp
}

// MustNewService returns a service over a new spool of e's folder with store
// and storage, not yet opened; it is closed when the test ends.
func (e *env) MustNewService(tb testing.TB, store recsink.Store, storage recsink.Storage) *service.Service {
	tb.Helper()
	return e.NewServiceWith(tb, store, storage, e.MustOpenSpool(tb))
}

// NewServiceWith returns a service over sp, not yet opened; it is closed
// when the test ends.
func (e *env) NewServiceWith(tb testing.TB, store recsink.Store, storage recsink.Storage, sp *spool.Spool, opts ...func(*service.Config)) *service.Service {
	cfg := service.Config{
		Store:    store,
		Storage:  storage,
		Box:      e.Box,
		Spool:    sp,
		Logger:   slog.New(slog.DiscardHandler),
		RetryMax: 100 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc := service.New(cfg)
	tb.Cleanup(func() { svc.Close() })
	return svc
}

// MustOpenService returns an opened service over e's store.
func (e *env) MustOpenService(tb testing.TB, storage recsink.Storage) *service.Service {
	tb.Helper()
	svc := e.MustNewService(tb, e.Store, storage)
	if err := svc.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return svc
}

// MustStartRecording creates an organization with a room and storage and
// starts a recording in it.
func MustStartRecording(tb testing.TB, svc *service.Service) (*recsink.Recording, string) {
	tb.Helper()
	return MustStartRecordingIn(tb, svc, MustCreateOrganization(tb, svc, "bucket"))
}

// organization is one made by MustCreateOrganization.
type organization struct{ ID, MeetingID string }

// MustCreateOrganization creates an organization whose storage is bucket,
// with a room.
func MustCreateOrganization(tb testing.TB, svc *service.Service, bucket string) organization {
	tb.Helper()
	ctx := context.Background()
	org, _, err := svc.CreateOrganization(ctx, recsink.NewID("org"))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := svc.CreateMeeting(ctx, org.ID, &recsink.Meeting{RoomName: "room-" + strings.ToLower(org.ID), EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	dest := recsink.Destination{Bucket: bucket, Region: "us-east-1"}
	if _, _, err := svc.SaveStorage(ctx, org.ID, recsink.ScopeOrganization, dest, recsink.AccessKey{ID: "AKIATEST", Secret: "secret"}); err != nil {
		tb.Fatal(err)
	}
	return organization{ID: org.ID, MeetingID: m.ID}
}

// MustStartRecordingIn starts a recording in org's room.
func MustStartRecordingIn(tb testing.TB, svc *service.Service, org organization) (*recsink.Recording, string) {
	tb.Helper()
	rec, token, err := svc.StartRecording(context.Background(), org.ID, org.MeetingID)
	if err != nil {
		tb.Fatal(err)
	}
	return rec, token
}

// MustAppend appends data at offset and returns the new offset.
func MustAppend(tb testing.TB, svc *service.Service, id, token string, offset int64, data []byte) int64 {
	tb.Helper()
	n, err := svc.Append(context.Background(), id, token, offset, bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("append %d bytes at %d: %v", len(data), offset, err)
	}
	return n
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// wantCode fails the test unless err is a *recsink.Error with code.
func wantCode(tb testing.TB, what string, err error, code string) *recsink.Error {
	tb.Helper()
	var e *recsink.Error
	if !errors.As(err, &e) || e.Code != code {
		tb.Fatalf("%s: got %v, want %s", what, err, code)
	}
	return e
}

// downStore is a store whose FindRecordingByID fails as a database that is
// down does, while down is set.
type downStore struct {
	recsink.Store
	down atomic.Bool
}

func (s *downStore) FindRecordingByID(ctx context.Context, id string) (*recsink.Recording, error) {
	if s.down.Load() {
		return nil, &recsink.Error{Code: recsink.EUNAVAILABLE, RetryAfter: 2, Message: "the database is unavailable; try again"}
	}
	return s.Store.FindRecordingByID(ctx, id)
}

// TestIngestDatabaseDown: a recording this node does not run is looked up
// in the store; a store that is down answers EUNAVAILABLE (503 with
// Retry-After), never EUNAUTHORIZED, which a recorder takes as final.
func TestIngestDatabaseDown(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	// The recording runs on one service; a second over the same database
	// has it only in the store.
	s3 := newFakeS3()
	rec, token := MustStartRecording(t, e.MustOpenService(t, s3))
	store := &downStore{Store: e.Store}
	other := e.MustNewService(t, store, s3)
	ctx := context.Background()

	store.down.Store(true)
	for _, id := range []string{rec.ID, "rec_unknown"} {
		_, err := other.Offset(ctx, id, token)
		if re := wantCode(t, "HEAD "+id+" with the database down", err, recsink.EUNAVAILABLE); re.RetryAfter != 2 {
			t.Errorf("HEAD %s: RetryAfter %d, want the store's 2", id, re.RetryAfter)
		}
		_, err = other.Append(ctx, id, token, 0, strings.NewReader("media"))
		wantCode(t, "PATCH "+id+" with the database down", err, recsink.EUNAVAILABLE)
	}

	store.down.Store(false)
	_, err := other.Offset(ctx, "rec_unknown", token)
	wantCode(t, "HEAD of a recording that does not exist", err, recsink.EUNAUTHORIZED)
	_, err = other.Offset(ctx, rec.ID, "wrong-token")
	wantCode(t, "HEAD with a wrong token", err, recsink.EUNAUTHORIZED)
	_, err = other.Append(ctx, rec.ID, "wrong-token", 0, strings.NewReader("media"))
	wantCode(t, "PATCH with a wrong token", err, recsink.EUNAUTHORIZED)
	if _, err := other.Offset(ctx, rec.ID, token); err != nil {
		t.Fatalf("HEAD with the database up: %v", err)
	}
}

// stallReader is the body of a connection that died silently: it yields
// data, then blocks until the test ends, as a read on a socket that receives
// nothing, no FIN and no RST does.
type stallReader struct {
	data    []byte
	stalled chan struct{} // closed once data is consumed
	unblock <-chan struct{}
	once    sync.Once
}

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.data) > 0 {
		n := copy(p, r.data)
		r.data = r.data[n:]
		return n, nil
	}
	r.once.Do(func() { close(r.stalled) })
	<-r.unblock
	return 0, io.ErrUnexpectedEOF
}

func newStallReader(t *testing.T, data []byte) *stallReader {
	unblock := make(chan struct{})
	t.Cleanup(func() { close(unblock) })
	return &stallReader{data: data, stalled: make(chan struct{}), unblock: unblock}
}

type appendResult struct {
	n   int64
	err error
}

// appendStalled starts an Append of body at offset, as a request whose
// connection dies mid-body, and returns once body has been read to its
// stall (stalled closed); the Append's result comes on the channel.
func appendStalled(t *testing.T, ctx context.Context, svc *service.Service, rec *recsink.Recording, token string, offset int64, body io.Reader, stalled <-chan struct{}) <-chan appendResult {
	t.Helper()
	res := make(chan appendResult, 1)
	go func() {
		n, err := svc.Append(ctx, rec.ID, token, offset, body)
		res <- appendResult{n, err}
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("the body was not read to its stall")
	}
	return res
}

// stalledResult waits for the result of the stalled request.
func stalledResult(t *testing.T, res <-chan appendResult) appendResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled request did not return")
		return appendResult{}
	}
}

// TestIngestTakeOver: a recorder whose connection died mid-body reconnects.
// The new request takes over at once: the stalled one is cut off, keeps its
// synced bytes acknowledged and ends with 409, and the new one appends.
func TestIngestTakeOver(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	svc := e.MustOpenService(t, newFakeS3())
	rec, token := MustStartRecording(t, svc)
	ctx := context.Background()

	first := randomBytes(300 << 10)
	stall := newStallReader(t, first)
	old := appendStalled(t, ctx, svc, rec, token, 0, stall, stall.stalled)
	// The spool syncs within its SyncInterval of the bytes arriving.
	waitFor(t, 20*time.Second, "the stalled request's bytes to be acknowledged", func() bool {
		off, err := svc.Offset(ctx, rec.ID, token)
		return err == nil && off == int64(len(first))
	})

	second := randomBytes(100 << 10)
	began := time.Now()
	n, err := svc.Append(ctx, rec.ID, token, int64(len(first)), bytes.NewReader(second))
	took := time.Since(began)
	if err != nil {
		t.Fatalf("the reconnected request: %v", err)
	}
	if want := int64(len(first) + len(second)); n != want {
		t.Fatalf("offset after the reconnected request: %d, want %d", n, want)
	}
	t.Logf("a reconnected request took over from a stalled one in %s", took)
	if took > time.Second {
		t.Errorf("the reconnected request took %s, want at once (the old wait was 5 s)", took)
	}
	res := stalledResult(t, old)
	re := wantCode(t, "the stalled request", res.err, recsink.ECONFLICT)
	if !strings.Contains(re.Message, "superseded") {
		t.Errorf("the stalled request's message: %q, want it to say it was superseded", re.Message)
	}
	// The HTTP server ends the blocked Read of its body when told.
	var cut interface{ BodyAbandoned() bool }
	if !errors.As(res.err, &cut) || !cut.BodyAbandoned() {
		t.Errorf("the stalled request's error %T does not say its body is abandoned", res.err)
	}
	if res.n != int64(len(first)) {
		t.Errorf("the stalled request acknowledged %d bytes, want %d", res.n, len(first))
	}
	// The offset check of tus still holds for a request that takes over.
	stall2 := newStallReader(t, nil)
	old = appendStalled(t, ctx, svc, rec, token, n, stall2, stall2.stalled)
	_, err = svc.Append(ctx, rec.ID, token, 5, strings.NewReader("x"))
	wantCode(t, "PATCH at a wrong offset", err, recsink.ECONFLICT)
	wantCode(t, "the second stalled request", stalledResult(t, old).err, recsink.ECONFLICT)
	if off, _ := svc.Offset(ctx, rec.ID, token); off != int64(len(first)+len(second)) {
		t.Fatalf("offset %d, want %d", off, len(first)+len(second))
	}
}

// interruptibleStall is a stallReader that Interrupt unblocks: an HTTP
// request's body (recsink.InterruptibleBody), which the service reads
// directly. It counts the Reads running.
type interruptibleStall struct {
	*stallReader
	interrupted chan struct{} // the stallReader's unblock, closed by Interrupt
	stop        sync.Once
	reading     atomic.Int32
}

func newInterruptibleStall(data []byte) *interruptibleStall {
	interrupted := make(chan struct{})
	return &interruptibleStall{
		stallReader: &stallReader{data: data, stalled: make(chan struct{}), unblock: interrupted},
		interrupted: interrupted,
	}
}

func (r *interruptibleStall) CanInterrupt() bool { return true }

func (r *interruptibleStall) Interrupt() { r.stop.Do(func() { close(r.interrupted) }) }

func (r *interruptibleStall) Read(p []byte) (int, error) {
	r.reading.Add(1)
	defer r.reading.Add(-1)
	return r.stallReader.Read(p)
}

// TestIngestInterruptsBody: a body that can be interrupted is read with no
// goroutine of the service's own. A newer request or a stop interrupts its
// blocked Read, and the request ends with 409 once that Read has returned,
// its synced bytes acknowledged: nothing is left reading the body.
func TestIngestInterruptsBody(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"NewerRequest", "Stop"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			e := MustNewEnv(t)
			svc := e.MustOpenService(t, newFakeS3())
			rec, token := MustStartRecording(t, svc)
			ctx := context.Background()

			first := randomBytes(200 << 10)
			body := newInterruptibleStall(first)
			old := appendStalled(t, ctx, svc, rec, token, 0, body, body.stalled)
			waitFor(t, 20*time.Second, "the stalled request's bytes to be acknowledged", func() bool {
				off, err := svc.Offset(ctx, rec.ID, token)
				return err == nil && off == int64(len(first))
			})

			switch by {
			case "NewerRequest":
				if _, err := svc.Append(ctx, rec.ID, token, int64(len(first)), strings.NewReader("more")); err != nil {
					t.Fatalf("the newer request: %v", err)
				}
			case "Stop":
				if _, err := svc.StopRecording(ctx, rec.OrgID, rec.ID); err != nil {
					t.Fatal(err)
				}
			}
			res := stalledResult(t, old)
			wantCode(t, "the stalled request", res.err, recsink.ECONFLICT)
			if res.n != int64(len(first)) {
				t.Errorf("the stalled request acknowledged %d bytes, want %d", res.n, len(first))
			}
			select {
			case <-body.interrupted:
			default:
				t.Error("the body was not interrupted: the service read it through a goroutine of its own")
			}
			if n := body.reading.Load(); n != 0 {
				t.Errorf("%d Reads of the body still run after its request ended", n)
			}
		})
	}
}

// TestIngestRequestEndDoesNotInterrupt: when the request's own context ends
// (its transport failed a Read: a body gone silent, a broken connection),
// the service does not interrupt the body. The transport's error is the
// recorder's answer (408, 400), and an interrupt would replace it: a silent
// PUT was once answered 499 instead of 408.
func TestIngestRequestEndDoesNotInterrupt(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	svc := e.MustOpenService(t, newFakeS3())
	rec, token := MustStartRecording(t, svc)

	first := randomBytes(50 << 10)
	body := newInterruptibleStall(first)
	ctx, cancel := context.WithCancel(context.Background())
	res := appendStalled(t, ctx, svc, rec, token, 0, body, body.stalled)
	cancel()
	// A window in which no interrupt may come: the transport, not the
	// service, ends this Read.
	time.Sleep(200 * time.Millisecond)
	select {
	case <-body.interrupted:
		t.Fatal("the service interrupted the body when the request's own context ended")
	default:
	}
	body.Interrupt() // the transport's failure, standing in
	if r := stalledResult(t, res); r.n != int64(len(first)) {
		t.Errorf("the request acknowledged %d bytes, want %d", r.n, len(first))
	}
}

// TestIngestStopWhileStalled: a stop does not wait for a request whose
// connection died mid-body; the request ends with 409 and its bytes count.
func TestIngestStopWhileStalled(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	svc := e.MustOpenService(t, newFakeS3())
	rec, token := MustStartRecording(t, svc)
	ctx := context.Background()

	stall := newStallReader(t, randomBytes(10<<10))
	old := appendStalled(t, ctx, svc, rec, token, 0, stall, stall.stalled)
	began := time.Now()
	stopped, err := svc.StopRecording(ctx, rec.OrgID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stop with a stalled request: %s", time.Since(began))
	if took := time.Since(began); took > time.Second {
		t.Errorf("the stop took %s, want at once", took)
	}
	res := stalledResult(t, old)
	wantCode(t, "the stalled request", res.err, recsink.ECONFLICT)
	if stopped.BytesReceived != 10<<10 || res.n != 10<<10 {
		t.Errorf("stopped at %d bytes, request acknowledged %d; want %d", stopped.BytesReceived, res.n, 10<<10)
	}
}

// TestOpenWhileS3Hangs: after a restart with S3 hanging, Open returns at
// once and the recording takes HEAD and PATCH from its spool; its uploads
// wait until S3 has said which parts it holds, then start.
func TestOpenWhileS3Hangs(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	// Before the restart, uploads hang: the complete part stays unconfirmed.
	s3 := newFakeS3()
	s3.uploadPart = func(ctx context.Context, _ int32) error {
		<-ctx.Done()
		return ctx.Err()
	}
	svc := e.MustNewService(t, e.Store, s3)
	if err := svc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, token := MustStartRecording(t, svc)
	data := randomBytes(spool.MinPartSize + 1000)
	off := MustAppend(t, svc, rec.ID, token, 0, data)
	// More recordings to resume, each of its own organization, each with a
	// little media.
	const others = 19
	type started struct{ id, token string }
	var more []started
	for range others {
		r, tok := MustStartRecording(t, svc)
		MustAppend(t, svc, r.ID, tok, 0, []byte("media"))
		more = append(more, started{r.ID, tok})
	}
	svc.Close()

	// After it, uploads go through and ListParts hangs until answered.
	answer := make(chan struct{})
	s3.mu.Lock()
	s3.uploadPart = nil
	s3.listParts = func(ctx context.Context) ([]recsink.Part, error) {
		select {
		case <-answer:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s3.mu.Unlock()
	s3.lists.Store(0)
	svc = e.MustNewService(t, e.Store, s3)
	began := time.Now()
	if err := svc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("Open with %d recordings to resume and ListParts hanging: %s", others+1, took)
	if took > 5*time.Second {
		t.Errorf("Open took %s, want well under one ListParts' 10 s", took)
	}
	ctx := context.Background()
	if got, err := svc.Offset(ctx, rec.ID, token); err != nil || got != off {
		t.Fatalf("HEAD while reconciling: %d, %v; want %d", got, err, off)
	}
	off = MustAppend(t, svc, rec.ID, token, off, []byte("more media"))
	for _, r := range more {
		if n := MustAppend(t, svc, r.id, r.token, 5, []byte(" more")); n != 10 {
			t.Fatalf("PATCH while reconciling: offset %d, want 10", n)
		}
	}
	// Reconciling takes an upload slot: 16 in all, one per organization.
	waitFor(t, 20*time.Second, "ListParts to be asked", func() bool { return s3.lists.Load() == 16 })
	if up := s3.uploaded(); len(up) != 0 {
		t.Fatalf("parts %v uploaded before S3 said which it holds", up)
	}

	close(answer)
	waitFor(t, 20*time.Second, "part 1 to be uploaded once reconciled", func() bool {
		up := s3.uploaded()
		return len(up) == 1 && up[0] == 1
	})
	if got, err := svc.Offset(ctx, rec.ID, token); err != nil || got != off {
		t.Fatalf("HEAD after: %d, %v; want %d", got, err, off)
	}
}

// TestFailClosesSpool: a recording that fails lets go of its spool file
// but keeps its data on disk.
func TestFailClosesSpool(t *testing.T) {
	t.Parallel()
	e := MustNewEnv(t)
	gone := newFakeS3()
	gone.uploadPart = func(context.Context, int32) error {
		return &recsink.StorageError{Op: "UploadPart", Code: "NoSuchUpload", StatusCode: 404, Err: errors.New("no such upload")}
	}
	sp := e.MustOpenSpool(t)
	svc := e.NewServiceWith(t, e.Store, gone, sp)
	if err := svc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec, token := MustStartRecording(t, svc)
	ctx := context.Background()
	const size = spool.MinPartSize + 10
	// Part 1's upload, and so the failure, may come before the request
	// ends: it is then cut off with 409, its bytes kept.
	n, err := svc.Append(ctx, rec.ID, token, 0, bytes.NewReader(randomBytes(size)))
	if err != nil && recsink.ErrorCode(err) != recsink.ECONFLICT || n < spool.MinPartSize {
		t.Fatalf("append: %d, %v; want at least part 1's bytes", n, err)
	}
	waitFor(t, 20*time.Second, "the recording to fail", func() bool {
		got, _, err := svc.FindRecording(ctx, rec.OrgID, rec.ID)
		return err == nil && got.State == recsink.RecordingFailed
	})
	// The spool refuses to open a recording's file twice: it opens once
	// the failed recorder has closed it.
	var f *spool.File
	waitFor(t, 20*time.Second, "the failed recording's spool file to be closed", func() bool {
		var err error
		f, err = sp.Open(rec.ID, spool.Layout{})
		return err == nil
	})
	defer f.Close()
	if f.Offset() != n {
		t.Errorf("the failed recording's spool holds %d bytes, want the %d acknowledged", f.Offset(), n)
	}
	_, err = svc.Append(ctx, rec.ID, token, -1, strings.NewReader("late"))
	wantCode(t, "PATCH of a failed recording", err, recsink.ECONFLICT)
}
