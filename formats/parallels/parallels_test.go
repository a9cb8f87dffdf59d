package parallels

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func makeImage(t testing.TB, dir, name, opts string, size int64, offs ...int64) string {
	t.Helper()
	return blockmaptest.MakeImage(t, dir, name, "parallels", "hds", opts, size, offs...)
}

// toV1 rewrites an image qemu-img made ("WithouFreSpacExt", BAT entries
// in clusters) as a "WithoutFreeSpace" image of the same clusters: the
// older magic, whose BAT entries are in sectors (parallels.rst, "BAT").
// QEMU reads both; the disk they hold is the same.
func toV1(t testing.TB, img string) {
	t.Helper()
	b := testutil.FileSnapshot(t, img)
	le := binary.LittleEndian
	copy(b, "WithoutFreeSpace")
	tracks := le.Uint32(b[28:])
	for i := range le.Uint32(b[32:]) {
		at := headerSize + 4*i
		le.PutUint32(b[at:], le.Uint32(b[at:])*tracks)
	}
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFidelity: images made by qemu-img read as `qemu-img convert -O raw`
// reads them, in both header formats.
func TestFidelity(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	cases := []struct {
		name, opts, sub string
		size            int64
		v1              bool
	}{
		{"default-1m-clusters", "cluster_size=1M", "WithouFreSpacExt", 7 << 20, false},
		{"64k-clusters", "cluster_size=64k", "WithouFreSpacExt", 6 << 20, false},
		{"odd-size", "cluster_size=64k", "WithouFreSpacExt", 5<<20 + 3*512, false},
		{"WithoutFreeSpace", "cluster_size=64k", "WithoutFreeSpace", 6 << 20, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImage(t, t.TempDir(), tc.name, tc.opts, tc.size)
			if tc.v1 {
				toV1(t, img)
			}
			blockmaptest.CheckFidelity(t, Open, Probe, img, "parallels", tc.sub)
		})
	}
}

// TestUnreferenced: a cluster whose BAT entry is cleared still holds
// its bytes; they are in the unreferenced view, at their host offset.
func TestUnreferenced(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "unref", "cluster_size=1M", 6<<20)
	b := testutil.FileSnapshot(t, img)
	le := binary.LittleEndian
	at := headerSize + 4*4 // cluster 4 holds the marker at 4 MiB + 4096
	e := le.Uint32(b[at:])
	if e == 0 {
		t.Fatal("cluster 4 not allocated by qemu-img")
	}
	le.PutUint32(b[at:], 0)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	hostOff := int64(e)*int64(le.Uint32(b[28:]))*sectorSize + 4096
	blockmaptest.CheckUnreferenced(t, Open, img, "parallels", hostOff)
}

// TestInUse: an image whose writer never closed it opens, says so, and
// reads as qemu-img reads it.
func TestInUse(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "inuse", "cluster_size=64k", 6<<20)
	blockmaptest.CheckMarkedDirty(t, Open, img, "parallels", func(b []byte) { binary.LittleEndian.PutUint32(b[44:], inUse) }, "in_use", "marked in use")
}

func TestHostile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "h", "cluster_size=64k", 6<<20)
	orig := testutil.FileSnapshot(t, img)
	le := binary.LittleEndian
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"magic", func(b []byte) []byte { copy(b, "WithoutFreeSpacX"); return b }, "bad magic"},
		{"version", blockmaptest.PutLE32(16, 3), "version"},
		{"tracks-zero", blockmaptest.PutLE32(28, 0), "zero sectors per cluster"},
		{"tracks-huge", blockmaptest.PutLE32(28, 1<<23), "over"},
		{"bat-huge", blockmaptest.PutLE32(32, 1<<30), "BAT entries"},
		{"bat-past-eof", blockmaptest.PutLE32(32, 1<<22), "past the end of the file"},
		{"disk-size", blockmaptest.PutLE64(36, 1<<40), "exceeds"},
		{"ext-off", blockmaptest.PutLE64(56, 1<<50), "format extension"},
		{"bat-entry-past-eof", blockmaptest.PutLE32(headerSize, 1<<20), "outside the data area"},
		{"truncated", func(b []byte) []byte { return b[:40] }, "too small"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blockmaptest.CheckRefused(t, Open, filepath.Join(dir, tc.name+".hds"), tc.mutate(bytes.Clone(orig)), tc.want)
		})
	}
	// A BAT entry that points into the header and BAT: in a
	// WithoutFreeSpace image entries count sectors, so entry value 1 is
	// byte 512, inside the BAT.
	v1 := filepath.Join(dir, "v1.hds")
	if err := os.WriteFile(v1, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	toV1(t, v1)
	vb := testutil.FileSnapshot(t, v1)
	i := -1
	for j := range int(le.Uint32(vb[32:])) {
		if le.Uint32(vb[headerSize+4*j:]) != 0 {
			i = j
			break
		}
	}
	if i < 0 {
		t.Fatal("qemu-img allocated no cluster")
	}
	le.PutUint32(vb[headerSize+4*i:], 1)
	blockmaptest.CheckRefused(t, Open, filepath.Join(dir, "in-bat.hds"), vb, "outside the data area")
}

