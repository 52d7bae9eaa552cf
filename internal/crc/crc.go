// Package crc computes the CRCs that S3 verifies as full-object checksums
// (CRC64NVME, CRC32C and CRC32) and combines them: the CRC of a
// concatenation follows from the CRCs of its pieces and the length of the
// second, without the bytes. A multipart object's checksum is therefore
// known from its parts' checksums, in any order of upload, even when the
// first part is replaced at the end.
package crc

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"math/bits"
)

// Algorithm is one CRC as S3 defines it: reflected, initial value and final
// XOR all ones. Values are held in a uint64, a 32-bit CRC in its low half.
type Algorithm struct {
	name   string
	width  uint   // bits: 32 or 64
	poly   uint64 // the polynomial, reflected (bit 0 is x^(width-1))
	update func(crc uint64, p []byte) uint64
	// x2n[k] is x^(2^k) modulo the polynomial, for Combine.
	x2n [64]uint64
}

// The polynomials, in their usual (unreflected) form.
const (
	// PolyCRC64NVME is CRC-64/NVME, which S3 calls CRC64NVME.
	PolyCRC64NVME = 0xad93d23594c93659
	// PolyCRC32C is CRC-32C (Castagnoli).
	PolyCRC32C = 0x1edc6f41
	// PolyCRC32 is CRC-32 of ISO-HDLC, zlib and Ethernet (IEEE).
	PolyCRC32 = 0x04c11db7
)

var (
	// CRC64NVME is S3's default checksum since 2025, and the cheapest to
	// combine per byte of object in S3's own pipeline.
	CRC64NVME = newAlgorithm("CRC64NVME", 64, bits.Reverse64(PolyCRC64NVME), update64NVME)
	// CRC32C uses the CPU's CRC32 instruction where Go has one (SSE 4.2, ARMv8).
	CRC32C = newAlgorithm("CRC32C", 32, uint64(bits.Reverse32(PolyCRC32C)), func(crc uint64, p []byte) uint64 {
		return uint64(crc32.Update(uint32(crc), castagnoli, p))
	})
	// CRC32 uses carry-less multiplication where Go has it.
	CRC32 = newAlgorithm("CRC32", 32, uint64(bits.Reverse32(PolyCRC32)), func(crc uint64, p []byte) uint64 {
		return uint64(crc32.Update(uint32(crc), crc32.IEEETable, p))
	})
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ByName returns the algorithm S3 calls name ("CRC64NVME", "CRC32C",
// "CRC32"), or nil.
func ByName(name string) *Algorithm {
	for _, a := range []*Algorithm{CRC64NVME, CRC32C, CRC32} {
		if a.name == name {
			return a
		}
	}
	return nil
}

func newAlgorithm(name string, width uint, poly uint64, update func(uint64, []byte) uint64) *Algorithm {
	a := &Algorithm{name: name, width: width, poly: poly, update: update}
	p := a.one() >> 1 // x^1
	for k := range a.x2n {
		a.x2n[k] = p
		p = a.mulmod(p, p)
	}
	return a
}

// Name returns S3's name of the algorithm, as in x-amz-checksum-algorithm.
func (a *Algorithm) Name() string { return a.name }

// String implements fmt.Stringer.
func (a *Algorithm) String() string { return a.name }

// Size returns the size of the CRC in bytes.
func (a *Algorithm) Size() int { return int(a.width / 8) }

// Update returns the CRC of the bytes whose CRC is crc followed by p. The
// CRC of no bytes is 0.
func (a *Algorithm) Update(crc uint64, p []byte) uint64 { return a.update(crc, p) }

// Checksum returns the CRC of p.
func (a *Algorithm) Checksum(p []byte) uint64 { return a.update(0, p) }

// Combine returns the CRC of A followed by B from crcA, the CRC of A, crcB,
// the CRC of B, and lenB, the length of B in bytes. It costs O(log lenB)
// multiplications modulo the polynomial, as zlib's crc32_combine since 1.2.12.
func (a *Algorithm) Combine(crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	// Appending lenB bytes multiplies A's register by x^(8·lenB); the
	// initial value and final XOR cancel out, as they are the same for A, B
	// and A‖B.
	return a.mulmod(a.xpow8n(uint64(lenB)), crcA) ^ crcB
}

// one returns the polynomial 1 (x^0) in the reflected form.
func (a *Algorithm) one() uint64 { return 1 << (a.width - 1) }

// mulmod returns x·y modulo the polynomial, both reflected.
func (a *Algorithm) mulmod(x, y uint64) uint64 { return mulmod(x, y, a.poly, a.width) }

// mulmod returns x·y modulo poly, all reflected in width bits.
func mulmod(x, y, poly uint64, width uint) uint64 {
	var p uint64
	for m := uint64(1) << (width - 1); m != 0; m >>= 1 {
		if x&m != 0 {
			p ^= y
			if x&(m-1) == 0 {
				break
			}
		}
		if y&1 != 0 {
			y = y>>1 ^ poly
		} else {
			y >>= 1
		}
	}
	return p
}

// xpow8n returns x^(8n) modulo the polynomial.
func (a *Algorithm) xpow8n(n uint64) uint64 {
	p := a.one()
	for k := 3; n != 0; n, k = n>>1, k+1 {
		if n&1 != 0 {
			p = a.mulmod(a.x2n[k&63], p)
		}
	}
	return p
}

// Encode returns crc in S3's form: base64 of its big-endian bytes, as in
// the x-amz-checksum-crc64nvme header and head-object --checksum-mode ENABLED.
func (a *Algorithm) Encode(crc uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], crc)
	return base64.StdEncoding.EncodeToString(b[8-a.Size():])
}

