package http_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/recsink/recsink"
)

// The fakes answer like a healthy service by default; a test replaces one
// behaviour by setting its Fn field before sending requests.

// testDBDownKey is an API key whose lookup fails as a store whose database
// is down does.
const testDBDownKey = "rsk_db_down"

// testAPIKey2 is the API key of a second organization.
const testAPIKey2 = "rsk_second_org"

// errDBDown is what the stores return while the database is down.
var errDBDown = &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "the database is unavailable; try again", RetryAfter: 2}

// OrganizationService knows one organization, with testAPIKey.
type OrganizationService struct{}

var _ recsink.OrganizationService = OrganizationService{}

func (OrganizationService) CreateOrganization(ctx context.Context, name string) (*recsink.Organization, string, error) {
	return &recsink.Organization{ID: testOrgID, Name: name}, testAPIKey, nil
}

func (OrganizationService) Authenticate(ctx context.Context, apiKey string) (*recsink.Organization, error) {
	if apiKey == testDBDownKey {
		return nil, fmt.Errorf("find organization: %w", errDBDown)
	}
	if apiKey == testAPIKey2 {
		return &recsink.Organization{ID: "org_2", Name: "Second"}, nil
	}
	if apiKey != testAPIKey {
		return nil, recsink.Errorf(recsink.EUNAUTHORIZED, "invalid API key")
	}
	return &recsink.Organization{ID: testOrgID, Name: "Test"}, nil
}

// StorageService is a fake recsink.StorageService.
type StorageService struct {
	mu    sync.Mutex
	Saved []SavedStorage // every SaveStorage call

	SaveStorageFn     func(ctx context.Context, orgID, scope string, dest recsink.Destination, key recsink.AccessKey) (*recsink.Credential, *recsink.CheckReport, error)
	CheckStorageFn    func(ctx context.Context, orgID, scope string, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.CheckReport, error)
	FindStorageFn     func(ctx context.Context, orgID, scope string) (*recsink.Credential, error)
	DeleteStorageFn   func(ctx context.Context, orgID, scope string) error
	ListCredentialsFn func(ctx context.Context, orgID string) ([]*recsink.CredentialUsage, error)
}

// SavedStorage is the arguments of one SaveStorage call.
type SavedStorage struct {
	OrgID, Scope string
	Dest         recsink.Destination
	Key          recsink.AccessKey
}

var _ recsink.StorageService = (*StorageService)(nil)

func testCredential(scope string, dest recsink.Destination) *recsink.Credential {
	return &recsink.Credential{ID: "cred_1", OrgID: testOrgID, Scope: scope, Destination: dest, AccessKeyID: testKeyID, SecretCiphertext: []byte(testSecret), CreatedAt: date()}
}

func okReport(region string) *recsink.CheckReport {
	return &recsink.CheckReport{OK: true, Region: region, Checks: []recsink.Check{{Name: "HeadBucket", Permission: "s3:ListBucket", OK: true}}}
}

func (s *StorageService) SaveStorage(ctx context.Context, orgID, scope string, dest recsink.Destination, key recsink.AccessKey) (*recsink.Credential, *recsink.CheckReport, error) {
	s.mu.Lock()
	s.Saved = append(s.Saved, SavedStorage{orgID, scope, dest, key})
	s.mu.Unlock()
	if s.SaveStorageFn != nil {
		return s.SaveStorageFn(ctx, orgID, scope, dest, key)
	}
	if dest.Region == "" {
		dest.Region = "eu-west-1"
	}
	c := testCredential(scope, dest)
	c.AccessKeyID = key.ID
	return c, okReport(dest.Region), nil
}

func (s *StorageService) CheckStorage(ctx context.Context, orgID, scope string, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.CheckReport, error) {
	if s.CheckStorageFn != nil {
		return s.CheckStorageFn(ctx, orgID, scope, dest, key)
	}
	return okReport("eu-west-1"), nil
}

func (s *StorageService) FindStorage(ctx context.Context, orgID, scope string) (*recsink.Credential, error) {
	if s.FindStorageFn != nil {
		return s.FindStorageFn(ctx, orgID, scope)
	}
	return testCredential(scope, recsink.Destination{Provider: "s3", Bucket: "my-bucket", Prefix: "rec", Region: "eu-west-1", FileFormat: "mkv"}), nil
}

func (s *StorageService) DeleteStorage(ctx context.Context, orgID, scope string) error {
	if s.DeleteStorageFn != nil {
		return s.DeleteStorageFn(ctx, orgID, scope)
	}
	return nil
}

func (s *StorageService) ListCredentials(ctx context.Context, orgID string) ([]*recsink.CredentialUsage, error) {
	if s.ListCredentialsFn != nil {
		return s.ListCredentialsFn(ctx, orgID)
	}
	c, _ := s.FindStorage(ctx, orgID, recsink.ScopeOrganization)
	after := date().Add(24 * 3600e9)
	replaced := date()
	old := *c
	old.ID, old.AccessKeyID, old.ReplacedAt = "cred_0", "AKIAOLDKEY", &replaced
	return []*recsink.CredentialUsage{
		{Credential: old, State: recsink.CredentialDraining, ActiveRecordings: []string{testRecID}, SafeToDeleteAfter: &after},
		{Credential: *c, State: recsink.CredentialCurrent},
	}, nil
}

