package vhd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// FuzzVHDFooter feeds footers, dynamic headers, BATs, locators and bitmaps
// (as a sparse file description, see blockmaptest.EncodeSparse) to Open and
// reads what it yields. It must never panic or allocate without bound.
func FuzzVHDFooter(f *testing.F) { blockmaptest.FuzzImage(f, Open) }

// TestWriteSeeds regenerates testdata/fuzz/FuzzVHDFooter from images made
// by qemu-img (run with IMGAUDIT_WRITE_SEEDS=1).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to regenerate the fuzz corpus")
	}
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join("testdata", "fuzz", "FuzzVHDFooter")
	seed := func(name, img string) {
		blockmaptest.WriteSeed(t, out, name, blockmaptest.EncodeSparse(testutil.FileSnapshot(t, img)))
	}
	for _, c := range []struct{ name, opts string }{{"dynamic", "subformat=dynamic"}, {"fixed", "subformat=fixed,force_size=on"}} {
		raw := filepath.Join(dir, c.name+".raw")
		blockmaptest.PatternRaw(t, raw, c.name, 3<<20, 512*5)
		img := filepath.Join(dir, c.name+".vhd")
		testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", c.opts, raw, img)
		seed(c.name, img)
	}
	base := filepath.Join(dir, "base.vhd")
	testutil.Run(t, "qemu-img", "create", "-f", "vpc", "-o", "force_size=on", base, "3M")
	raw := filepath.Join(dir, "child.raw")
	blockmaptest.PatternRaw(t, raw, "child", 3<<20, 512*5)
	child := filepath.Join(dir, "child.vhd")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, child)
	makeDifferencing(t, child, base, "base.vhd", []int{5})
	seed("differencing", child)
}