// Decode parses a CRC in S3's form.
func (a *Algorithm) Decode(s string) (uint64, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != a.Size() {
		return 0, fmt.Errorf("crc: %q is not a base64 %s of %d bytes", s, a.name, a.Size())
	}
	var v [8]byte
	copy(v[8-len(b):], b)
	return binary.BigEndian.Uint64(v[:]), nil
}

// New returns a running CRC. Its Sum appends the CRC big-endian, as S3 sends it.
func (a *Algorithm) New() hash.Hash64 { return &digest{a: a} }

type digest struct {
	a   *Algorithm
	crc uint64
}

func (d *digest) Write(p []byte) (int, error) { d.crc = d.a.update(d.crc, p); return len(p), nil }
func (d *digest) Sum64() uint64               { return d.crc }
func (d *digest) Reset()                      { d.crc = 0 }
func (d *digest) Size() int                   { return d.a.Size() }
func (d *digest) BlockSize() int              { return 1 }
func (d *digest) Sum(b []byte) []byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], d.crc)
	return append(b, v[8-d.a.Size():]...)
}

// nvme is the slicing-by-8 table of CRC64NVME. hash/crc64 builds such a
// table only for its own two polynomials and otherwise rebuilds one on
// every call of 2 KiB or more, which would cost more than the CRC of a
// 32 KiB read.
var nvme = func() *[8][256]uint64 {
	var t [8][256]uint64
	poly := bits.Reverse64(PolyCRC64NVME)
	for i := range 256 {
		crc := uint64(i)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ poly
			} else {
				crc >>= 1
			}
		}
		t[0][i] = crc
	}
	for i := range 256 {
		crc := t[0][i]
		for j := 1; j < 8; j++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[j][i] = crc
		}
	}
	return &t
}()

// lane is the length of each of the four streams that update64NVME runs
// side by side. One stream is bound by the latency of its table lookups
// (each 8 bytes wait for the previous 8); four independent ones keep the
// CPU's load units busy, and are joined with one multiplication each by
// the precomputed x^(8·lane).
const lane = 8 << 10

// nvmeLaneShift is x^(8·lane) modulo CRC64NVME's polynomial.
var nvmeLaneShift uint64

func init() { nvmeLaneShift = CRC64NVME.xpow8n(lane) }

func update64NVME(crc uint64, p []byte) uint64 {
	t := nvme
	poly := bits.Reverse64(PolyCRC64NVME)
	for len(p) >= 4*lane {
		c0, c1, c2, c3 := ^crc, ^uint64(0), ^uint64(0), ^uint64(0)
		l0, l1, l2, l3 := p[:lane], p[lane:2*lane], p[2*lane:3*lane], p[3*lane:4*lane]
		for i := 0; i+8 <= lane; i += 8 {
			c0 ^= binary.LittleEndian.Uint64(l0[i:])
			c1 ^= binary.LittleEndian.Uint64(l1[i:])
			c2 ^= binary.LittleEndian.Uint64(l2[i:])
			c3 ^= binary.LittleEndian.Uint64(l3[i:])
			c0 = t[7][c0&0xff] ^ t[6][c0>>8&0xff] ^ t[5][c0>>16&0xff] ^ t[4][c0>>24&0xff] ^
				t[3][c0>>32&0xff] ^ t[2][c0>>40&0xff] ^ t[1][c0>>48&0xff] ^ t[0][c0>>56]
			c1 = t[7][c1&0xff] ^ t[6][c1>>8&0xff] ^ t[5][c1>>16&0xff] ^ t[4][c1>>24&0xff] ^
				t[3][c1>>32&0xff] ^ t[2][c1>>40&0xff] ^ t[1][c1>>48&0xff] ^ t[0][c1>>56]
			c2 = t[7][c2&0xff] ^ t[6][c2>>8&0xff] ^ t[5][c2>>16&0xff] ^ t[4][c2>>24&0xff] ^
				t[3][c2>>32&0xff] ^ t[2][c2>>40&0xff] ^ t[1][c2>>48&0xff] ^ t[0][c2>>56]
			c3 = t[7][c3&0xff] ^ t[6][c3>>8&0xff] ^ t[5][c3>>16&0xff] ^ t[4][c3>>24&0xff] ^
				t[3][c3>>32&0xff] ^ t[2][c3>>40&0xff] ^ t[1][c3>>48&0xff] ^ t[0][c3>>56]
		}
		// Each lane's CRC, finalized, combined as Combine does.
		crc = mulmod(nvmeLaneShift, ^c0, poly, 64) ^ ^c1
		crc = mulmod(nvmeLaneShift, crc, poly, 64) ^ ^c2
		crc = mulmod(nvmeLaneShift, crc, poly, 64) ^ ^c3
		p = p[4*lane:]
	}
	return slicing8(crc, p)
}

// slicing8 is the CRC64NVME of one stream, 8 bytes a step.
func slicing8(crc uint64, p []byte) uint64 {
	crc = ^crc
	t := nvme
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return ^crc
}
