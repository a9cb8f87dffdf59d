package vhdx

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// FuzzVHDX feeds headers, region tables, metadata, parent locators, BATs
// and sector bitmaps (as a sparse file description, see
// blockmaptest.EncodeSparse: a VHDX is at least 1 MiB) to Open and reads
// what it yields.
func FuzzVHDX(f *testing.F) { blockmaptest.FuzzImage(f, Open) }

// TestWriteSeeds regenerates testdata/fuzz/FuzzVHDX from images made by
// qemu-img (run with IMGAUDIT_WRITE_SEEDS=1).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to regenerate the fuzz corpus")
	}
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join("testdata", "fuzz", "FuzzVHDX")
	seed := func(name, img string) {
		blockmaptest.WriteSeed(t, out, name, blockmaptest.EncodeSparse(testutil.FileSnapshot(t, img)))
	}
	mk := func(name, opts string, offs ...int64) string {
		raw := filepath.Join(dir, name+".raw")
		blockmaptest.PatternRaw(t, raw, name, 3<<20, offs...)
		img := filepath.Join(dir, name+".vhdx")
		testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", opts, raw, img)
		return img
	}
	seed("dynamic", mk("dynamic", "subformat=dynamic,block_size=1M", 512*5))
	seed("fixed", mk("fixed", "subformat=fixed,block_size=1M", 512*5))
	base := mk("base", "subformat=dynamic,block_size=1M", 0)
	child := mk("child", "subformat=dynamic,block_size=1M", 512*5)
	makeDifferencing(t, child, base, []int{5})
	seed("differencing", child)
	dirty := bytes.Clone(testutil.FileSnapshot(t, base))
	x := parsed(t, base)
	g := guid("11223344-5566-7788-99AA-BBCCDDEEFF00")
	setHeaderField(dirty, 48, g[:])
	copy(dirty[x.hdr.logOffset:], logEntry(g[:], uint64(len(dirty))))
	blockmaptest.WriteSeed(t, out, "dirty-log", blockmaptest.EncodeSparse(dirty))
}
