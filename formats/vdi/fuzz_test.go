package vdi

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// FuzzVDIHeader feeds headers and block maps (as a sparse file
// description, see blockmaptest.EncodeSparse) to Open and reads what it
// yields.
func FuzzVDIHeader(f *testing.F) { blockmaptest.FuzzImage(f, Open) }

// TestWriteSeeds regenerates testdata/fuzz/FuzzVDIHeader from images made
// by qemu-img (run with IMGAUDIT_WRITE_SEEDS=1).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to regenerate the fuzz corpus")
	}
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join("testdata", "fuzz", "FuzzVDIHeader")
	seed := func(name, img string) {
		blockmaptest.WriteSeed(t, out, name, blockmaptest.EncodeSparse(testutil.FileSnapshot(t, img)))
	}
	seed("dynamic", makeImage(t, dir, "dynamic", "static=off", 3<<20, 512*5, 2<<20))
	seed("static", makeImage(t, dir, "static", "static=on", 3<<20, 512*5))
	base := makeImage(t, dir, "base", "static=off", 3<<20, 0)
	child := makeImage(t, dir, "child", "static=off", 3<<20, 1<<20)
	makeDifferencing(t, child, base)
	seed("differencing", child)
}
