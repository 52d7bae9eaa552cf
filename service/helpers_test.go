package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recsink/recsink"
	"github.com/recsink/recsink/internal/crc"
	"github.com/recsink/recsink/service"
	"github.com/recsink/recsink/spool"
	"github.com/recsink/recsink/sqlite"
)

// MustOpenStore opens a SQLite store in a temp dir, wrapped in a spy.
func MustOpenStore(tb testing.TB) *spyStore {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "recsink.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return &spyStore{Store: db, states: map[string][]string{}, writes: map[string]int{}, attempts: map[string]int{}}
}

// another returns a spy of its own over the same database: one per node.
func (s *spyStore) another() *spyStore {
	return &spyStore{Store: s.Store, states: map[string][]string{}, writes: map[string]int{}, attempts: map[string]int{}}
}

// spyStore records the writes made to recordings, and can make
// CreateRecording fail.
type spyStore struct {
	recsink.Store

	// createFails makes CreateRecording fail: "before" without writing,
	// "after" once the row is written (a reset at the commit).
	createFails atomic.Value // string
	// renewFails makes RenewLeases fail, as for a node cut off (or paused).
	renewFails atomic.Bool
	// findFails makes FindRecordingByID fail.
	findFails atomic.Bool

	mu     sync.Mutex
	states map[string][]string // recording ID → states saved, in order
	writes map[string]int      // recording ID → rows written (updates, parts, events)
	// attempts counts the writes tried, refused ones included.
	attempts map[string]int
}

func (s *spyStore) RenewLeases(ctx context.Context, node string, ttl time.Duration) (map[string]int64, error) {
	if s.renewFails.Load() {
		return nil, &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the database is unavailable; try again", RetryAfter: 2}
	}
	return s.Store.RenewLeases(ctx, node, ttl)
}

func (s *spyStore) FindRecordingByID(ctx context.Context, id string) (*recsink.Recording, error) {
	if s.findFails.Load() {
		return nil, &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the database is unavailable; try again", RetryAfter: 2}
	}
	return s.Store.FindRecordingByID(ctx, id)
}

func (s *spyStore) tried(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[id]++
}

func (s *spyStore) attemptCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[id]
}

func (s *spyStore) CreateRecording(ctx context.Context, r *recsink.Recording, ttl time.Duration) error {
	mode, _ := s.createFails.Load().(string)
	if mode == "before" {
		return &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the database is unavailable; try again", RetryAfter: 2}
	}
	if err := s.Store.CreateRecording(ctx, r, ttl); err != nil {
		return err
	}
	if mode == "after" {
		return fmt.Errorf("commit: %w", &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the database is unavailable; try again", RetryAfter: 2})
	}
	return nil
}

// UpdateRecording records every state a node tries to save, saved or not:
// a write refused as going backwards shows as one.
func (s *spyStore) UpdateRecording(ctx context.Context, r *recsink.Recording) error {
	s.tried(r.ID)
	err := s.Store.UpdateRecording(ctx, r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.states[r.ID] = append(s.states[r.ID], r.State)
		s.writes[r.ID]++
	} else if recsink.ErrorCode(err) == recsink.ECONFLICT && !errors.Is(err, recsink.ErrLeaseLost) {
		s.states[r.ID] = append(s.states[r.ID], r.State+" (refused)")
	}
	return err
}

func (s *spyStore) PutPart(ctx context.Context, id string, p recsink.Part) error {
	s.tried(id)
	err := s.Store.PutPart(ctx, id, p)
	if err == nil {
		s.mu.Lock()
		s.writes[id]++
		s.mu.Unlock()
	}
	return err
}

func (s *spyStore) AddRecordingEvent(ctx context.Context, id string, e recsink.RecordingEvent) error {
	s.tried(id)
	err := s.Store.AddRecordingEvent(ctx, id, e)
	if err == nil {
		s.mu.Lock()
		s.writes[id]++
		s.mu.Unlock()
	}
	return err
}

func (s *spyStore) savedStates(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.states[id]...)
}

