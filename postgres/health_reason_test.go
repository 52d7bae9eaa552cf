package postgres_test

import (
	"testing"

	"github.com/recsink/recsink/internal/pgtest"
	"github.com/recsink/recsink/storetest"
)

// TestHealthReason: a failing spell shows its latest cause.
func TestHealthReason(t *testing.T) {
	t.Parallel()
	storetest.RunHealthReason(t, MustOpen(t, pgtest.MustStart(t).MustCreateDatabase(t)))
}
