package structural

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
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
// the XOR relations and are dropped by the block filter's zero test.
func BenchmarkFindAESKeySchedulesZero(b *testing.B) {
	data := make([]byte, 16<<20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		FindAESKeySchedules(data, 10, func(int, []byte) { b.Fatal("unexpected schedule in zero data") })
	}
}

// hostBenchSize is the size of the real-bytes benchmarks' buffer.
const hostBenchSize = 128 << 20

// benchHostData is 128 MiB of this machine's /usr/lib and /usr/bin files as
// a page cache holds them: real code, data and text, where the AES filter's
// XOR relations pass far more often than on random bytes.
func benchHostData(b *testing.B) []byte {
	return testutil.HostBytes(b, hostBenchSize, "/usr/lib", "/usr/bin")
}

// processCPU returns the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCPU runs f in a b.Loop and reports, besides the wall-clock MB/s,
// MB/s per CPU-second: on a shared machine the wall clock counts the time
// other processes held the core.
func benchCPU(b *testing.B, n int, f func()) {
	b.SetBytes(int64(n))
	var cpu time.Duration
	for b.Loop() {
		t := processCPU()
		f()
		cpu += processCPU() - t
	}
	if cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
	}
}

// BenchmarkFindMemoryKeysHost is the memory-key search (AES schedules and
// DER RSA keys in one pass) over real bytes, with this CPU's filter.
func BenchmarkFindMemoryKeysHost(b *testing.B) {
	data := benchHostData(b)
	benchCPU(b, len(data), func() {
		FindMemoryKeys(data, 10, func(int, []byte) {}, func(int, int, KeyInfo) {})
	})
}

// BenchmarkFindMemoryKeysHostFilter is the same search with each block
// filter this CPU runs: the portable one, as on a CPU without AVX2, and the
// vector ones.
func BenchmarkFindMemoryKeysHostFilter(b *testing.B) {
	data := benchHostData(b)
	filters := map[string]blockFilter{"portable": memKeyBlocksGo}
	for name, f := range memKeyVectors() {
		filters[name] = f
	}
	for _, name := range []string{"portable", "avx2", "avx512"} {
		f, ok := filters[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			benchCPU(b, len(data), func() {
				findMemoryKeys(f, data, 10, func(int, []byte) {}, func(int, int, KeyInfo) {})
			})
		})
	}
}

// BenchmarkBytesCountHostBaseline is the same-run baseline for the two
// above: bytes.Count of one literal over the same bytes.
func BenchmarkBytesCountHostBaseline(b *testing.B) {
	data := benchHostData(b)
	benchCPU(b, len(data), func() { bytes.Count(data, []byte("-----BEGIN")) })
}
