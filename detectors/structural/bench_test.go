package structural

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
)

const benchSize = 64 << 20

var benchData = sync.OnceValue(func() []byte {
	// Random bytes with no zero byte: "non-zero memory".
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, benchSize)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			c := byte(v >> (8 * k))
			if c == 0 {
				c = 0x5a
			}
			b[i+k] = c
		}
	}
	return b
})

// BenchmarkBytesCountBaseline is the same-run baseline: bytes.Count of one
// literal over the same data.
func BenchmarkBytesCountBaseline(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		bytes.Count(data, []byte("-----BEGIN"))
	}
}

func BenchmarkFindAESKeySchedules(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		FindAESKeySchedules(data, 10, func(int, []byte) { b.Fatal("unexpected schedule in random data") })
	}
}

func BenchmarkFindRSAPrivateDER(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		FindRSAPrivateDER(data, func(int, int, KeyInfo) { b.Fatal("unexpected key in random data") })
	}
}

// BenchmarkFindAESKeySchedulesZero shows the cost on zero pages, which pass
// the XOR prefilter and are rejected by the byte-fill check (the engine
// normally skips them before calling).
func BenchmarkFindAESKeySchedulesZero(b *testing.B) {
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		FindAESKeySchedules(data, 10, func(int, []byte) { b.Fatal("unexpected schedule in zero data") })
	}
}
