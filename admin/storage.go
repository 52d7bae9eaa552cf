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
	SecretSaved    bool                // the form's key ID is the saved one: leaving the secret empty keeps it
	CustomEndpoint bool
	Action         string // "test" or "save" after a POST
	Saved          bool
	Report         *recsink.CheckReport
	Error          string            // a failure that is not a field's or a check's
	FieldErrors    map[string]string // by form field name
	Policy         string            // the IAM policy for the typed bucket
	PolicyBucket   string
}

func (h *Handler) currentStorage(r *http.Request, s *recsink.AdminSession) (*recsink.Credential, error) {
	c, err := h.cfg.Storage.FindStorage(r.Context(), s.OrgID, recsink.ScopeOrganization)
	if recsink.ErrorCode(err) == recsink.ENOTFOUND {
		return nil, nil
	}
	return c, err
}

func (h *Handler) handleStorage(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	cur, err := h.currentStorage(r, s)
	if err != nil {
		h.renderError(w, r, s, err)
		return
	}
	d := &storageData{CustomEndpoint: h.cfg.AllowCustomEndpoints, Current: cur, Form: storageForm{FileFormat: recsink.FormatMKV}}
	if cur != nil {
		d.Form = formOf(cur)
		d.SecretSaved = true
	}
	h.renderStorage(w, r, s, http.StatusOK, d)
}

func formOf(c *recsink.Credential) storageForm {
	return storageForm{
		Bucket:         c.Destination.BucketPath(),
		AccessKeyID:    c.AccessKeyID,
		Region:         c.Destination.Region,
		FileFormat:     c.Destination.FileFormat,
		Endpoint:       c.Destination.Endpoint,
		ForcePathStyle: c.Destination.ForcePathStyle,
	}
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
	h.render(w, r, status, "storage", &page{Title: "Storage", Nav: "storage", Session: s, Data: d})
}

func (h *Handler) handleStoragePost(w http.ResponseWriter, r *http.Request, s *recsink.AdminSession) {
	ctx := r.Context()
	f := storageForm{
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
	d.SecretSaved = cur != nil && cur.AccessKeyID == f.AccessKeyID

	bucket, prefix := recsink.SplitBucket(f.Bucket)
	dest := recsink.Destination{
		Provider: "s3", Bucket: bucket, Prefix: prefix, Region: f.Region,
		FileFormat: f.FileFormat, Endpoint: f.Endpoint, ForcePathStyle: f.ForcePathStyle,
	}
	key := recsink.AccessKey{ID: f.AccessKeyID, Secret: f.Secret}

	var report *recsink.CheckReport
	switch {
	case f.Secret == "" && cur != nil && sameSettings(cur, dest, key.ID):
		// Nothing changed and the secret is kept: check the saved settings.
		report, err = h.cfg.Storage.CheckStorage(ctx, s.OrgID, recsink.ScopeOrganization, nil, nil)
		if err == nil && action == "save" {
			d.Error = "Nothing changed, so nothing was saved. The checks below ran on the saved settings."
		}
	case f.Secret == "":
		err = recsink.FieldErrorf("accessKeySecret", "Type the access secret: recsink never shows a saved secret, and the settings changed.")
	case action == "test":
		report, err = h.cfg.Storage.CheckStorage(ctx, s.OrgID, recsink.ScopeOrganization, &dest, &key)
	default:
		var c *recsink.Credential
		c, report, err = h.cfg.Storage.SaveStorage(ctx, s.OrgID, recsink.ScopeOrganization, dest, key)
		if err == nil {
			h.log.InfoContext(ctx, "admin: storage saved", "org", s.OrgID, "user", s.UserID, "accessKeyId", c.AccessKeyID)
			h.audit(r, s, recsink.AuditStorageSaved, recsink.ScopeOrganization, "access key "+c.AccessKeyID+" on bucket "+c.Destination.BucketPath())
			d.Saved, d.Current, d.SecretSaved = true, c, true
			d.Form = formOf(c) // the secret is saved: the field is left empty
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
	} else if report != nil && !report.OK {
		status = http.StatusUnprocessableEntity
	}
	h.renderStorage(w, r, s, status, d)
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
