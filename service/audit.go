package service

import (
	"context"

	"github.com/recsink/recsink"
)

var _ recsink.AuditService = (*Service)(nil)

// RecordAudit implements recsink.AuditService.
func (s *Service) RecordAudit(ctx context.Context, e *recsink.AuditEvent) error {
	e.ID, e.Time = recsink.NewID("aud"), recsink.Now()
	return s.store.AddAuditEvent(ctx, e)
}

// ListAudit implements recsink.AuditService.
func (s *Service) ListAudit(ctx context.Context, orgID, cursor string, limit int) ([]*recsink.AuditEvent, string, error) {
	return s.store.ListAuditEvents(ctx, orgID, cursor, limit)
}
