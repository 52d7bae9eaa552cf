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

	"github.com/minio/crc64nvme"
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
	// It uses carry-less multiplication where the CPU has it (PCLMULQDQ,
	// VPCLMULQDQ with AVX-512, ARMv8's PMULL), through minio/crc64nvme:
	// 50 GB/s on this VM's AVX-512 against 3.6 GB/s for the four-lane
	// slicing-by-8 tables it replaces (go test -bench Throughput).
	CRC64NVME = newAlgorithm("CRC64NVME", 64, bits.Reverse64(PolyCRC64NVME), crc64nvme.Update)
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
