package admin

import (
	"errors"
	"net/http"
	"strings"

	"github.com/recsink/recsink"
)

// storageForm is the storage form's values as typed. Secret is echoed back
// only while it is being replaced (a test, or a save that failed), never
// once it is saved.
type storageForm struct {
	// Auth is recsink.AuthAccessKey or recsink.AuthRoleBased, as the REST
	// API's authenticationType; RoleARN its oidcRoleArn.
	Auth           string
	RoleARN        string
	Bucket         string
	AccessKeyID    string
	Secret         string
	Region         string
	FileFormat     string
	Endpoint       string
	ForcePathStyle bool
}

type storageData struct {
	Form           storageForm
	Current        *recsink.Credential // the organization's saved settings
	CurrentRole    bool                // Current is reached with a role
	SecretSaved    bool                // the form's key ID is the saved one: leaving the secret empty keeps it
	CustomEndpoint bool
	Action         string // "test" or "save" after a POST
	Saved          bool
	Report         *recsink.CheckReport
	Error          string            // a failure that is not a field's or a check's
	FieldErrors    map[string]string // by form field name
	Policy         string            // the IAM policy for the typed bucket
	PolicyBucket   string
	// Role is what the customer creates in IAM for role-based access, as
	// GET /v1/storage/role-setup answers it; nil when the server does not
	// offer roles, which hides the choice.
	Role        *recsink.RoleSetup
	TrustPolicy string
	// Failing lists the organization's saved keys and roles in use whose
	// last health check failed: the banner above the form.
	Failing []*recsink.CredentialUsage
}

func (h *Handler) currentStorage(r *http.Request, s *recsink.AdminSession) (*recsink.Credential, error) {
	c, err := h.cfg.Storage.FindStorage(r.Context(), s.OrgID, recsink.ScopeOrganization)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, nil
	}
	return c, err
}

// roleEnabled reports whether the server offers role-based access: it has
// an OIDC issuer for the customer's IAM to trust.
func (h *Handler) roleEnabled() bool { return h.cfg.OIDCIssuer != "" }

func (h *Handler) handleStorage(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	cur, err := h.currentStorage(r, s)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d := &storageData{CustomEndpoint: h.cfg.AllowCustomEndpoints, Current: cur, Form: storageForm{FileFormat: recsink.FormatMKV, Auth: recsink.AuthAccessKey}}
	if cur != nil {
		d.Form = formOf(cur)
		d.SecretSaved = d.Form.Auth == recsink.AuthAccessKey
	}
	// ?auth=roleBased opens the form on the role, as a link from the docs may.
	if r.URL.Query().Get("auth") == recsink.AuthRoleBased && h.roleEnabled() {
		d.Form.Auth = recsink.AuthRoleBased
	}
	h.renderStorage(w, r, s, http.StatusOK, d)
}

func formOf(c *recsink.Credential) storageForm {
	f := storageForm{
		Auth:           recsink.AuthAccessKey,
		Bucket:         c.Destination.BucketPath(),
		AccessKeyID:    c.AccessKeyID,
		Region:         c.Destination.Region,
		FileFormat:     c.Destination.FileFormat,
		Endpoint:       c.Destination.Endpoint,
		ForcePathStyle: c.Destination.ForcePathStyle,
	}
	// A role is kept where a key ID is: a role ARN, which no key ID can be.
	if recsink.IsRoleARN(c.AccessKeyID) {
		f.Auth, f.RoleARN, f.AccessKeyID = recsink.AuthRoleBased, c.AccessKeyID, ""
	}
	return f
}

