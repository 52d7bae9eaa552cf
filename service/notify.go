package service

import (
	"context"
	"math"
	"path"
	"strings"
	"time"

	"github.com/recsink/recsink"
)

// Notifier sends events to the organization's webhook endpoint (package
// webhook's Dispatcher). Enqueue writes to a durable outbox and never waits
// on the network, so a recording is never held up by a receiver.
type Notifier interface {
	// EnqueueOnce adds an event with the given ID; an ID already in the
	// outbox is not added again.
	EnqueueOnce(ctx context.Context, orgID, id, typ string, data any) error
}

// Observer is told what happens, for metrics. Implemented by package metrics.
type Observer interface {
	Received(bytes int64)
	PartUploaded(bytes int64, took time.Duration)
	UploadFailed(code string)
	RecordingFinished(state string)
}

type nopNotifier struct{}

func (nopNotifier) EnqueueOnce(context.Context, string, string, string, any) error { return nil }

type nopObserver struct{}

func (nopObserver) Received(int64)                    {}
func (nopObserver) PartUploaded(int64, time.Duration) {}
func (nopObserver) UploadFailed(string)               {}
func (nopObserver) RecordingFinished(string)          {}

// recordingEvent is the data of a recording.* webhook event.
type recordingEvent struct {
	RecordingID string `json:"recordingId"`
	MeetingID   string `json:"meetingId"`
	RoomName    string `json:"roomName"`
	State       string `json:"state"`
	Filename    string `json:"filename"`
	Bucket      string `json:"bucket"`
	ObjectKey   string `json:"objectKey"`
	AccessKeyID string `json:"accessKeyId"`
	SizeBytes   *int64 `json:"sizeBytes,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	// Checksum is the object's full-object checksum that S3 verified,
	// "CRC64NVME:base64", as head-object --checksum-mode ENABLED shows it.
	Checksum  string           `json:"checksum,omitempty"`
	StartDate recsink.APITime  `json:"startDate"`
	EndDate   *recsink.APITime `json:"endDate,omitempty"`
	// Status is Whereby's, on recording.finished: "completed".
	Status string `json:"status,omitempty"`
	// SizeInMegaBytes is Whereby's: the size in megabytes (10^6 bytes).
	SizeInMegaBytes *float64 `json:"sizeInMegaBytes,omitempty"`
	// Reason says in plain words what went wrong, for failed and blocked.
	Reason string `json:"reason,omitempty"`
	// BytesReceived and BytesUploaded tell how far behind a blocked
	// recording is.
	BytesReceived int64 `json:"bytesReceived"`
	BytesUploaded int64 `json:"bytesUploaded"`
}

// notify sends a recording.* event with the recording as it is now. Events
// that happen once in a recording's life get an ID derived from it, so a
// repeat after a crash or on another node is one event; the others (blocked,
// resumed) may happen many times.
func (r *recorder) notify(typ, reason string) {
	r.notifyAs(r.snapshot(), typ, reason)
}

// notifyAs sends a recording.* event with rec as the recording's state.
func (r *recorder) notifyAs(rec *recsink.Recording, typ, reason string) {
	data := recordingEvent{
		RecordingID: rec.ID, MeetingID: rec.MeetingID, RoomName: rec.RoomName, State: rec.State,
		Filename: path.Base(rec.ObjectKey), Bucket: rec.Destination.Bucket, ObjectKey: rec.ObjectKey,
		AccessKeyID: rec.AccessKeyID, SizeBytes: rec.SizeBytes, SHA256: rec.SHA256, Checksum: rec.Checksum,
		StartDate: recsink.APITime(rec.StartDate), EndDate: recsink.APITimeOf(rec.EndDate), Reason: reason,
		BytesReceived: rec.BytesReceived, BytesUploaded: rec.BytesUploaded,
	}
	if rec.SizeBytes != nil {
		mb := math.Round(float64(*rec.SizeBytes)/1e3) / 1e3
		data.SizeInMegaBytes = &mb
	}
	if typ == recsink.WebhookRecordingFinished {
		data.Status = "completed"
	}
	id := recsink.NewID("evt")
	switch typ {
	case recsink.WebhookRecordingStarted, recsink.WebhookRecordingFinished, recsink.WebhookRecordingFailed:
		id = "evt_" + rec.ID + "_" + strings.TrimPrefix(typ, "recording.")
	}
	// Not canceled by a shutdown: the service waits for its recordings'
	// loops before the store closes, and an event must not be dropped.
	ctx := context.WithoutCancel(r.s.ctx)
	if err := r.s.cfg.Notifier.EnqueueOnce(ctx, rec.OrgID, id, typ, data); err != nil {
		r.s.log.Error("enqueue webhook", "recording", rec.ID, "type", typ, "err", err)
	}
}

// drainedEvent is the data of credential.drained.
type drainedEvent struct {
	CredentialID string          `json:"credentialId"`
	Scope        string          `json:"scope"`
	AccessKeyID  string          `json:"accessKeyId"`
	Bucket       string          `json:"bucket"`
	CreatedAt    recsink.APITime `json:"createdAt"`
	ReplacedAt   recsink.APITime `json:"replacedAt"`
	SafeToDelete bool            `json:"safeToDelete"`
	Message      string          `json:"message"`
}

// checkDrained sends credential.drained for each replaced credential of the
// organization that no recording holds any more. Called when a recording
// lets go of a credential and when a key is replaced. The event's ID is
// derived from the credential, so two recordings ending at once, or several
// nodes, put it in the outbox once.
func (s *Service) checkDrained(orgID string, credIDs ...string) {
	ctx := s.ctx
	var held map[string]bool // read once, and only for a replaced key
	for _, id := range credIDs {
		c, err := s.store.FindCredential(ctx, orgID, id)
		if err != nil || c.ReplacedAt == nil {
			continue // the current key is not drained, whoever holds it
		}
		if held == nil {
			holding, err := s.store.ListHoldingRecordings(ctx, orgID)
			if err != nil {
				s.log.Error("check drained keys", "org", orgID, "err", err)
				return
			}
			held = map[string]bool{}
			for _, r := range holding {
				held[r.CredentialID] = true
			}
		}
		if held[id] {
			continue
		}
		ev := drainedEvent{
			CredentialID: c.ID, Scope: c.Scope, AccessKeyID: c.AccessKeyID, Bucket: c.Destination.Bucket,
			CreatedAt: recsink.APITime(c.CreatedAt), ReplacedAt: recsink.APITime(*c.ReplacedAt), SafeToDelete: true,
			Message: "No recording uses access key " + c.AccessKeyID + " any more: it is safe to delete it now.",
		}
		if err := s.cfg.Notifier.EnqueueOnce(context.WithoutCancel(ctx), orgID, "evt_"+c.ID+"_drained", recsink.WebhookCredentialDrained, ev); err != nil {
			s.log.Error("enqueue webhook", "credential", id, "err", err)
		}
		s.log.Info("key drained", "org", orgID, "credential", id, "accessKeyId", c.AccessKeyID)
		s.replacedHealth(ctx, c)
	}
}