// writeDescriptor writes the DiskDescriptor.xml of a disk of the given
// images (GUID, file name, parent GUID), as prl-xml.rst lays it out.
func writeDescriptor(t testing.TB, dir string, sectors int64, images [][3]string) {
	t.Helper()
	var imgs, shots strings.Builder
	for _, im := range images {
		fmt.Fprintf(&imgs, "      <Image>\n        <GUID>%s</GUID>\n        <Type>Compressed</Type>\n        <File>%s</File>\n      </Image>\n", im[0], im[1])
		fmt.Fprintf(&shots, "    <Shot>\n      <GUID>%s</GUID>\n      <ParentGUID>%s</ParentGUID>\n    </Shot>\n", im[0], im[2])
	}
	x := fmt.Sprintf(`<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
  <Disk_Parameters>
    <Disk_size>%d</Disk_size>
    <Cylinders>%d</Cylinders>
    <Heads>16</Heads>
    <Sectors>32</Sectors>
    <Padding>0</Padding>
  </Disk_Parameters>
  <StorageData>
    <Storage>
      <Start>0</Start>
      <End>%d</End>
      <Blocksize>128</Blocksize>
%s    </Storage>
  </StorageData>
  <Snapshots>
%s  </Snapshots>
</Parallels_disk_image>
`, sectors, sectors/(16*32), sectors, imgs.String(), shots.String())
	if err := os.WriteFile(filepath.Join(dir, descriptorName), []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	rootGUID = "{1d6d4ad6-4d8e-4c5e-9c54-0f0a4b1f7a11}"
	topGUID  = "{5fbaabe3-6958-40ff-92a7-860e329aab41}" // prl-xml.rst's predefined top snapshot
)

// makeSnapshot makes a disk of two images as Parallels keeps a snapshot:
// base (made by qemu-img from the marker pattern) and top, an empty image
// into which qemu-io writes over base (QEMU's parallels driver with base
// as its backing, which copies the rest of each written cluster from
// base, as Parallels does); and returns what the disk reads (qemu-img
// convert of the same chain) and what base reads.
func makeSnapshot(t *testing.T, dir string, size int64) (top, base string, want, baseData []byte) {
	return makeSnapshotOver(t, dir, size, "parallels")
}

// makeSnapshotOver is makeSnapshot with a root image of the given format:
// "parallels" (an expanding image), or "raw" (a Plain one, prl-xml.rst's
// other root image type).
func makeSnapshotOver(t *testing.T, dir string, size int64, rootFormat string) (top, base string, want, baseData []byte) {
	t.Helper()
	base = makeImage(t, dir, "disk.hdd.0.root", "cluster_size=64k", size)
	if rootFormat == "raw" {
		base = filepath.Join(dir, "disk.hdd.0.root.raw") // the pattern makeImage converted
	}
	top = filepath.Join(dir, "disk.hdd.0."+topGUID+".hds")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "parallels", "-o", "cluster_size=64k", top, strconv.FormatInt(size, 10))
	chain := "driver=parallels,file.filename=" + top + ",backing.driver=" + rootFormat + ",backing.file.filename=" + base
	testutil.Run(t, "qemu-io", "--image-opts", "-c", "write -q -P 0x61 1M 4k", "-c", "write -q -P 0x62 3M 100k", chain)
	out := filepath.Join(dir, "want.raw")
	testutil.Run(t, "qemu-img", "convert", "--image-opts", chain, "-O", "raw", out)
	want = testutil.FileSnapshot(t, out)
	os.Remove(out)
	return top, base, want, blockmaptest.QemuRaw(t, base, rootFormat)
}

