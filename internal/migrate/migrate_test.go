package migrate_test

import (
	"testing"
	"testing/fstest"

	"github.com/recsink/recsink/internal/migrate"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	t.Run("OK", func(t *testing.T) {
		ms, err := migrate.Load(fstest.MapFS{
			"migrations/0010_later.sql": file("B"),
			"migrations/0002_first.sql": file("A"),
			"migrations/README.md":      file("not a migration"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 2 || ms[0].Version != 2 || ms[0].Name != "0002_first.sql" || ms[0].SQL != "A" || ms[1].Version != 10 {
			t.Fatalf("migrations %+v", ms)
		}
	})
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
	}{
		{"ErrNoVersion", fstest.MapFS{"migrations/init.sql": file("")}},
		{"ErrVersionZero", fstest.MapFS{"migrations/0000_init.sql": file("")}},
		{"ErrNotANumber", fstest.MapFS{"migrations/abc_init.sql": file("")}},
		{"ErrSameVersion", fstest.MapFS{"migrations/0001_a.sql": file(""), "migrations/1_b.sql": file("")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ms, err := migrate.Load(tc.fsys); err == nil {
				t.Fatalf("loaded %+v, want an error", ms)
			}
		})
	}
}
