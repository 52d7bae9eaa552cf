package http

import (
	"errors"
	"net/http"
	"strings"

	"github.com/recsink/recsink"
)

// destinationInput is the JSON body that sets a destination and its access
// key: PUT /v1/storage, POST /v1/storage/check, and a meeting's destination.
type destinationInput struct {
	Provider string `json:"provider"`
	// AuthenticationType is "accessKey" (the default: accessKeyId and
	// accessKeySecret) or "roleBased" (oidcRoleArn: an IAM role that trusts
	// recsink's own OIDC identity), as Whereby's meeting API names them.
	AuthenticationType string `json:"authenticationType"`
	OIDCRoleARN        string `json:"oidcRoleArn"`
	// Bucket is "my-bucket" or "my-bucket/prefix".
	Bucket          string `json:"bucket"`
	Region          string `json:"region"`
	Endpoint        string `json:"endpoint"`
	ForcePathStyle  bool   `json:"forcePathStyle"`
	FileFormat      string `json:"fileFormat"`
	AccessKeyID     string `json:"accessKeyId"`
	AccessKeySecret string `json:"accessKeySecret"`
}

// parse validates the input and returns the destination and key. Errors
// name the field with prefix before it ("" or "recording.destination.").
func (in *destinationInput) parse(prefix string) (recsink.Destination, recsink.AccessKey, error) {
	var dest recsink.Destination
	var key recsink.AccessKey
	switch in.AuthenticationType {
	case "", recsink.AuthAccessKey:
		if in.OIDCRoleARN != "" {
			return dest, key, recsink.FieldErrorf(prefix+"oidcRoleArn", "oidcRoleArn goes with authenticationType \"roleBased\"")
		}
	case recsink.AuthRoleBased:
		if in.AccessKeyID != "" || in.AccessKeySecret != "" {
			return dest, key, recsink.FieldErrorf(prefix+"accessKeyId", "roleBased access takes oidcRoleArn, not an access key")
		}
	default:
		return dest, key, recsink.FieldErrorf(prefix+"authenticationType", "authenticationType must be \"accessKey\" or \"roleBased\"")
	}
	if len(in.OIDCRoleARN) > 2048 {
		return dest, key, recsink.FieldErrorf(prefix+"oidcRoleArn", "oidcRoleArn must be at most 2048 characters")
	}
	dest = recsink.Destination{
		Provider:       in.Provider,
		Region:         in.Region,
		Endpoint:       in.Endpoint,
		ForcePathStyle: in.ForcePathStyle,
		FileFormat:     in.FileFormat,
	}
	// Refuse a URL before splitting at its first slash leaves "https:".
	if strings.Contains(in.Bucket, "://") {
		return dest, key, recsink.FieldErrorf(prefix+"bucket", "bucket must be the bucket name only, not a URL: such as my-bucket or my-bucket/prefix")
	}
	dest.Bucket, dest.Prefix = recsink.SplitBucket(in.Bucket)
	if err := dest.Validate(); err != nil {
		return dest, key, prefixField(prefix, err)
	}
	key = recsink.AccessKey{ID: in.AccessKeyID, Secret: in.AccessKeySecret}
	if in.AuthenticationType == recsink.AuthRoleBased {
		// A role is kept where a key ID is: a role ARN, which no key ID can be.
		if err := recsink.ValidateRoleARN(in.OIDCRoleARN); err != nil {
			return dest, key, prefixField(prefix, err)
		}
		return dest, recsink.AccessKey{ID: in.OIDCRoleARN}, nil
	} else if recsink.IsRoleARN(in.AccessKeyID) {
		return dest, key, recsink.FieldErrorf(prefix+"accessKeyId", "accessKeyId is a role ARN: send it as oidcRoleArn with authenticationType \"roleBased\"")
	}
	if err := recsink.ValidateAccessKey(key); err != nil {
		return dest, key, prefixField(prefix, err)
	}
	return dest, key, nil
}

// prefixField returns err with its field prefixed, for inputs nested in a
// larger body.
func prefixField(prefix string, err error) error {
	var e *recsink.Error
	if prefix == "" || !errors.As(err, &e) || e.Field == "" {
		return err
	}
	c := *e
	c.Field = prefix + e.Field
	return &c
}

