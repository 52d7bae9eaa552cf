package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/recsink/recsink/storetest"
)

// TestHealthReason: a failing spell shows its latest cause.
func TestHealthReason(t *testing.T) {
	t.Parallel()
	storetest.RunHealthReason(t, MustOpen(t, filepath.Join(t.TempDir(), "recsink.db")))
}
