package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func makeImage(t *testing.T, dir, name, opts string, size int64, offs ...int64) string {
	t.Helper()
	return blockmaptest.MakeImage(t, dir, name, "vpc", "vhd", opts, size, offs...)
}

func TestFidelity(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	cases := []struct {
		name, opts, sub string
		size            int64
	}{
		{"dynamic", "subformat=dynamic", "dynamic", 6 << 20},
		{"dynamic-force-size", "subformat=dynamic,force_size=on", "dynamic", 6 << 20},
		{"fixed", "subformat=fixed", "fixed", 6 << 20},
		{"fixed-force-size", "subformat=fixed,force_size=on", "fixed", 6 << 20},
		{"dynamic-odd-size", "subformat=dynamic", "dynamic", 5<<20 + 3*512},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImage(t, t.TempDir(), tc.name, tc.opts, tc.size)
			blockmaptest.CheckFidelity(t, Open, Probe, img, "vpc", tc.sub)
		})
	}
}

// TestUnreferenced clears a BAT entry in a copy of a real image: the
// block's bytes must vanish from the current view (as in qemu-img's view of
// that copy) and appear in the unreferenced view at their host offset.
func TestUnreferenced(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "unref", "subformat=dynamic", 6<<20)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	tableOff := binary.BigEndian.Uint64(b[512+16:])
	// Block 2 holds the marker at 4 MiB + 4096.
	entry := binary.BigEndian.Uint32(b[tableOff+8:])
	if entry == batUnused {
		t.Fatal("block 2 not allocated by qemu-img")
	}
	binary.BigEndian.PutUint32(b[tableOff+8:], batUnused)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := blockmaptest.QemuRaw(t, img, "vpc")
	im, err := Open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	blockmaptest.CheckDisk(t, cur.Disk, want)
	mark := blockmaptest.Marker("unref", 4<<20+4096)
	if bytes.Contains(want, mark[:32]) {
		t.Fatal("qemu-img still sees the cleared block")
	}
	u, ok := im.View(model.ViewID(img, model.KindUnreferenced, ""))
	if !ok {
		t.Fatal("no unreferenced view")
	}
	got := blockmaptest.ExtentBytes(t, u.Disk)
	hostOff := int64(entry)*512 + 512 + 4096 // bitmap, then the marker's place in the block
	if !bytes.Equal(got[hostOff:hostOff+int64(len(mark))], mark) {
		t.Fatalf("marker not at host offset %d of the unreferenced view", hostOff)
	}
	// Referenced markers must not show up there.
	if bytes.Contains(got, blockmaptest.Marker("unref", 0)[:32]) {
		t.Fatal("a referenced block leaks into the unreferenced view")
	}
}