// storageView is the JSON shape of a scope's storage settings. It never
// holds the secret.
type storageView struct {
	Provider       string `json:"provider"`
	Bucket         string `json:"bucket"`
	Region         string `json:"region"`
	Endpoint       string `json:"endpoint"`
	ForcePathStyle bool   `json:"forcePathStyle"`
	FileFormat     string `json:"fileFormat"`
	AccessKeyID    string `json:"accessKeyId"`
	// AuthenticationType is "accessKey" or "roleBased"; OIDCRoleARN the
	// role of roleBased settings (then also in accessKeyId).
	AuthenticationType string          `json:"authenticationType"`
	OIDCRoleARN        string          `json:"oidcRoleArn,omitempty"`
	CredentialID       string          `json:"credentialId"`
	CreatedAt          recsink.APITime `json:"createdAt"`
	// Check is the report of the checks run when the settings were saved.
	Check *recsink.CheckReport `json:"check,omitempty"`
	// Parity is, on a save for a scope with running recordings, whether the
	// new key can take them over.
	Parity *recsink.Parity `json:"parity,omitempty"`
}

func newStorageView(c *recsink.Credential, report *recsink.CheckReport) storageView {
	d := c.Destination
	v := storageView{
		Provider:           d.Provider,
		Bucket:             d.BucketPath(),
		Region:             d.Region,
		Endpoint:           d.Endpoint,
		ForcePathStyle:     d.ForcePathStyle,
		FileFormat:         d.FileFormat,
		AccessKeyID:        c.AccessKeyID,
		AuthenticationType: recsink.AuthAccessKey,
		CredentialID:       c.ID,
		CreatedAt:          recsink.APITime(c.CreatedAt),
		Check:              report,
	}
	if report != nil {
		v.Parity = report.Parity
	}
	if recsink.IsRoleARN(c.AccessKeyID) {
		v.AuthenticationType, v.OIDCRoleARN = recsink.AuthRoleBased, c.AccessKeyID
	}
	return v
}

// saveStorage decodes, validates and saves a scope's destination.
func (s *Server) saveStorage(w http.ResponseWriter, r *http.Request, scope string) {
	var in destinationInput
	if _, err := decodeJSON(w, r, &in, false); err != nil {
		s.Error(w, r, err)
		return
	}
	dest, key, err := in.parse("")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	c, report, err := s.StorageService.SaveStorage(r.Context(), orgFrom(r.Context()).ID, scope, dest, key)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditStorageSaved, scope, "access key "+c.AccessKeyID+" on bucket "+c.Destination.BucketPath())
	writeJSON(w, http.StatusOK, newStorageView(c, report))
}

func (s *Server) getStorage(w http.ResponseWriter, r *http.Request, scope string) {
	c, err := s.StorageService.FindStorage(r.Context(), orgFrom(r.Context()).ID, scope)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newStorageView(c, nil))
}

func (s *Server) deleteStorage(w http.ResponseWriter, r *http.Request, scope string) {
	if err := s.StorageService.DeleteStorage(r.Context(), orgFrom(r.Context()).ID, scope); err != nil {
		s.Error(w, r, err)
		return
	}
	s.audit(r, recsink.AuditStorageDeleted, scope, "storage settings removed")
	w.WriteHeader(http.StatusNoContent)
}

// handlePutStorage handles PUT /v1/storage: check and save the
// organization's destination and key.
func (s *Server) handlePutStorage(w http.ResponseWriter, r *http.Request) {
	s.saveStorage(w, r, recsink.ScopeOrganization)
}

// handleGetStorage handles GET /v1/storage.
func (s *Server) handleGetStorage(w http.ResponseWriter, r *http.Request) {
	s.getStorage(w, r, recsink.ScopeOrganization)
}

// handleDeleteStorage handles DELETE /v1/storage.
func (s *Server) handleDeleteStorage(w http.ResponseWriter, r *http.Request) {
	s.deleteStorage(w, r, recsink.ScopeOrganization)
}