func (h *Handler) renderStorage(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession, status int, d *storageData) {
	bucket, prefix := recsink.SplitBucket(strings.TrimSpace(d.Form.Bucket))
	if recsink.ValidateBucketName(bucket) != "" {
		bucket, prefix = "YOUR-BUCKET", ""
	}
	d.Policy = string(recsink.IAMPolicy(bucket, prefix))
	d.PolicyBucket = bucket
	if prefix != "" {
		d.PolicyBucket += "/" + prefix
	}
	d.CurrentRole = d.Current != nil && recsink.IsRoleARN(d.Current.AccessKeyID)
	if h.roleEnabled() {
		// The same setup as GET /v1/storage/role-setup answers.
		d.Role = recsink.NewRoleSetup(h.cfg.OIDCIssuer, h.cfg.OIDCAudience, s.OrgID)
		d.TrustPolicy = string(d.Role.TrustPolicy)
	}
	if d.Form.Auth == "" {
		d.Form.Auth = recsink.AuthAccessKey
	}
	failing, err := h.failingCredentials(r, s)
	if err != nil {
		// The banner is a help, not the page: log and show the form.
		h.log.WarnContext(r.Context(), "admin: storage: credential health", "org", s.OrgID, "err", err)
	}
	d.Failing = failing
	h.render(w, r, status, "storage", &page{Title: "Storage", Nav: "storage", Session: s, Data: d})
}

// failingCredentials returns the organization's keys and roles in use
// (current or draining) that the health watch found failing.
func (h *Handler) failingCredentials(r *http.Request, s *recsink.AdminSession) ([]*recsink.CredentialUsage, error) {
	usages, err := h.cfg.Storage.ListCredentials(r.Context(), s.OrgID)
	if err != nil {
		return nil, err
	}
	var failing []*recsink.CredentialUsage
	for _, u := range usages {
		if u.Health.State == recsink.CredentialHealthFailing && u.State != recsink.CredentialDrained {
			failing = append(failing, u)
		}
	}
	return failing, nil
}

func (h *Handler) handleStoragePost(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	ctx := r.Context()
	f := storageForm{
		Auth:           r.PostFormValue("authenticationType"),
		RoleARN:        strings.TrimSpace(r.PostFormValue("oidcRoleArn")),
		Bucket:         strings.TrimSpace(r.PostFormValue("bucket")),
		AccessKeyID:    strings.TrimSpace(r.PostFormValue("accessKeyId")),
		Secret:         r.PostFormValue("accessKeySecret"),
		Region:         strings.TrimSpace(r.PostFormValue("region")),
		FileFormat:     r.PostFormValue("fileFormat"),
		Endpoint:       strings.TrimSpace(r.PostFormValue("endpoint")),
		ForcePathStyle: r.PostFormValue("forcePathStyle") != "",
	}
	if !h.cfg.AllowCustomEndpoints {
		f.Endpoint, f.ForcePathStyle = "", false
	}
	role := f.Auth == recsink.AuthRoleBased
	if !role {
		f.Auth = recsink.AuthAccessKey
	}
	action := r.PostFormValue("action")
	if action != "test" {
		action = "save"
	}
	cur, err := h.currentStorage(r, s)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d := &storageData{Form: f, Current: cur, CustomEndpoint: h.cfg.AllowCustomEndpoints, Action: action, FieldErrors: map[string]string{}}

	bucket, prefix := recsink.SplitBucket(f.Bucket)
	dest := recsink.Destination{
		Provider: "s3", Bucket: bucket, Prefix: prefix, Region: f.Region,
		FileFormat: f.FileFormat, Endpoint: f.Endpoint, ForcePathStyle: f.ForcePathStyle,
	}
	// The key as the REST API takes it: a role is kept where a key ID is.
	var key recsink.AccessKey
	switch {
	case role && !h.roleEnabled():
		err = recsink.FieldErrorf("authenticationType", "Role-based access is not enabled on this recsink server: use an access key.")
	case role:
		key = recsink.AccessKey{ID: f.RoleARN}
		err = recsink.ValidateRoleARN(f.RoleARN)
	case recsink.IsRoleARN(f.AccessKeyID):
		err = recsink.FieldErrorf("accessKeyId", "This is a role ARN, not an access key ID: choose “Role (no key)” and paste it there.")
	default:
		key = recsink.AccessKey{ID: f.AccessKeyID, Secret: f.Secret}
	}
	d.SecretSaved = !role && cur != nil && cur.AccessKeyID == f.AccessKeyID
	// Nothing changed (and, for a key, the secret is kept): check the saved
	// settings rather than make a new generation of the same ones.
	unchanged := err == nil && cur != nil && sameSettings(cur, dest, key.ID) && (role || f.Secret == "")

	var report *recsink.CheckReport
	switch {
	case err != nil:
	case unchanged:
		report, err = h.cfg.Storage.CheckStorage(ctx, s.OrgID, recsink.ScopeOrganization, nil, nil)
		if err == nil && action == "save" {
			d.Error = "Nothing changed, so nothing was saved. The checks below ran on the saved settings."
		}
	case !role && f.Secret == "":
		err = recsink.FieldErrorf("accessKeySecret", "Type the access secret: recsink never shows a saved secret, and the settings changed.")
	case action == "test":
		report, err = h.cfg.Storage.CheckStorage(ctx, s.OrgID, recsink.ScopeOrganization, &dest, &key)
	default:
		var c *recsink.Credential
		c, report, err = h.cfg.Storage.SaveStorage(ctx, s.OrgID, recsink.ScopeOrganization, dest, key)
		if err == nil {
			what := "access key " + c.AccessKeyID
			if role {
				what = "role " + c.AccessKeyID
			}
			h.log.InfoContext(ctx, "admin: storage saved", "org", s.OrgID, "user", s.UserID, "accessKeyId", c.AccessKeyID)
			h.audit(r, s, recsink.AuditStorageSaved, recsink.ScopeOrganization, what+" on bucket "+c.Destination.BucketPath())
			d.Saved, d.Current = true, c
			d.Form = formOf(c) // the secret is saved: the field is left empty
			d.SecretSaved = !role
		}
	}
	d.Report = report
	status := http.StatusOK
	if err != nil {
		var ce *recsink.CheckError
		switch {
		case errors.As(err, &ce):
			d.Report = ce.Report
		case recsink.ErrorField(err) != "":
			d.FieldErrors[recsink.ErrorField(err)] = recsink.ErrorMessage(err)
		case recsink.ErrorCode(err) == recsink.EINTERNAL:
			h.log.ErrorContext(ctx, "admin: storage", "org", s.OrgID, "err", err)
			d.Error = "internal error"
		default:
			d.Error = recsink.ErrorMessage(err)
		}
		status = http.StatusUnprocessableEntity
	}
	if d.Report != nil && !d.Report.OK {
		status = http.StatusUnprocessableEntity
		if field, msg := refusedField(d.Report, f); field != "" {
			d.FieldErrors[field] = msg
		}
	}
	h.renderStorage(w, r, s, status, d)
}

