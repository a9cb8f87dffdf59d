package blockmaptest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// OpenFunc is a reader's path-based Open.
type OpenFunc func(ctx context.Context, path string, opts model.Options) (*model.Image, error)

// MarkOffsets are where MakeImage plants markers by default: sector and
// block boundaries, and one past the 4 MiB mark.
var MarkOffsets = []int64{0, 512 * 3, 1 << 20, 2<<20 - 100, 4<<20 + 4096, 6<<20 - 4096}

// MakeImage writes a raw pattern image (PatternRaw, markers at offs, or
// MarkOffsets when offs is empty) of size bytes and converts it with
// qemu-img to format with options opts; the image is dir/name.ext.
func MakeImage(t testing.TB, dir, name, format, ext, opts string, size int64, offs ...int64) string {
	t.Helper()
	if offs == nil {
		offs = MarkOffsets
	}
	rawPath := filepath.Join(dir, name+".raw")
	PatternRaw(t, rawPath, name, size, offs...)
	img := filepath.Join(dir, name+"."+ext)
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", format, "-o", opts, rawPath, img)
	return img
}

// CheckUnreferenced opens img, one of whose tables was patched so that the
// block holding Marker("unref", 4 MiB + 4096) is no longer referenced, and
// checks that the current view reads what qemu-img reads (without the
// marker) and that the unreferenced view shows the marker at its host
// offset hostOff, and no referenced block.
func CheckUnreferenced(t *testing.T, open OpenFunc, img, format string, hostOff int64) {
	t.Helper()
	want := QemuRaw(t, img, format)
	im, err := open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	CheckDisk(t, cur.Disk, want)
	mark := Marker("unref", 4<<20+4096)
	if bytes.Contains(want, mark[:32]) {
		t.Fatal("qemu-img still reads the block")
	}
	u, ok := im.View(model.ViewID(img, model.KindUnreferenced, ""))
	if !ok {
		t.Fatal("no unreferenced view")
	}
	got := ExtentBytes(t, u.Disk)
	if !bytes.Equal(got[hostOff:hostOff+int64(len(mark))], mark) {
		t.Fatalf("marker not at host offset %d of the unreferenced view", hostOff)
	}
	if bytes.Contains(got, Marker("unref", 1<<20)[:32]) {
		t.Fatal("a referenced block leaks into the unreferenced view")
	}
}

// CheckParentOutsideRoots opens child, a differencing image whose parent
// base lies in the directory outside, first with root alone as the allowed
// root: the parent must be refused (ErrOutsideRoots) at offset locAt of
// child, in the backing link and Image.Errors, with no name allowed
// outside root; then with outside a root too: the parent must be followed.
// newImage reads the parent.
func CheckParentOutsideRoots(t *testing.T, open OpenFunc, newImage model.OpenFunc, child, base, root, outside string, locAt int64) {
	t.Helper()
	for _, c := range []struct {
		roots []string
		ok    bool
	}{{[]string{root}, false}, {[]string{root, outside}, true}} {
		r, err := hostfile.NewRoots(c.roots...)
		if err != nil {
			t.Fatal(err)
		}
		log := &hostfile.Log{}
		im, err := open(context.Background(), child, model.Options{Open: newImage, Opener: r.WithLog(log)})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		if len(im.Backing) != 1 {
			t.Fatalf("backing %+v", im.Backing)
		}
		l := im.Backing[0]
		if c.ok {
			if l.Err != nil || l.Path != base {
				t.Errorf("roots %v: link %+v, want the parent followed", c.roots, l)
			}
			continue
		}
		var fe *model.FormatError
		if !errors.Is(l.Err, model.ErrOutsideRoots) || !errors.As(l.Err, &fe) || fe.File != child || fe.Offset != locAt {
			t.Errorf("link error %v, want a refusal at offset %d of %s", l.Err, locAt, child)
		}
		if len(im.Errors) == 0 {
			t.Error("the refusal is not in Image.Errors")
		}
		for _, u := range log.Uses() {
			if u.Err == nil && !strings.HasPrefix(u.Real, root+"/") {
				t.Errorf("allowed %q -> %q", u.Name, u.Real)
			}
		}
	}
}

// FuzzImage is the body of a reader's fuzz target: it feeds the image a
// fuzz input describes (a sparse file, see EncodeSparse) to open and reads
// what it yields (FuzzDisk).
func FuzzImage(f *testing.F, open OpenFunc) {
	f.Fuzz(func(t *testing.T, in []byte) {
		p := DecodeSparse(t, t.TempDir(), in)
		im, err := open(context.Background(), p, model.Options{})
		if err != nil {
			return
		}
		defer im.Close()
		FuzzDisk(im, 64)
	})
}

