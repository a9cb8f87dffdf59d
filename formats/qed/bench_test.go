package qed

import (
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
)

// BenchmarkReadQED reads a 64 MiB qed image made by qemu-img sequentially
// in 1 MiB reads; compare with BenchmarkReadRaw, the same bytes as a raw
// file.
func BenchmarkReadQED(b *testing.B) {
	_, p := blockmaptest.BenchFixture(b, "qed")
	blockmaptest.BenchRead(b, Open, p)
}

// BenchmarkReadRaw is BenchmarkReadQED's baseline.
func BenchmarkReadRaw(b *testing.B) { blockmaptest.BenchReadRaw(b, "qed") }
