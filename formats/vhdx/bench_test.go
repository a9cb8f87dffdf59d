package vhdx

import (
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
)

// BenchmarkReadVHDX reads a 64 MiB dynamic VHDX sequentially in 1 MiB
// reads; compare with BenchmarkReadRaw, the same bytes as a raw file.
func BenchmarkReadVHDX(b *testing.B) {
	_, v := blockmaptest.BenchFixture(b, "vhdx", "-o", "subformat=dynamic")
	blockmaptest.BenchRead(b, Open, v)
}

// BenchmarkReadRaw is BenchmarkReadVHDX's baseline.
func BenchmarkReadRaw(b *testing.B) { blockmaptest.BenchReadRaw(b, "vhdx", "-o", "subformat=dynamic") }
