package decode

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestSquashfsBlockDictionary: a squashfs data block compressed with LZMA
// or xz (the xz tool's, asking for a 64 MiB dictionary, as a hostile
// image may) decodes to at most its block size, so its decoder gets a
// dictionary of that size: before, it allocated the header's 64 MiB for
// each block, outside the decoder memory cap.
func TestSquashfsBlockDictionary(t *testing.T) {
	testutil.RequireTool(t, "xz")
	dir := t.TempDir()
	want := []byte("a block of a squashfs file, small\n")
	if err := os.WriteFile(filepath.Join(dir, "block"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, "xz --format=lzma --lzma1=preset=0,dict=64MiB -c block > block.lzma && xz --format=xz --check=crc32 --lzma2=preset=0,dict=64MiB -c block > block.xz")
	for _, c := range []struct {
		name string
		comp uint16
	}{{"block.lzma", 2}, {"block.xz", 4}} {
		in, err := os.ReadFile(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		q := &sqfs{comp: c.comp}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := q.decompress(nil, in, 128<<10)
		runtime.ReadMemStats(&after)
		if err != nil || string(got) != string(want) {
			t.Fatalf("%s: %q, %v", c.name, got, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
			t.Errorf("%s: %d MiB allocated to decode a block of 128 KiB at most", c.name, n>>20)
		}
	}
}
