package crc_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash/crc64"
	"math/rand/v2"
	"testing"

	"github.com/recsink/recsink/internal/crc"
)

// Check values of the CRC catalogue ("123456789"), the vectors of
// aws-sdk-go-v2's service/internal/checksum tests ("hello world", in S3's
// base64 form) and the 64-bit test cases of the NVMe command set
// specification (4 KiB of zeros, of ones, of an incrementing byte).
func TestAlgorithm_Vectors(t *testing.T) {
	t.Parallel()
	fill := func(f func(i int) byte) []byte {
		b := make([]byte, 4096)
		for i := range b {
			b[i] = f(i)
		}
		return b
	}
	for _, tt := range []struct {
		name string
		alg  *crc.Algorithm
		in   []byte
		want uint64
		b64  string
	}{
		{name: "CRC64NVME/Check", alg: crc.CRC64NVME, in: []byte("123456789"), want: 0xae8b14860a799888},
		{name: "CRC64NVME/HelloWorld", alg: crc.CRC64NVME, in: []byte("hello world"), b64: "jSnVw/bqjr4="},
		{name: "CRC64NVME/Empty", alg: crc.CRC64NVME, in: nil, want: 0, b64: "AAAAAAAAAAA="},
		{name: "CRC64NVME/NVMeZeros", alg: crc.CRC64NVME, in: fill(func(int) byte { return 0 }), want: 0x6482d367eb22b64e},
		{name: "CRC64NVME/NVMeOnes", alg: crc.CRC64NVME, in: fill(func(int) byte { return 0xff }), want: 0xc0ddba7302eca3ac},
		{name: "CRC64NVME/NVMeIncrementing", alg: crc.CRC64NVME, in: fill(func(i int) byte { return byte(i) }), want: 0x3e729f5f6750449c},
		{name: "CRC32C/Check", alg: crc.CRC32C, in: []byte("123456789"), want: 0xe3069283},
		{name: "CRC32C/HelloWorld", alg: crc.CRC32C, in: []byte("hello world"), b64: "yZRlqg=="},
		{name: "CRC32/Check", alg: crc.CRC32, in: []byte("123456789"), want: 0xcbf43926},
		{name: "CRC32/HelloWorld", alg: crc.CRC32, in: []byte("hello world"), b64: "DUoRhQ=="},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.alg.Checksum(tt.in)
			if tt.b64 != "" {
				if s := tt.alg.Encode(got); s != tt.b64 {
					t.Errorf("Encode(Checksum) = %s, want %s", s, tt.b64)
				}
				v, err := tt.alg.Decode(tt.b64)
				if err != nil || v != got {
					t.Errorf("Decode(%s) = %#x, %v; want %#x", tt.b64, v, err, got)
				}
			} else if got != tt.want {
				t.Errorf("Checksum = %#x, want %#x", got, tt.want)
			}
			h := tt.alg.New()
			for _, c := range tt.in {
				h.Write([]byte{c})
			}
			if h.Sum64() != got {
				t.Errorf("byte by byte = %#x, want %#x", h.Sum64(), got)
			}
			if len(h.Sum(nil)) != tt.alg.Size() {
				t.Errorf("Sum has %d bytes, want %d", len(h.Sum(nil)), tt.alg.Size())
			}
		})
	}
}

// TestCRC64NVME_MatchesSDK compares CRC64NVME with hash/crc64 over the
// reflected polynomial that aws-sdk-go-v2 uses (0x9a6c9329ac4bc9b5): on
// every length up to 300 (below and around the 128-byte blocks of the
// carry-less multiplication, and the 8-byte stride of the tables), at every
// alignment of the first byte, and on large random buffers.
func TestCRC64NVME_MatchesSDK(t *testing.T) {
	t.Parallel()
	sdk := crc64.MakeTable(0x9a6c_9329_ac4b_c9b5)
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20+13)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for n := range 300 {
		if got, want := crc.CRC64NVME.Checksum(buf[:n]), crc64.Checksum(buf[:n], sdk); got != want {
			t.Fatalf("len %d: %#x, want %#x", n, got, want)
		}
	}
	for off := range 16 {
		p := buf[off : off+1024+off]
		if got, want := crc.CRC64NVME.Update(0x1234, p), crc64.Update(0x1234, sdk, p); got != want {
			t.Fatalf("offset %d: %#x, want %#x", off, got, want)
		}
	}
	for _, n := range []int{32<<10 - 1, 32 << 10, 32<<10 + 7, 64<<10 + 9} {
		if got, want := crc.CRC64NVME.Checksum(buf[:n]), crc64.Checksum(buf[:n], sdk); got != want {
			t.Fatalf("len %d: %#x, want %#x", n, got, want)
		}
		if got, want := crc.CRC64NVME.Update(0x1234, buf[:n]), crc64.Update(0x1234, sdk, buf[:n]); got != want {
			t.Fatalf("len %d from a running CRC: %#x, want %#x", n, got, want)
		}
	}
	if got, want := crc.CRC64NVME.Checksum(buf), crc64.Checksum(buf, sdk); got != want {
		t.Fatalf("1 MiB: %#x, want %#x", got, want)
	}
}