// makeDifferencing turns a qemu-img dynamic VHD into a differencing one
// whose parent is base (spec "Dynamic Disk Header Format": parent unique
// id, parent unicode name and a W2ru parent locator whose data sits in a
// sector appended before the footer; "Block Allocation Table and Data
// Blocks": sectors whose bitmap bit is clear come from the parent). In
// block 0 it clears the bitmap bits of clearSectors.
func makeDifferencing(t *testing.T, child, base, parentName string, clearSectors []int) {
	t.Helper()
	cb, err := os.ReadFile(child)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	baseUUID := bb[len(bb)-512+68 : len(bb)-512+84]
	size := len(cb)
	ft := append([]byte(nil), cb[size-512:]...)
	loc := make([]byte, 512)
	var u16 []byte
	for _, c := range utf16.Encode([]rune(`.\` + parentName)) {
		u16 = binary.LittleEndian.AppendUint16(u16, c)
	}
	copy(loc, u16)
	out := append(append(append([]byte(nil), cb[:size-512]...), loc...), ft...)
	locOff := size - 512

	binary.BigEndian.PutUint32(ft[60:], typeDifferencing)
	binary.BigEndian.PutUint32(ft[64:], 0)
	binary.BigEndian.PutUint32(ft[64:], checksum(ft, 64))
	copy(out[:512], ft)
	copy(out[len(out)-512:], ft)

	h := out[512 : 512+1024]
	copy(h[40:56], baseUUID)
	clear(h[64:576])
	for i, c := range utf16.Encode([]rune(parentName)) {
		binary.BigEndian.PutUint16(h[64+2*i:], c)
	}
	e := h[576:]
	binary.BigEndian.PutUint32(e[0:], platW2ru)
	binary.BigEndian.PutUint32(e[4:], 1) // sectors
	binary.BigEndian.PutUint32(e[8:], uint32(len(u16)))
	binary.BigEndian.PutUint64(e[16:], uint64(locOff))
	binary.BigEndian.PutUint32(h[36:], 0)
	binary.BigEndian.PutUint32(h[36:], checksum(h, 36))

	tableOff := binary.BigEndian.Uint64(h[16:])
	bitmap := int64(binary.BigEndian.Uint32(out[tableOff:])) * 512
	for _, s := range clearSectors {
		out[bitmap+int64(s/8)] &^= 0x80 >> (s % 8)
	}
	if err := os.WriteFile(child, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDifferencing(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	const size = 6 << 20
	base := makeImage(t, dir, "base", "subformat=dynamic,force_size=on", size)
	// The child has its own markers at other offsets in block 0 and 2.
	child := makeImage(t, dir, "child", "subformat=dynamic,force_size=on", size, 512*8, 4<<20+8192)
	childData := blockmaptest.QemuRaw(t, child, "vpc")
	childMap := blockmaptest.QemuMap(t, child, "vpc")
	baseData := blockmaptest.QemuRaw(t, base, "vpc")
	// Sectors 8..11 of block 0 go back to the parent: they hold half of the
	// child's first marker.
	cleared := []int{8, 9, 10, 11}
	makeDifferencing(t, child, base, "base.vhd", cleared)

	// Expected bytes: the parent's where the child has no block or a
	// cleared bit, the child's elsewhere.
	want := append([]byte(nil), baseData...)
	for _, m := range childMap {
		if m.Data {
			copy(want[m.Start:m.Start+m.Length], childData[m.Start:m.Start+m.Length])
		}
	}
	for _, s := range cleared {
		copy(want[s*512:(s+1)*512], baseData[s*512:(s+1)*512])
	}

	before := blockmaptest.Sum(t, child)
	im, err := Open(context.Background(), child, model.Options{Open: New})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Errors) > 0 {
		t.Fatalf("errors: %v", im.Errors)
	}
	if im.Attrs["subformat"] != "differencing" {
		t.Fatalf("subformat %q", im.Attrs["subformat"])
	}
	cur, _ := im.Current()
	blockmaptest.CheckDisk(t, cur.Disk, want)
	bv, ok := im.View("child.vhd#backing:base.vhd")
	if !ok {
		t.Fatalf("no backing view; views: %v", viewIDs(im))
	}
	blockmaptest.CheckDisk(t, bv.Disk, baseData)
	if len(im.Backing) != 1 || im.Backing[0].Path != filepath.Join(dir, "base.vhd") || im.Backing[0].Name != `.\base.vhd` {
		t.Errorf("backing links %+v", im.Backing)
	}
	if blockmaptest.Sum(t, child) != before {
		t.Fatal("image changed by reading it")
	}

	t.Run("wrong-parent-uuid", func(t *testing.T) {
		other := makeImage(t, dir, "other", "subformat=dynamic,force_size=on", size)
		if err := os.Rename(other, base); err != nil {
			t.Fatal(err)
		}
		im, err := Open(context.Background(), child, model.Options{Open: New})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		if len(im.Errors) == 0 || !strings.Contains(im.Errors[0].Error(), "no parent with UUID") {
			t.Fatalf("want a missing-parent error, got %v", im.Errors)
		}
		if len(im.Views) > 0 && len(viewIDs(im)) != 1+countKind(im, model.KindUnreferenced) {
			t.Fatalf("views %v", viewIDs(im))
		}
	})
}

func viewIDs(im *model.Image) []string {
	var s []string
	for _, v := range im.Views {
		s = append(s, v.ID)
	}
	return s
}

func countKind(im *model.Image, k model.Kind) int {
	n := 0
	for _, v := range im.Views {
		if v.Kind == k {
			n++
		}
	}
	return n
}

// TestHostile mutates a real image's fields (fixing checksums so that the
// field itself is what is checked) and expects a FormatError naming the file.
func TestHostile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "h", "subformat=dynamic", 6<<20)
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	fixDyn := func(b []byte) {
		h := b[512 : 512+1024]
		binary.BigEndian.PutUint32(h[36:], checksum(h, 36))
	}
	fixFooter := func(b []byte) {
		for _, at := range []int{0, len(b) - 512} {
			binary.BigEndian.PutUint32(b[at+64:], checksum(b[at:at+512], 64))
		}
	}
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"bad-footer-checksum", func(b []byte) []byte { b[40] ^= 1; b[len(b)-512+40] ^= 1; return b }, "checksum"},
		{"huge-block-size", func(b []byte) []byte { binary.BigEndian.PutUint32(b[512+32:], 1<<31); fixDyn(b); return b }, "block size"},
		{"odd-block-size", func(b []byte) []byte { binary.BigEndian.PutUint32(b[512+32:], 3000); fixDyn(b); return b }, "block size"},
		{"tiny-bat", func(b []byte) []byte { binary.BigEndian.PutUint32(b[512+28:], 1); fixDyn(b); return b }, "too small"},
		{"bat-past-eof", func(b []byte) []byte { binary.BigEndian.PutUint64(b[512+16:], 1<<40); fixDyn(b); return b }, "past the end"},
		{"block-past-eof", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[1536:], 0x7fffffff)
			return b
		}, "past the end"},
		{"header-offset", func(b []byte) []byte { binary.BigEndian.PutUint64(b[16:], 1<<62); fixFooter(b); return b }, "outside the file"},
		{"bad-type", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[60:], 9)
			binary.BigEndian.PutUint32(b[len(b)-512+60:], 9)
			fixFooter(b)
			return b
		}, "disk type"},
		{"too-big", func(b []byte) []byte {
			copy(b[28:32], "win ")
			binary.BigEndian.PutUint64(b[48:], 1<<50)
			copy(b[len(b)-512:], b[:512])
			fixFooter(b)
			return b
		}, "2040 GiB"},
		{"truncated", func(b []byte) []byte { return b[:300] }, "too small"},
		{"no-magic", func(b []byte) []byte { clear(b[:8]); clear(b[len(b)-512:]); return b }, "conectix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blockmaptest.CheckRefused(t, Open, filepath.Join(dir, tc.name+".vhd"), tc.mutate(append([]byte(nil), orig...)), tc.want)
		})
	}
}

func head(t *testing.T, p string) []byte {
	b := testutil.FileSnapshot(t, p)
	return b[:min(len(b), 4096)]
}

// TestParentOutsideRoots: a differencing image whose parent (with the
// right UUID) lies outside the allowed root is refused, with the parent
// locator's offset, until the parent's directory is a root.
func TestParentOutsideRoots(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	os.Mkdir(root, 0o755)
	os.Mkdir(outside, 0o755)
	const size = 6 << 20
	base := makeImage(t, outside, "base", "subformat=dynamic,force_size=on", size)
	child := makeImage(t, root, "child", "subformat=dynamic,force_size=on", size)
	makeDifferencing(t, child, base, "../outside/base.vhd", nil)
	// The relative (W2ru) locator is the first name tried; its data offset
	// is in the dynamic header's first locator entry.
	locAt := int64(binary.BigEndian.Uint64(head(t, child)[512+576+16:]))
	blockmaptest.CheckParentOutsideRoots(t, Open, New, child, base, root, outside, locAt)
}
