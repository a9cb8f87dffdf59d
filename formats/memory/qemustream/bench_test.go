package qemustream

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/imgaudit/imgaudit/internal/qemufixture"
)

// BenchmarkStream compares reading a real migration stream's file raw with
// parsing it and reading every page through the guest-physical Disk (page
// by page, as a scanner would), over the same bytes.
func BenchmarkStream(b *testing.B) {
	vm := qemufixture.Capture(b, qemufixture.Config{Fill: 32 << 20}, `migrate "exec:cat > {dir}/mig.bin"`)
	path := vm.Path("mig.bin")
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	size := st.Size()
	buf := make([]byte, 1<<20)
	b.Run("raw-file-read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for off := int64(0); off < size; off += int64(len(buf)) {
				if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("parse+read-pages", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			s, err := Parse(context.Background(), path, f, size)
			if err != nil {
				b.Fatal(err)
			}
			for e, err := range s.Physical.Extents(context.Background()) {
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Physical.ReadAt(buf[:e.Length], e.Offset); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
