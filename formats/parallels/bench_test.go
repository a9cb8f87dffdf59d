package parallels

import (
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
)

// BenchmarkReadParallels reads a 64 MiB parallels image made by qemu-img sequentially
// in 1 MiB reads; compare with BenchmarkReadRaw, the same bytes as a raw
// file.
func BenchmarkReadParallels(b *testing.B) {
	_, p := blockmaptest.BenchFixture(b, "parallels")
	blockmaptest.BenchRead(b, Open, p)
}

// BenchmarkReadRaw is BenchmarkReadParallels's baseline.
func BenchmarkReadRaw(b *testing.B) { blockmaptest.BenchReadRaw(b, "parallels") }