// handleCheckStorage handles POST /v1/storage/check: run the checks on the
// body's destination and key, or on the saved ones when the body is empty.
// A failed check is a report with ok false, not an error: nothing is saved.
func (s *Server) handleCheckStorage(w http.ResponseWriter, r *http.Request) {
	var in destinationInput
	present, err := decodeJSON(w, r, &in, true)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	var dest *recsink.Destination
	var key *recsink.AccessKey
	if present {
		d, k, err := in.parse("")
		if err != nil {
			s.Error(w, r, err)
			return
		}
		dest, key = &d, &k
	}
	report, err := s.StorageService.CheckStorage(r.Context(), orgFrom(r.Context()).ID, recsink.ScopeOrganization, dest, key)
	var ce *recsink.CheckError
	if errors.As(err, &ce) && ce.Report != nil {
		report, err = ce.Report, nil
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}

// handlePutMeetingDestination handles PUT
// /v1/meetings/{meetingId}/recording/destination: the room's override.
func (s *Server) handlePutMeetingDestination(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.meetingScope(w, r); ok {
		s.saveStorage(w, r, id)
	}
}

// handleGetMeetingDestination handles GET
// /v1/meetings/{meetingId}/recording/destination.
func (s *Server) handleGetMeetingDestination(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.meetingScope(w, r); ok {
		s.getStorage(w, r, id)
	}
}

// handleDeleteMeetingDestination handles DELETE
// /v1/meetings/{meetingId}/recording/destination: the room falls back to the
// organization's destination.
func (s *Server) handleDeleteMeetingDestination(w http.ResponseWriter, r *http.Request) {
	if id, ok := s.meetingScope(w, r); ok {
		s.deleteStorage(w, r, id)
	}
}

// meetingScope returns the meeting ID of the path as a storage scope once
// the meeting is found to be the organization's, so that no settings are
// saved for a room that does not exist.
func (s *Server) meetingScope(w http.ResponseWriter, r *http.Request) (string, bool) {
	m, err := s.MeetingService.FindMeeting(r.Context(), orgFrom(r.Context()).ID, r.PathValue("meetingId"))
	if err != nil {
		s.Error(w, r, err)
		return "", false
	}
	return m.ID, true
}

// credentialView is one generation of storage settings in the rotation
// view. It never holds the secret.
type credentialView struct {
	ID                string           `json:"id"`
	Scope             string           `json:"scope"`
	Bucket            string           `json:"bucket"`
	AccessKeyID       string           `json:"accessKeyId"`
	CreatedAt         recsink.APITime  `json:"createdAt"`
	ReplacedAt        *recsink.APITime `json:"replacedAt"`
	State             string           `json:"state"`
	ActiveRecordings  activeView       `json:"activeRecordings"`
	SafeToDeleteAfter *recsink.APITime `json:"safeToDeleteAfter"`

	// SafeToDeleteReason says why the key is not yet safe to delete.
	SafeToDeleteReason string `json:"safeToDeleteReason,omitempty"`
	// Health is what the key health watch last found.
	Health healthView `json:"health"`
}

// healthView is a credential's health in the rotation view.
type healthView struct {
	State     string           `json:"state"` // "ok" or "failing"
	Since     *recsink.APITime `json:"since,omitempty"`
	Check     string           `json:"check,omitempty"`
	Code      string           `json:"code,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	CheckedAt *recsink.APITime `json:"checkedAt,omitempty"`
}

type activeView struct {
	Count int      `json:"count"`
	IDs   []string `json:"ids"`
}

// handleListCredentials handles GET /v1/credentials: every generation of
// the organization's and its rooms' keys, with the recordings holding each,
// so that a customer knows when an old key is safe to delete.
func (s *Server) handleListCredentials(w http.ResponseWriter, r *http.Request) {
	usages, err := s.StorageService.ListCredentials(r.Context(), orgFrom(r.Context()).ID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	results := make([]credentialView, 0, len(usages))
	for _, u := range usages {
		ids := u.ActiveRecordings
		if ids == nil {
			ids = []string{}
		}
		results = append(results, credentialView{
			ID:                u.ID,
			Scope:             u.Scope,
			Bucket:            u.Destination.BucketPath(),
			AccessKeyID:       u.AccessKeyID,
			CreatedAt:         recsink.APITime(u.CreatedAt),
			ReplacedAt:        recsink.APITimeOf(u.ReplacedAt),
			State:             u.State,
			ActiveRecordings:  activeView{Count: len(ids), IDs: ids},
			SafeToDeleteAfter: recsink.APITimeOf(u.SafeToDeleteAfter),

			SafeToDeleteReason: u.SafeToDeleteReason,
			Health: healthView{
				State: u.Health.State, Since: recsink.APITimeOf(u.Health.Since), Check: u.Health.Check,
				Code: u.Health.Code, Reason: u.Health.Reason, CheckedAt: recsink.APITimeOf(u.Health.CheckedAt),
			},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}