func (s *spyStore) writeCount(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes[id]
}

// seq orders what the fakes see: S3 calls and queued events.
var seq atomic.Int64

// fakeS3 is an in-memory S3 that keeps sizes, not bytes. With checksums
// set, its multipart uploads take a full-object CRC64NVME, as S3 does, and
// it keeps each part's CRC (off by default: a CRC of every part costs time
// under -race that timing tests do not allow for).
type fakeS3 struct {
	checksums bool
	// lastUse is the seq of each access key's last S3 call.
	lastUse sync.Map // key ID → int64
	mu      sync.Mutex
	objects map[string]fakeObject // key → size and checksum
	uploads map[string]map[int32]recsink.Part
	// badDigest counts, per part number, the UploadParts still to be
	// refused with BadDigest (bytes changed on the way); completeDigest
	// refuses every completion with BadDigest.
	badDigest      map[int32]int
	completeDigest bool
	refused        map[string]bool // access key IDs S3 refuses
	// readRefused are the access key IDs whose HeadObject S3 refuses.
	readRefused map[string]bool
	next        int
	// refusals counts the UploadParts refused.
	refusals atomic.Int64
	// partDelay, if set, returns how long an UploadPart takes.
	partDelay func() time.Duration
	// uploadPart, if set, is called by each UploadPart first and fails it
	// with its error; listParts, if set, answers ListParts: for
	// interleavings a real server cannot be made to produce on cue.
	uploadPart func(ctx context.Context, n int32) error
	listParts  func(ctx context.Context) ([]recsink.Part, error)
	lists      atomic.Int32 // ListParts calls
	partsDone  []int32      // part numbers uploaded, in order
}

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string]fakeObject{}, uploads: map[string]map[int32]recsink.Part{}, refused: map[string]bool{},
		badDigest: map[int32]int{}, readRefused: map[string]bool{}}
}

type fakeObject struct {
	size     int64
	checksum recsink.Checksum
}

// fakeCRC is the full-object checksum the fake S3 takes.
var fakeCRC = crc.ByName("CRC64NVME")

func (f *fakeS3) refuse(keyID string, refused bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused[keyID] = refused
}

// uploaded returns the part numbers uploaded, in order.
func (f *fakeS3) uploaded() []int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.partsDone)
}

func (f *fakeS3) openUploads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uploads)
}

func (f *fakeS3) Client(_ context.Context, _ recsink.Destination, key recsink.AccessKey) (recsink.StorageClient, error) {
	return &fakeClient{s: f, keyID: key.ID}, nil
}

// s3View is one node's way to the shared fake S3: it counts that node's
// writes by object key and can fail its completions.
type s3View struct {
	*fakeS3
	completeFails atomic.Bool
	mu            sync.Mutex
	writes        map[string]int // object key → S3 writes tried
}

func (f *fakeS3) view() *s3View { return &s3View{fakeS3: f, writes: map[string]int{}} }

func (v *s3View) Client(_ context.Context, _ recsink.Destination, key recsink.AccessKey) (recsink.StorageClient, error) {
	return &fakeClient{s: v.fakeS3, v: v, keyID: key.ID}, nil
}

func (v *s3View) wrote(key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.writes[key]++
}

func (v *s3View) writeCount(key string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.writes[key]
}

func (f *fakeS3) Check(context.Context, recsink.Destination, recsink.AccessKey) (*recsink.CheckReport, error) {
	return &recsink.CheckReport{OK: true, Region: "us-east-1"}, nil
}

type fakeClient struct {
	s     *fakeS3
	v     *s3View // nil when not opened through a view
	keyID string
}

func (c *fakeClient) used() { c.s.lastUse.Store(c.keyID, seq.Add(1)) }

func (c *fakeClient) wrote(key string) {
	c.used()
	if c.v != nil {
		c.v.wrote(key)
	}
}

