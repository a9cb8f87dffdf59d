package qed

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// FuzzQEDHeader feeds headers and tables (as a sparse file description,
// see blockmaptest.EncodeSparse) to Open and reads what it yields.
func FuzzQEDHeader(f *testing.F) { blockmaptest.FuzzImage(f, Open) }

// TestWriteSeeds regenerates testdata/fuzz/FuzzQEDHeader from images made
// by qemu-img (run with IMGAUDIT_WRITE_SEEDS=1).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to regenerate the fuzz corpus")
	}
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join("testdata", "fuzz", "FuzzQEDHeader")
	seed := func(name, img string) {
		blockmaptest.WriteSeed(t, out, name, blockmaptest.EncodeSparse(testutil.FileSnapshot(t, img)))
	}
	seed("4k", makeImage(t, dir, "4k", "cluster_size=4k,table_size=2", 512<<10, 512*5, 300<<10))
	seed("backing", func() string {
		p := filepath.Join(dir, "backing.qed")
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "qed", "-o", "cluster_size=4k,table_size=2", "-u", "-b", "base.raw", "-F", "raw", p, "512K")
		return p
	}())
}