// MeetingService is a fake recsink.MeetingService.
type MeetingService struct {
	mu      sync.Mutex
	Created []CreatedMeeting
	Limit   int // the limit of the last ListMeetings

	CreateMeetingFn func(ctx context.Context, orgID string, m *recsink.Meeting, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.Meeting, error)
	FindMeetingFn   func(ctx context.Context, orgID, id string) (*recsink.Meeting, error)
}

// CreatedMeeting is the arguments of one CreateMeeting call.
type CreatedMeeting struct {
	Meeting recsink.Meeting
	Dest    *recsink.Destination
	Key     *recsink.AccessKey
}

var _ recsink.MeetingService = (*MeetingService)(nil)

func testMeetingValue() *recsink.Meeting {
	return &recsink.Meeting{ID: testMeeting, OrgID: testOrgID, RoomName: "/team-abc", StartDate: date(), EndDate: date().Add(3600e9)}
}

func (s *MeetingService) CreateMeeting(ctx context.Context, orgID string, m *recsink.Meeting, dest *recsink.Destination, key *recsink.AccessKey) (*recsink.Meeting, error) {
	s.mu.Lock()
	s.Created = append(s.Created, CreatedMeeting{*m, dest, key})
	s.mu.Unlock()
	if s.CreateMeetingFn != nil {
		return s.CreateMeetingFn(ctx, orgID, m, dest, key)
	}
	c := *m
	c.ID, c.OrgID = testMeeting, orgID
	return &c, nil
}

func (s *MeetingService) FindMeeting(ctx context.Context, orgID, id string) (*recsink.Meeting, error) {
	if s.FindMeetingFn != nil {
		return s.FindMeetingFn(ctx, orgID, id)
	}
	if id != testMeeting {
		return nil, recsink.Errorf(recsink.ENOTFOUND, "meeting not found")
	}
	return testMeetingValue(), nil
}

func (s *MeetingService) ListMeetings(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.Meeting, string, error) {
	s.mu.Lock()
	s.Limit = limit
	s.mu.Unlock()
	if cursor == "" {
		return []*recsink.Meeting{testMeetingValue()}, "next1", nil
	}
	return []*recsink.Meeting{}, "", nil
}

func (s *MeetingService) DeleteMeeting(ctx context.Context, orgID, id string) error {
	_, err := s.FindMeeting(ctx, orgID, id)
	return err
}

// RecordingService is a fake recsink.RecordingService.
type RecordingService struct {
	mu     sync.Mutex
	Filter recsink.RecordingFilter // of the last ListRecordings

	ValidFor    time.Duration // of the last AccessLink
	BulkDeleted [][]string    // the IDs of each BulkDeleteRecordings

	// FindRecordingFn, when set, replaces FindRecording.
	FindRecordingFn func(ctx context.Context, orgID, id string) (*recsink.Recording, []recsink.RecordingEvent, error)
}

var _ recsink.RecordingService = (*RecordingService)(nil)

func testRecording() *recsink.Recording {
	size := int64(1234)
	return &recsink.Recording{
		ID: testRecID, OrgID: testOrgID, MeetingID: testMeeting, RoomName: "/team-abc", State: recsink.RecordingRecording,
		CredentialID: "cred_1", AccessKeyID: testKeyID,
		Destination: recsink.Destination{Provider: "s3", Bucket: "my-bucket", Prefix: "rec", Region: "eu-west-1", FileFormat: "mkv"},
		ObjectKey:   "rec/team-abc/rec_1.mkv", UploadID: "upload-secret-ish", IngestTokenHash: recsink.HashToken(testToken),
		StartDate: date(), SizeBytes: &size, BytesReceived: 10, BytesUploaded: 5,
	}
}

func (s *RecordingService) StartRecording(ctx context.Context, orgID, meetingID string) (*recsink.Recording, string, error) {
	if meetingID != testMeeting {
		return nil, "", recsink.Errorf(recsink.ENOTFOUND, "meeting not found")
	}
	return testRecording(), testToken, nil
}

func (s *RecordingService) StopRecording(ctx context.Context, orgID, id string) (*recsink.Recording, error) {
	r, _, err := s.FindRecording(ctx, orgID, id)
	if err != nil {
		return nil, err
	}
	r.State, r.StopReason = recsink.RecordingStopping, recsink.StopRequested
	end := date().Add(60e9)
	r.EndDate = &end
	return r, nil
}

func (s *RecordingService) FindRecording(ctx context.Context, orgID, id string) (*recsink.Recording, []recsink.RecordingEvent, error) {
	if s.FindRecordingFn != nil {
		return s.FindRecordingFn(ctx, orgID, id)
	}
	if id != testRecID {
		return nil, nil, recsink.Errorf(recsink.ENOTFOUND, "recording not found")
	}
	return testRecording(), []recsink.RecordingEvent{{Time: date(), Type: recsink.EventStarted, Message: "started"}}, nil
}