// refusedField names the form field that a failed role check is about, with
// STS's refusal in plain words: the role ARN for a refusal (trust policy,
// audience, provider, unknown role), the endpoint when a custom STS did not
// answer. "" for a key's checks, explained below the failed check.
func refusedField(report *recsink.CheckReport, f storageForm) (string, string) {
	for _, c := range report.Checks {
		if c.OK || c.Skipped {
			continue
		}
		if c.Name != recsink.OpAssumeRole {
			return "", ""
		}
		if (c.Code == "" || c.Code == "Timeout") && f.Endpoint != "" {
			return "endpoint", "The security token service at this endpoint did not answer: " + c.Message
		}
		msg := c.Message
		if msg != "" {
			msg = strings.ToUpper(msg[:1]) + msg[1:]
		}
		return "oidcRoleArn", "STS refused this role: " + msg
	}
	return "", ""
}

// sameSettings reports whether dest and keyID are what c has saved, so that
// an empty secret field means "keep the saved secret".
func sameSettings(c *recsink.Credential, dest recsink.Destination, keyID string) bool {
	d := dest
	if err := d.Validate(); err != nil {
		return false
	}
	saved := c.Destination
	// A region that was found at save time counts as the same as none typed.
	if d.Region == "" {
		d.Region = saved.Region
	}
	return c.AccessKeyID == keyID && d == saved
}

// handleIAMPolicy answers the least-privilege IAM policy for ?bucket=, so
// that the page's help updates as the bucket is typed.
func (h *Handler) handleIAMPolicy(w http.ResponseWriter, r *http.Request, _ *recsink.AdminSession) {
	bucket, prefix := recsink.SplitBucket(strings.TrimSpace(r.URL.Query().Get("bucket")))
	if recsink.ValidateBucketName(bucket) != "" {
		bucket, prefix = "YOUR-BUCKET", ""
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(recsink.IAMPolicy(bucket, prefix))
}
