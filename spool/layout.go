package spool

// MinPartSize is S3's smallest allowed size of a multipart part other than
// the last one.
const MinPartSize = 5 << 20

// MaxParts is how many parts NewLayout plans for at most: S3 allows 10,000, and
// the margin absorbs a recording that runs over its expected rate.
const MaxParts = 9000

// defaultTierParts is how many parts share one size before the size doubles.
const defaultTierParts = 1000

// Layout decides part boundaries as a pure function of the part number, so
// they are the same after a restart and need not be stored. Parts
// 1..TierParts have BaseSize bytes, the next TierParts twice that, then 4x,
// and so on: short recordings get small parts (uploaded soon after they are
// recorded) while long ones still fit S3's part count.
type Layout struct {
	BaseSize  int64
	TierParts int32
}

// NewLayout returns the layout with TierParts = 1000 and the smallest
// BaseSize (at least 5 MiB, a whole number of MiB) whose first MaxParts parts
// hold maxBytes, the most a recording can reach (max ingest rate x max
// duration). Beyond about 10 TB the late parts would exceed S3's 5 GiB part
// limit; S3 caps an object at 5 TiB anyway.
func NewLayout(maxBytes int64) Layout {
	unit := Layout{BaseSize: 1, TierParts: defaultTierParts}
	off, size := unit.Part(MaxParts)
	perBase := off + size // bytes in MaxParts parts per byte of BaseSize
	base := (maxBytes + perBase - 1) / perBase
	const mib = 1 << 20
	base = (base + mib - 1) / mib * mib
	if base < MinPartSize {
		base = MinPartSize
	}
	return Layout{BaseSize: base, TierParts: defaultTierParts}
}

// valid reports whether l can be used at all: a zero Layout would divide by
// zero.
func (l Layout) valid() bool { return l.BaseSize > 0 && l.TierParts > 0 }

// Part returns the byte offset and size of part n (n >= 1).
func (l Layout) Part(n int32) (offset, size int64) {
	tier := (n - 1) / l.TierParts
	i := (n - 1) % l.TierParts
	size = l.BaseSize << tier
	// Tiers 0..tier-1 hold TierParts*BaseSize*(1+2+...+2^(tier-1)) bytes.
	offset = l.BaseSize*int64(l.TierParts)*(int64(1)<<tier-1) + int64(i)*size
	return offset, size
}

// PartAt returns the number of the part that holds byte offset (>= 0).
func (l Layout) PartAt(offset int64) int32 {
	var start int64
	for tier := int32(0); ; tier++ {
		size := l.BaseSize << tier
		tierBytes := size * int64(l.TierParts)
		if offset-start < tierBytes {
			return tier*l.TierParts + int32((offset-start)/size) + 1
		}
		start += tierBytes
	}
}