func (c *fakeClient) CreateMultipartUpload(_ context.Context, key, _ string, _ map[string]string, checksums ...recsink.ChecksumAlgorithm) (recsink.Upload, error) {
	c.wrote(key)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.next++
	id := fmt.Sprintf("upload-%d", c.s.next)
	c.s.uploads[id] = map[int32]recsink.Part{}
	up := recsink.Upload{ID: id}
	if c.s.checksums && len(checksums) > 0 && checksums[0] == recsink.ChecksumCRC64NVME {
		up.Checksum = recsink.ChecksumCRC64NVME
	}
	return up, nil
}

func (c *fakeClient) UploadPart(ctx context.Context, key string, up recsink.Upload, n int32, body io.ReadSeeker, size int64) (recsink.Part, error) {
	c.wrote(key)
	c.s.mu.Lock()
	refused, delay, hook := c.s.refused[c.keyID], c.s.partDelay, c.s.uploadPart
	c.s.mu.Unlock()
	if refused {
		c.s.refusals.Add(1)
		return recsink.Part{}, &recsink.StorageError{Op: "UploadPart", Code: "InvalidAccessKeyId", StatusCode: 403}
	}
	if delay != nil {
		select {
		case <-time.After(delay()):
		case <-ctx.Done():
			return recsink.Part{}, &recsink.StorageError{Op: "UploadPart", Err: ctx.Err()}
		}
	}
	if hook != nil {
		if err := hook(ctx, n); err != nil {
			return recsink.Part{}, err
		}
	}
	h := fakeCRC.New()
	var w io.Writer = io.Discard
	if up.Checksum != recsink.ChecksumNone {
		w = h
	}
	got, err := io.Copy(w, body)
	if err != nil || got != size {
		return recsink.Part{}, fmt.Errorf("read part %d: %d of %d bytes: %v", n, got, size, err)
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.badDigest[n] > 0 {
		c.s.badDigest[n]--
		return recsink.Part{}, &recsink.StorageError{Op: "UploadPart", Code: "BadDigest", StatusCode: 400}
	}
	parts, ok := c.s.uploads[up.ID]
	if !ok {
		return recsink.Part{}, &recsink.StorageError{Op: "UploadPart", Code: "NoSuchUpload", StatusCode: 404}
	}
	p := recsink.Part{Number: n, Size: size, ETag: fmt.Sprintf(`"etag-%d"`, n)}
	if up.Checksum != recsink.ChecksumNone {
		p.Checksum = fakeCRC.Encode(h.Sum64())
	}
	parts[n] = p
	c.s.partsDone = append(c.s.partsDone, n)
	return p, nil
}

func (c *fakeClient) ListParts(ctx context.Context, _, uploadID string) ([]recsink.Part, error) {
	c.used()
	c.s.lists.Add(1)
	c.s.mu.Lock()
	if hook := c.s.listParts; hook != nil {
		c.s.mu.Unlock()
		return hook(ctx)
	}
	defer c.s.mu.Unlock()
	var out []recsink.Part
	for _, p := range c.s.uploads[uploadID] {
		out = append(out, p)
	}
	return out, nil
}

func (c *fakeClient) CompleteMultipartUpload(_ context.Context, key string, up recsink.Upload, parts []recsink.Part, checksum string) (recsink.Checksum, error) {
	c.wrote(key)
	if c.v != nil && c.v.completeFails.Load() {
		return recsink.Checksum{}, &recsink.StorageError{Op: "CompleteMultipartUpload", Code: "ServiceUnavailable", StatusCode: 503}
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	held, ok := c.s.uploads[up.ID]
	if !ok {
		return recsink.Checksum{}, &recsink.StorageError{Op: "CompleteMultipartUpload", Code: "NoSuchUpload", StatusCode: 404}
	}
	if c.s.completeDigest {
		return recsink.Checksum{}, &recsink.StorageError{Op: "CompleteMultipartUpload", Code: "BadDigest", StatusCode: 400}
	}
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(a, b recsink.Part) int { return int(a.Number - b.Number) })
	var size int64
	var full uint64
	for _, p := range sorted {
		if held[p.Number].Size != p.Size {
			return recsink.Checksum{}, &recsink.StorageError{Op: "CompleteMultipartUpload", Code: "InvalidPart", StatusCode: 400}
		}
		v, _ := fakeCRC.Decode(held[p.Number].Checksum)
		full = fakeCRC.Combine(full, v, p.Size)
		size += p.Size
	}
	var sum recsink.Checksum
	if up.Checksum != recsink.ChecksumNone {
		sum = recsink.Checksum{Algorithm: up.Checksum, Type: "FULL_OBJECT", Value: fakeCRC.Encode(full)}
		if checksum != "" && checksum != sum.Value {
			return recsink.Checksum{}, &recsink.StorageError{Op: "CompleteMultipartUpload", Code: "BadDigest", StatusCode: 400}
		}
	}
	c.s.objects[key] = fakeObject{size: size, checksum: sum}
	delete(c.s.uploads, up.ID)
	return sum, nil
}

func (c *fakeClient) AbortMultipartUpload(_ context.Context, key, uploadID string) error {
	c.wrote(key)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	delete(c.s.uploads, uploadID)
	return nil
}

func (c *fakeClient) PutObject(_ context.Context, key, _ string, _ map[string]string, _ io.ReadSeeker, size int64) error {
	c.wrote(key)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.objects[key] = fakeObject{size: size}
	return nil
}

func (c *fakeClient) HeadObject(_ context.Context, key string) (int64, map[string]string, error) {
	c.used()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.readRefused[c.keyID] {
		return 0, nil, &recsink.StorageError{Op: "HeadObject", StatusCode: 403}
	}
	o, ok := c.s.objects[key]
	if !ok {
		return 0, nil, &recsink.StorageError{Op: "HeadObject", StatusCode: 404}
	}
	return o.size, nil, nil
}

func (c *fakeClient) StatObject(_ context.Context, key string) (recsink.ObjectInfo, error) {
	c.used()
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	o, ok := c.s.objects[key]
	if !ok {
		return recsink.ObjectInfo{}, &recsink.StorageError{Op: "HeadObject", StatusCode: 404}
	}
	return recsink.ObjectInfo{Size: o.size, Checksum: o.checksum}, nil
}

func (c *fakeClient) PresignGet(_ context.Context, key string, validFor time.Duration) (string, error) {
	c.used()
	return fmt.Sprintf("https://fake-s3.invalid/%s?key=%s&expires=%d", key, c.keyID, int(validFor.Seconds())), nil
}

func (c *fakeClient) ObjectExists(ctx context.Context, key string) (bool, error) {
	_, _, err := c.HeadObject(ctx, key)
	var se *recsink.StorageError
	if errors.As(err, &se) && se.StatusCode == 404 {
		return false, nil
	}
	return err == nil, err
}

func (c *fakeClient) DeleteObject(_ context.Context, key string) error {
	c.wrote(key)
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	delete(c.s.objects, key)
	return nil
}

// plainBox "seals" secrets as they are: these tests are not about secrets.
type plainBox struct{}

func (plainBox) Seal(p, _ []byte) ([]byte, error) { return append([]byte(nil), p...), nil }
func (plainBox) Open(c, _ []byte) ([]byte, error) { return append([]byte(nil), c...), nil }

// notes is a webhook Notifier that counts what was enqueued.
type notes struct {
	mu      sync.Mutex
	calls   map[string]int           // "type id" → EnqueueOnce calls
	at      map[string]int64         // "type id" → seq of the first call
	waiters map[string]chan struct{} // "type id" → closed at the first call
	data    map[string]any           // "type subject" → the last event's data as JSON
}

func (n *notes) EnqueueOnce(_ context.Context, _, id, typ string, data any) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.data == nil {
		n.data = map[string]any{}
	}
	var m map[string]any
	b, _ := json.Marshal(data)
	_ = json.Unmarshal(b, &m)
	if rid, ok := m["recordingId"].(string); ok {
		n.data[typ+" "+rid] = m
	}
	if n.calls == nil {
		n.calls = map[string]int{}
	}
	n.calls[typ+" "+id]++
	if n.calls[typ+" "+id] == 1 {
		if n.at == nil {
			n.at = map[string]int64{}
		}
		n.at[typ+" "+id] = seq.Add(1)
		close(n.waiter(typ, id))
	}
	return nil
}

