package parallels

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// FuzzParallelsHeader feeds headers and BATs (as a sparse file
// description, see blockmaptest.EncodeSparse) to Open and reads what it
// yields.
func FuzzParallelsHeader(f *testing.F) { blockmaptest.FuzzImage(f, Open) }

// TestWriteSeeds regenerates testdata/fuzz/FuzzParallelsHeader from
// images made by qemu-img (run with IMGAUDIT_WRITE_SEEDS=1).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to regenerate the fuzz corpus")
	}
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	out := filepath.Join("testdata", "fuzz", "FuzzParallelsHeader")
	seed := func(name, img string) {
		blockmaptest.WriteSeed(t, out, name, blockmaptest.EncodeSparse(testutil.FileSnapshot(t, img)))
	}
	seed("ext", makeImage(t, dir, "ext", "cluster_size=4k", 1<<20, 512*5, 300<<10))
	v1 := makeImage(t, dir, "v1", "cluster_size=4k", 1<<20, 512*5, 700<<10)
	toV1(t, v1)
	seed("v1", v1)
}

// FuzzDescriptor feeds DiskDescriptor.xml files to Open, beside a top
// image and the root image a valid descriptor names as its parent, and
// reads what it yields.
func FuzzDescriptor(f *testing.F) {
	testutil.RequireTool(f, "qemu-img")
	src := f.TempDir()
	base := makeImage(f, src, "root", "cluster_size=4k", 256<<10, 0, 100<<10)
	top := filepath.Join(src, "top.hds")
	testutil.Run(f, "qemu-img", "create", "-q", "-f", "parallels", "-o", "cluster_size=4k", top, "256K")
	images := map[string][]byte{"root.hds": testutil.FileSnapshot(f, base), "top.hds": testutil.FileSnapshot(f, top)}
	f.Add([]byte(`<Parallels_disk_image Version="1.0"><StorageData><Storage>
<Image><GUID>{a}</GUID><Type>Compressed</Type><File>root.hds</File></Image>
<Image><GUID>{b}</GUID><Type>Compressed</Type><File>top.hds</File></Image>
</Storage></StorageData><Snapshots>
<Shot><GUID>{a}</GUID><ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID></Shot>
<Shot><GUID>{b}</GUID><ParentGUID>{a}</ParentGUID></Shot>
</Snapshots></Parallels_disk_image>`))
	f.Fuzz(func(t *testing.T, desc []byte) {
		dir := t.TempDir()
		for name, b := range images {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, descriptorName), desc, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := Open(context.Background(), filepath.Join(dir, "top.hds"), model.Options{Open: New})
		if err != nil {
			t.Fatal(err) // the descriptor is never a reason to refuse the image
		}
		defer im.Close()
		blockmaptest.FuzzDisk(im, 64)
	})
}