func TestAlgorithm_Combine(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 200<<10+5) // several 4×8 KiB blocks of CRC64NVME
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	for _, alg := range []*crc.Algorithm{crc.CRC64NVME, crc.CRC32C, crc.CRC32} {
		t.Run(alg.Name(), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(7, uint64(alg.Size())))
			// Edge cases: empty pieces on either side, one byte.
			for _, split := range [][2]int{{0, 0}, {0, 10}, {10, 0}, {1, 1}, {0, len(data)}, {len(data), 0}} {
				a, b := data[:split[0]], data[split[0]:split[0]+split[1]]
				want := alg.Checksum(data[:split[0]+split[1]])
				if got := alg.Combine(alg.Checksum(a), alg.Checksum(b), int64(len(b))); got != want {
					t.Errorf("split %v: %#x, want %#x", split, got, want)
				}
			}
			// Property: any split of any prefix into any number of pieces,
			// combined left to right, gives the direct CRC.
			for range 100 {
				n := r.IntN(len(data) + 1)
				if r.IntN(4) == 0 {
					n = r.IntN(100)
				}
				whole := data[:n]
				pieces := 1 + r.IntN(8)
				var crcSum uint64
				rest := whole
				for i := range pieces {
					size := len(rest)
					if i < pieces-1 {
						size = r.IntN(len(rest) + 1)
					}
					crcSum = alg.Combine(crcSum, alg.Checksum(rest[:size]), int64(size))
					rest = rest[size:]
				}
				if want := alg.Checksum(whole); crcSum != want {
					t.Fatalf("%d bytes in %d pieces: %#x, want %#x", n, pieces, crcSum, want)
				}
			}
		})
	}
}

// TestAlgorithm_CombineReplacedFirstPart is the multipart case: parts 2..n
// combined as they go up, part 1 rewritten at the end, and the object's CRC
// from the new part 1 and the rest.
func TestAlgorithm_CombineReplacedFirstPart(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(5, 6))
	parts := [][]byte{make([]byte, 300<<10), make([]byte, 300<<10), make([]byte, 1234)}
	for _, p := range parts {
		for i := range p {
			p[i] = byte(r.Uint32())
		}
	}
	for _, alg := range []*crc.Algorithm{crc.CRC64NVME, crc.CRC32C, crc.CRC32} {
		var rest uint64
		var restLen int64
		for _, p := range parts[1:] {
			rest = alg.Combine(rest, alg.Checksum(p), int64(len(p)))
			restLen += int64(len(p))
		}
		first := bytes.Clone(parts[0])
		copy(first[100:], "a finalized header")
		got := alg.Combine(alg.Checksum(first), rest, restLen)
		if want := alg.Checksum(bytes.Join([][]byte{first, parts[1], parts[2]}, nil)); got != want {
			t.Errorf("%s: %#x, want %#x", alg, got, want)
		}
	}
}

func TestDecode_Invalid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "not base64!", "yZRlqg==", "jSnVw/bqjr4=="} {
		if _, err := crc.CRC64NVME.Decode(s); err == nil {
			t.Errorf("Decode(%q) succeeded", s)
		}
	}
	if crc.ByName("CRC64NVME") != crc.CRC64NVME || crc.ByName("SHA256") != nil {
		t.Error("ByName")
	}
}

// BenchmarkThroughput measures each CRC beside SHA-256 over the same
// 1 MiB buffer (the size of the SDK's reads from a file section is 32 KiB;
// the per-byte cost does not depend on it above a few KiB). -benchtime
// gives stable MB/s; the ratio to SHA-256 is reported as "x_sha256".
func BenchmarkThroughput(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var shaNs float64 // per op, measured first
	b.Run("SHA256", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			sha256.Sum256(buf)
		}
		shaNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	for _, alg := range []*crc.Algorithm{crc.CRC64NVME, crc.CRC32C, crc.CRC32} {
		b.Run(alg.Name(), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				alg.Checksum(buf)
			}
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if shaNs > 0 {
				b.ReportMetric(shaNs/perOp, "x_sha256")
			}
		})
	}
}

func BenchmarkCombine(b *testing.B) {
	for _, alg := range []*crc.Algorithm{crc.CRC64NVME, crc.CRC32C} {
		b.Run(alg.Name(), func(b *testing.B) {
			var c uint64
			for b.Loop() {
				c = alg.Combine(c, 0x1234, 5<<20+17)
			}
			_ = fmt.Sprint(c)
		})
	}
}