func (s *RecordingService) ListRecordings(ctx context.Context, orgID string, f recsink.RecordingFilter) ([]*recsink.Recording, string, error) {
	s.mu.Lock()
	s.Filter = f
	s.mu.Unlock()
	return []*recsink.Recording{testRecording()}, "", nil
}

func (s *RecordingService) AccessLink(ctx context.Context, orgID, id string, validFor time.Duration) (*recsink.AccessLink, error) {
	if _, _, err := s.FindRecording(ctx, orgID, id); err != nil {
		return nil, err
	}
	if validFor <= 0 || validFor > recsink.MaxAccessLinkValidity {
		return nil, recsink.FieldErrorf("validForSeconds", "out of range")
	}
	s.mu.Lock()
	s.ValidFor = validFor
	s.mu.Unlock()
	return &recsink.AccessLink{URL: "https://my-bucket.s3.example/rec/team-abc/rec_1.mkv?X-Amz-Expires=" + strconv.Itoa(int(validFor.Seconds())),
		Expires: date().Add(validFor), AccessKeyID: testKeyID}, nil
}

func (s *RecordingService) BulkDeleteRecordings(ctx context.Context, orgID string, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.BulkDeleted = append(s.BulkDeleted, ids)
	return nil
}

func (s *RecordingService) DeleteRecording(ctx context.Context, orgID, id string) error {
	_, _, err := s.FindRecording(ctx, orgID, id)
	return err
}

// IngestService is an in-memory recsink.IngestService for one recording,
// testRecID with testToken.
type IngestService struct {
	appendMu sync.Mutex
	mu       sync.Mutex
	data     bytes.Buffer
	// Chunks receives every read of an append's body, as it is read.
	Chunks chan []byte
	// FullAfter, when >= 0, makes an append fail as a full spool once the
	// recording holds that many bytes.
	FullAfter int64
	// AuthErr, when set, is what checking a token returns (a store that
	// is down).
	AuthErr error
}

var _ recsink.IngestService = (*IngestService)(nil)

func NewIngestService() *IngestService {
	return &IngestService{Chunks: make(chan []byte, 1024), FullAfter: -1}
}

func (s *IngestService) auth(id, token string) error {
	if s.AuthErr != nil {
		return s.AuthErr
	}
	if id != testRecID {
		return recsink.Errorf(recsink.ENOTFOUND, "recording not found")
	}
	if token != testToken {
		return recsink.Errorf(recsink.EUNAUTHORIZED, "invalid ingest token")
	}
	return nil
}

func (s *IngestService) Offset(ctx context.Context, id, token string) (int64, error) {
	if err := s.auth(id, token); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.data.Len()), nil
}

// Data returns the bytes appended.
func (s *IngestService) Data() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.String()
}

func (s *IngestService) Append(ctx context.Context, id, token string, offset int64, body io.Reader) (int64, error) {
	if err := s.auth(id, token); err != nil {
		return 0, err
	}
	// One append at a time, as the real service; data has its own lock so
	// that a test can watch it grow while the body streams.
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	size, _ := s.Offset(ctx, id, token)
	if offset >= 0 && offset != size {
		return size, recsink.Errorf(recsink.ECONFLICT, "Upload-Offset %d is not the current offset %d", offset, size)
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			s.mu.Lock()
			if full := s.FullAfter >= 0 && int64(s.data.Len()+n) > s.FullAfter; full {
				s.mu.Unlock()
				return size, &recsink.Error{Code: recsink.EUNAVAILABLE, Message: "spool full", RetryAfter: 7}
			}
			s.data.Write(buf[:n])
			size = int64(s.data.Len())
			s.mu.Unlock()
			select {
			case s.Chunks <- bytes.Clone(buf[:n]):
			default:
			}
		}
		if err == io.EOF {
			return size, nil
		} else if err != nil {
			return size, err
		}
	}
}

// AuditService is an in-memory recsink.AuditService.
type AuditService struct {
	mu     sync.Mutex
	events []*recsink.AuditEvent
}

var _ recsink.AuditService = (*AuditService)(nil)

func (s *AuditService) RecordAudit(ctx context.Context, e *recsink.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.ID, e.Time = fmt.Sprintf("aud_%d", len(s.events)+1), date()
	s.events = append(s.events, e)
	return nil
}

func (s *AuditService) ListAudit(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.AuditEvent, string, error) {
	if cursor != "" && cursor != "next" {
		return nil, "", recsink.FieldErrorf("cursor", "cursor is invalid")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*recsink.AuditEvent
	for i := len(s.events) - 1; i >= 0; i-- {
		if s.events[i].OrgID == orgID {
			out = append(out, s.events[i])
		}
	}
	return out, "", nil
}

// Events returns the events recorded so far.
func (s *AuditService) Events() []*recsink.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*recsink.AuditEvent(nil), s.events...)
}