func (n *notes) waiter(typ, id string) chan struct{} {
	if n.waiters == nil {
		n.waiters = map[string]chan struct{}{}
	}
	ch, ok := n.waiters[typ+" "+id]
	if !ok {
		ch = make(chan struct{})
		n.waiters[typ+" "+id] = ch
	}
	return ch
}

// queued returns a channel closed once an event of type typ and ID id is
// enqueued.
func (n *notes) queued(typ, id string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waiter(typ, id)
}

func (n *notes) seqOf(typ, id string) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.at[typ+" "+id]
}

// has reports whether the last event of type typ about recording id has
// field equal to want.
func (n *notes) has(typ, id, field, want string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, _ := n.data[typ+" "+id].(map[string]any)
	return m[field] == want
}

func (n *notes) count(typ, id string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[typ+" "+id]
}

// node is one recsink node's service over a shared store and S3.
type node struct {
	*service.Service
	name  string
	spool string // the spool's directory
	notes *notes
}

// MustOpenNode opens a service named name on store and s3 with its own
// spool; edit adjusts its configuration.
func MustOpenNode(tb testing.TB, store recsink.Store, s3 recsink.Storage, name string, edit func(*service.Config)) *node {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "spool")
	sp, err := spool.Open(dir, 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	n := &node{name: name, spool: dir, notes: &notes{}}
	cfg := service.Config{
		Store:    store,
		Storage:  s3,
		Box:      plainBox{},
		Spool:    sp,
		Logger:   slog.New(slog.DiscardHandler),
		RetryMax: 10 * time.Second,
		Notifier: n.notes,
		NodeID:   name,
		NodeURL:  "http://" + name + ".invalid",
	}
	if os.Getenv("RECSINK_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	if edit != nil {
		edit(&cfg)
	}
	n.Service = service.New(cfg)
	if err := n.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// MustSetUp creates an organization with a storage key and a meeting, and
// returns their IDs.
func MustSetUp(tb testing.TB, n *node, keyID string) (orgID, meetingID string) {
	tb.Helper()
	ctx := context.Background()
	org, _, err := n.CreateOrganization(ctx, "org-"+recsink.RandomToken(6))
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := n.SaveStorage(ctx, org.ID, recsink.ScopeOrganization, recsink.Destination{Bucket: "recordings", FileFormat: recsink.FormatMKV}, recsink.AccessKey{ID: keyID, Secret: "secret-" + keyID}); err != nil {
		tb.Fatal(err)
	}
	m, err := n.CreateMeeting(ctx, org.ID, &recsink.Meeting{RoomName: "/room-" + recsink.RandomToken(4), EndDate: time.Now().Add(time.Hour)}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return org.ID, m.ID
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			tb.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(2 * time.Millisecond) // the poll interval
	}
	return time.Since(start)
}

// state returns the recording's state as n shows it.
func state(tb testing.TB, n *node, orgID, id string) string {
	tb.Helper()
	rec, _, err := n.FindRecording(context.Background(), orgID, id)
	if err != nil {
		tb.Fatal(err)
	}
	return rec.State
}

func running(n *node) int {
	total := 0
	for _, c := range n.ActiveRecordings() {
		total += c
	}
	return total
}

// checkForward fails unless states only ever moved forward.
func checkForward(tb testing.TB, id string, states []string) {
	tb.Helper()
	prev := recsink.RecordingRecording
	for i, st := range states {
		if !recsink.CanTransition(prev, st) {
			tb.Fatalf("recording %s: saved %s after %s (states saved: %s)", id, st, prev, strings.Join(states[:i+1], ", "))
		}
		prev = st
	}
}
