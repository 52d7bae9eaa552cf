package spool_test

import (
	"testing"

	"github.com/recsink/recsink/spool"
)

const mib = 1 << 20

func TestLayout(t *testing.T) {
	t.Parallel()

	t.Run("FirstTier5MiB", func(t *testing.T) {
		l := spool.NewLayout(0)
		if l != (spool.Layout{BaseSize: 5 * mib, TierParts: 1000}) {
			t.Fatalf("NewLayout(0) = %+v", l)
		}
		for n := int32(1); n <= 1000; n++ {
			if off, size := l.Part(n); size != 5*mib || off != int64(n-1)*5*mib {
				t.Fatalf("Part(%d) = %d, %d", n, off, size)
			}
		}
		if _, size := l.Part(1001); size != 10*mib {
			t.Fatalf("Part(1001) size = %d, want 10 MiB", size)
		}
		if _, size := l.Part(2001); size != 20*mib {
			t.Fatalf("Part(2001) size = %d, want 20 MiB", size)
		}
	})

	t.Run("Contiguous", func(t *testing.T) {
		for _, l := range []spool.Layout{spool.NewLayout(0), {BaseSize: 1000, TierParts: 2}, {BaseSize: 7, TierParts: 1}} {
			var want int64
			for n := int32(1); n <= 12000; n++ {
				off, size := l.Part(n)
				if off != want {
					t.Fatalf("%+v: Part(%d) offset = %d, want %d", l, n, off, want)
				}
				if size < l.BaseSize {
					t.Fatalf("%+v: Part(%d) size = %d", l, n, size)
				}
				if got := l.PartAt(off); got != n {
					t.Fatalf("%+v: PartAt(%d) = %d, want %d", l, off, got, n)
				}
				if got := l.PartAt(off + size - 1); got != n {
					t.Fatalf("%+v: PartAt(%d) = %d, want %d", l, off+size-1, got, n)
				}
				want = off + size
				if want > 1<<55 {
					break // small tiers double fast: stay clear of overflow
				}
			}
		}
	})

	t.Run("50Mbps24h", func(t *testing.T) {
		maxBytes := int64(50_000_000 / 8 * 24 * 3600)
		l := spool.NewLayout(maxBytes)
		if l.BaseSize < 5*mib || l.BaseSize%mib != 0 || l.TierParts != 1000 {
			t.Fatalf("NewLayout(%d) = %+v", maxBytes, l)
		}
		if n := l.PartAt(maxBytes - 1); n > spool.MaxParts {
			t.Fatalf("%d bytes need %d parts", maxBytes, n)
		}
	})

	t.Run("Smallest", func(t *testing.T) {
		for _, maxBytes := range []int64{1, 5 * mib, 3 << 40, 10 << 40, 10<<40 + 12345} {
			l := spool.NewLayout(maxBytes)
			if l.BaseSize < 5*mib || l.BaseSize%mib != 0 {
				t.Fatalf("NewLayout(%d) = %+v", maxBytes, l)
			}
			if n := l.PartAt(maxBytes - 1); n > spool.MaxParts {
				t.Fatalf("NewLayout(%d) = %+v needs %d parts", maxBytes, l, n)
			}
			if l.BaseSize > 5*mib {
				smaller := spool.Layout{BaseSize: l.BaseSize - mib, TierParts: l.TierParts}
				if n := smaller.PartAt(maxBytes - 1); n <= spool.MaxParts {
					t.Fatalf("NewLayout(%d) = %+v, but %+v fits in %d parts", maxBytes, l, smaller, n)
				}
			}
		}
	})

	t.Run("PartAt", func(t *testing.T) {
		l := spool.NewLayout(0)
		const tier0 = 1000 * 5 * mib
		for _, tc := range []struct {
			offset int64
			want   int32
		}{
			{0, 1},
			{1, 1},
			{5*mib - 1, 1},
			{5 * mib, 2},
			{10*mib + 17, 3},
			{tier0 - 1, 1000},
			{tier0, 1001},
			{tier0 + 10*mib - 1, 1001},
			{tier0 + 10*mib, 1002},
			{3*tier0 - 1, 2000},
			{3 * tier0, 2001},
			{511 * tier0, 9001},
		} {
			if got := l.PartAt(tc.offset); got != tc.want {
				t.Errorf("PartAt(%d) = %d, want %d", tc.offset, got, tc.want)
			}
		}
	})
}
