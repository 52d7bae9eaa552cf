package metrics_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/recsink/recsink/metrics"
)

type fakeDisk struct{ free, headroom int64 }

func (d fakeDisk) DiskFree() int64 { return d.free }
func (d fakeDisk) Headroom() int64 { return d.headroom }

func scrape(tb testing.TB, m *metrics.Metrics) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		tb.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestDisk(t *testing.T) {
	t.Parallel()
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		m := metrics.New()
		m.SetDisk(fakeDisk{free: 123456, headroom: 512 << 20})
		out := scrape(t, m)
		for _, want := range []string{"recsink_spool_disk_free_bytes 123456\n", "recsink_spool_disk_headroom_bytes 5.36870912e+08\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		m := metrics.New()
		m.SetDisk(fakeDisk{free: -1, headroom: 10})
		if out := scrape(t, m); strings.Contains(out, "recsink_spool_disk_free_bytes ") || !strings.Contains(out, "recsink_spool_disk_headroom_bytes 10\n") {
			t.Errorf("free space reported although unknown:\n%s", out)
		}
	})
	t.Run("None", func(t *testing.T) {
		t.Parallel()
		if out := scrape(t, metrics.New()); strings.Contains(out, "recsink_spool_disk") {
			t.Errorf("disk figures without a disk:\n%s", out)
		}
	})
}