// TestSnapshotChain: the DiskDescriptor.xml of a Parallels disk names
// each image's parent: the top image reads over its parent as QEMU reads
// that chain, and the parent is a backing view of its own.
func TestSnapshotChain(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	const size = 6 << 20
	for _, rootFormat := range []string{"parallels", "raw"} {
		t.Run("chain over a "+rootFormat+" root", func(t *testing.T) {
			dir := t.TempDir()
			top, base, want, baseData := makeSnapshotOver(t, dir, size, rootFormat)
			if bytes.Equal(want, baseData) {
				t.Fatal("the top image changed nothing")
			}
			writeDescriptor(t, dir, size/512, [][3]string{{rootGUID, filepath.Base(base), zeroGUID}, {topGUID, filepath.Base(top), rootGUID}})
			roots, err := hostfile.NewRoots(dir)
			if err != nil {
				t.Fatal(err)
			}
			if rootFormat == "raw" {
				// The descriptor calls a raw root Plain; formats.New would
				// read it as the raw file it is told it is.
				b := testutil.FileSnapshot(t, filepath.Join(dir, descriptorName))
				b = bytes.Replace(b, []byte("<Type>Compressed</Type>"), []byte("<Type>Plain</Type>"), 1)
				if err := os.WriteFile(filepath.Join(dir, descriptorName), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			open := func(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
				if opts.Format == "raw" {
					return raw.New(ctx, r, size, name, opts)
				}
				return New(ctx, r, size, name, opts)
			}
			blockmaptest.CheckDifferencing(t, Open, model.Options{Open: open, Opener: roots}, top, base,
				filepath.Base(top)+"#backing:"+filepath.Base(base), want, baseData)
		})
	}
	for _, tc := range []struct {
		name   string
		images func(top, base string) [][3]string
		want   string // in the image's error; "" for none
	}{
		{"no descriptor", nil, ""},
		{"top not listed", func(top, base string) [][3]string { return [][3]string{{rootGUID, filepath.Base(base), zeroGUID}} }, ""},
		{"missing parent", func(top, base string) [][3]string {
			return [][3]string{{rootGUID, "gone.hds", zeroGUID}, {topGUID, filepath.Base(top), rootGUID}}
		}, `parent "gone.hds"`},
		{"parent outside the roots", func(top, base string) [][3]string {
			return [][3]string{{rootGUID, "/etc/hostname", zeroGUID}, {topGUID, filepath.Base(top), rootGUID}}
		}, "outside"},
		{"unlisted parent GUID", func(top, base string) [][3]string {
			return [][3]string{{topGUID, filepath.Base(top), rootGUID}}
		}, "names no image"},
		{"own parent", func(top, base string) [][3]string {
			return [][3]string{{topGUID, filepath.Base(top), topGUID}}
		}, "cycle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			top, base, _, _ := makeSnapshot(t, dir, size)
			if tc.images != nil {
				writeDescriptor(t, dir, size/512, tc.images(top, base))
			}
			im, err := Open(context.Background(), top, model.Options{Open: New})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			var got []string
			for _, e := range im.Errors {
				got = append(got, e.Error())
			}
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("errors %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("errors %q, want one that says %q", got, tc.want)
			}
			if tc.want == "" && len(im.Backing) != 0 {
				t.Errorf("backing %+v, want none", im.Backing)
			}
			// A parent name refused or missing: the error names the
			// descriptor and the offset of the name in it.
			var fe *model.FormatError
			if len(im.Backing) == 1 && (len(im.Errors) != 1 || !errors.As(im.Errors[0], &fe) || fe.File != filepath.Join(dir, descriptorName) ||
				!bytes.HasPrefix(testutil.FileSnapshot(t, fe.File)[max(fe.Offset, 0):], []byte(im.Backing[0].Name))) {
				t.Errorf("error %v does not name the offset of %q in the descriptor", im.Errors, im.Backing[0].Name)
			}
		})
	}
}

// TestMissingRoot: root <- mid <- top, the root image gone: the top
// image's chain is short, so the top image was not read completely, and
// says so (the parent's error is the image's).
func TestMissingRoot(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	for _, name := range []string{"root", "mid", "top"} {
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "parallels", filepath.Join(dir, name+".hds"), "1M")
	}
	writeDescriptor(t, dir, 2048, [][3]string{{"{a}", "root.hds", zeroGUID}, {"{b}", "mid.hds", "{a}"}, {"{c}", "top.hds", "{b}"}})
	os.Remove(filepath.Join(dir, "root.hds"))
	im, err := Open(context.Background(), filepath.Join(dir, "top.hds"), model.Options{Open: New})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Errors) != 1 || !strings.Contains(im.Errors[0].Error(), "parent mid.hds: ") || !strings.Contains(im.Errors[0].Error(), `parent "root.hds" of mid.hds`) {
		t.Fatalf("errors %v, want the root's, through mid.hds", im.Errors)
	}
}

// TestDescriptorBounds: a descriptor over the cap, or one that is no XML,
// is the image's error, and the image still opens.
func TestDescriptorBounds(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct{ name, body, want string }{
		{"huge", strings.Repeat(" ", maxDescriptor+1), "over"},
		{"garbage", "<Parallels_disk_image><StorageData>", "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := makeImage(t, dir, "d", "cluster_size=64k", 1<<20, 0)
			if err := os.WriteFile(filepath.Join(dir, descriptorName), []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := Open(context.Background(), img, model.Options{Open: New})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if len(im.Errors) != 1 || !strings.Contains(im.Errors[0].Error(), tc.want) {
				t.Errorf("errors %v, want one that says %q", im.Errors, tc.want)
			}
		})
	}
}

// TestMappedPastSize: clusters the BAT maps past the disk's size are in
// the unreferenced view.
func TestMappedPastSize(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "past", "cluster_size=64k", 6<<20)
	blockmaptest.CheckMappedPastSize(t, Open, img, "parallels", func(b []byte) { binary.LittleEndian.PutUint64(b[36:], 4<<20/512) })
}