// CheckFidelity opens img with open and checks that its current view, read
// whole and through its extents, is what `qemu-img convert -O raw` reads
// (format is qemu-img's name for it), of the virtual size qemu-img says,
// with the subformat attribute sub unless sub is "", that probe recognises
// the file, and that reading it changed nothing.
func CheckFidelity(t *testing.T, open OpenFunc, probe func([]byte, io.ReaderAt, int64) bool, img, format, sub string) {
	t.Helper()
	before := Sum(t, img)
	want := QemuRaw(t, img, format)
	data := testutil.FileSnapshot(t, img)
	if !probe(data[:min(len(data), 4096)], bytes.NewReader(data), int64(len(data))) {
		t.Fatal("Probe did not recognise the image")
	}
	im, err := open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if sub != "" && im.Attrs["subformat"] != sub {
		t.Errorf("subformat %q, want %q", im.Attrs["subformat"], sub)
	}
	if im.VirtualSize != int64(len(want)) {
		t.Errorf("virtual size %d, qemu-img says %d", im.VirtualSize, len(want))
	}
	cur, ok := im.Current()
	if !ok {
		t.Fatal("no current view")
	}
	CheckDisk(t, cur.Disk, want)
	if got := ExtentBytes(t, cur.Disk); !bytes.Equal(got, want) {
		t.Error("extents miss data")
	}
	if Sum(t, img) != before {
		t.Fatal("image changed by reading it")
	}
}

// CheckDifferencing opens child with opts and checks that it opens without
// errors, that its current view reads want (the child over its parent),
// that its backing view backingView reads baseData, that its one backing
// link is base, and that reading it changed nothing.
func CheckDifferencing(t *testing.T, open OpenFunc, opts model.Options, child, base, backingView string, want, baseData []byte) {
	t.Helper()
	before := Sum(t, child)
	im, err := open(context.Background(), child, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Errors) > 0 {
		t.Fatalf("errors: %v", im.Errors)
	}
	cur, _ := im.Current()
	CheckDisk(t, cur.Disk, want)
	bv, ok := im.View(backingView)
	if !ok {
		t.Fatal("no backing view")
	}
	CheckDisk(t, bv.Disk, baseData)
	if len(im.Backing) != 1 || im.Backing[0].Path != base {
		t.Errorf("backing %+v", im.Backing)
	}
	if Sum(t, child) != before {
		t.Fatal("image changed")
	}
}

// CheckRefused writes a hostile image (b) to p and checks that open
// refuses it with a FormatError that names p and mentions want.
func CheckRefused(t *testing.T, open OpenFunc, p string, b []byte, want string) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := open(context.Background(), p, model.Options{})
	if err == nil {
		im.Close()
		t.Fatal("opened a hostile image")
	}
	var fe *model.FormatError
	if !errors.As(err, &fe) || fe.File != p {
		t.Fatalf("error %v is not a FormatError naming the file", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not mention %q", err, want)
	}
}

// CheckMarkedDirty patches img, an image qemu-img made, with mark (the
// header field its writer sets while it has the image open) and checks
// that it still opens and reads what qemu-img reads, with attribute attr
// "true" and a current-view note that mentions note.
func CheckMarkedDirty(t *testing.T, open OpenFunc, img, format string, mark func([]byte), attr, note string) {
	t.Helper()
	b := testutil.FileSnapshot(t, img)
	mark(b)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := QemuRaw(t, img, format)
	im, err := open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	CheckDisk(t, cur.Disk, want)
	if im.Attrs[attr] != "true" || !slices.ContainsFunc(cur.Notes, func(n string) bool { return strings.Contains(n, note) }) {
		t.Errorf("attrs %v, notes %q: want %s and a note that says %q", im.Attrs, cur.Notes, attr, note)
	}
}

// CheckMappedPastSize patches img (made by MakeImage with tag "past" and
// the default markers, 6 MiB) with shrink, which lowers the disk size its
// header gives to 4 MiB and leaves the tables that map the last 2 MiB:
// the current view must stop at the new size as qemu-img reads it, and
// the markers past it, in clusters no view but the unreferenced one
// reads, must be in that view (an audit found them read by none).
func CheckMappedPastSize(t *testing.T, open OpenFunc, img, format string, shrink func([]byte)) {
	t.Helper()
	b := testutil.FileSnapshot(t, img)
	shrink(b)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := QemuRaw(t, img, format)
	if len(want) != 4<<20 {
		t.Fatalf("qemu-img reads %d bytes, want the lowered 4 MiB", len(want))
	}
	im, err := open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	CheckDisk(t, cur.Disk, want)
	u, ok := im.View(model.ViewID(img, model.KindUnreferenced, ""))
	if !ok {
		t.Fatal("no unreferenced view")
	}
	got := ExtentBytes(t, u.Disk)
	for _, off := range []int64{4<<20 + 4096, 6<<20 - 4096} {
		if !bytes.Contains(got, Marker("past", off)[:32]) {
			t.Errorf("the marker at guest offset %d, past the disk's size, is in no view", off)
		}
	}
	if bytes.Contains(got, Marker("past", 1<<20)[:32]) {
		t.Error("a block the disk reads leaks into the unreferenced view")
	}
}

// PutLE32 is a hostile-header mutation for CheckRefused: v written
// little-endian at off.
func PutLE32(off int, v uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
}

// PutLE64 is PutLE32 for a 64-bit field.
func PutLE64(off int, v uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint64(b[off:], v); return b }
}
