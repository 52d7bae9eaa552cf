package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/recsink/recsink"
)

// DefaultCleanInterval is how often a Cleaner prunes when its Interval is
// zero.
const DefaultCleanInterval = time.Hour

// Cleaner deletes history older than Retention, as river's cleaner does: the
// events and part rows of recordings that finished before it, and webhook
// deliveries no longer pending that were created before it. The recordings
// themselves stay, so the API still lists them. Age is measured on the
// database's clock, so that nodes with skewed clocks agree on what is old.
// Every node may run one: pruning twice is harmless.
type Cleaner struct {
	Store recsink.Store
	// Retention is how long history is kept; zero or less keeps it forever.
	Retention time.Duration
	// Interval is the time between prunes; zero means DefaultCleanInterval.
	Interval time.Duration
	Logger   *slog.Logger
}

// Run prunes at once and then every Interval until ctx ends. A failed prune
// is logged and tried again at the next tick.
func (c *Cleaner) Run(ctx context.Context) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Retention <= 0 {
		log.Info("cleaner: retention is off; history is kept forever")
		return
	}
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultCleanInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		began := time.Now()
		st, err := c.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("cleaner: prune failed; trying again at the next tick", "err", err, "next", interval)
		case st != (recsink.PruneStats{}):
			log.Info("cleaner: pruned old history", "events", st.RecordingEvents, "parts", st.Parts,
				"webhookDeliveries", st.WebhookDeliveries, "auditEvents", st.AuditEvents, "retention", c.Retention, "took", time.Since(began).Round(time.Millisecond))
		default:
			log.Debug("cleaner: nothing to prune", "retention", c.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Prune deletes once what is older than Retention on the database's clock,
// and returns what it deleted.
func (c *Cleaner) Prune(ctx context.Context) (recsink.PruneStats, error) {
	now, err := c.Store.Now(ctx)
	if err != nil {
		return recsink.PruneStats{}, err
	}
	return c.Store.Prune(ctx, now.Add(-c.Retention))
}
