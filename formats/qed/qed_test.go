package qed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func makeImage(t testing.TB, dir, name, opts string, size int64, offs ...int64) string {
	t.Helper()
	return blockmaptest.MakeImage(t, dir, name, "qed", "qed", opts, size, offs...)
}

// TestFidelity: images made by qemu-img read as `qemu-img convert -O raw`
// reads them.
func TestFidelity(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct {
		name, opts string
		size       int64
	}{
		{"default", "cluster_size=64k,table_size=4", 7 << 20},
		{"4k-clusters", "cluster_size=4k,table_size=2", 6 << 20},
		{"odd-size", "cluster_size=4k,table_size=4", 5<<20 + 3*512},
		{"1m-clusters", "cluster_size=1M,table_size=16", 6 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blockmaptest.CheckFidelity(t, Open, Probe, makeImage(t, t.TempDir(), tc.name, tc.opts, tc.size), "qed", "")
		})
	}
}

// l2EntryAt returns the file offset of the L2 entry that maps guest
// offset guest, and the entry.
func l2EntryAt(t testing.TB, b []byte, guest int64) (int64, uint64) {
	t.Helper()
	le := binary.LittleEndian
	cluster, tc := int64(le.Uint32(b[4:])), int64(le.Uint32(b[8:]))
	n := tc * cluster / 8
	l1 := int64(le.Uint64(b[40:]))
	l2 := int64(le.Uint64(b[l1+8*(guest/cluster/n):]))
	if l2 == 0 {
		t.Fatalf("no L2 table maps guest offset %d", guest)
	}
	at := l2 + 8*(guest/cluster%n)
	return at, le.Uint64(b[at:])
}

// TestUnreferenced: a data cluster whose L2 entry is cleared keeps its
// bytes; they are in the unreferenced view, at their host offset.
func TestUnreferenced(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "unref", "cluster_size=64k,table_size=4", 6<<20)
	b := testutil.FileSnapshot(t, img)
	at, e := l2EntryAt(t, b, 4<<20+4096)
	if e <= zeroCluster {
		t.Fatal("qemu-img left the marker's cluster unallocated")
	}
	binary.LittleEndian.PutUint64(b[at:], 0)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	blockmaptest.CheckUnreferenced(t, Open, img, "qed", int64(e)+4096)
}

// TestBacking: an overlay qemu-img made over a qcow2 or a raw file (whose
// format the overlay says, so that it is read without probing), written
// by qemu-io, reads as QEMU reads the chain; the backing file is a
// backing view; zero clusters hide it.
func TestBacking(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	const size = 6 << 20
	for _, format := range []string{"qcow2", "raw"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "base.raw")
			blockmaptest.PatternRaw(t, base, "base", size, blockmaptest.MarkOffsets...)
			if format == "qcow2" {
				testutil.Run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", base, filepath.Join(dir, "base.qcow2"))
				base = filepath.Join(dir, "base.qcow2")
			}
			overlay := filepath.Join(dir, "overlay.qed")
			testutil.Run(t, "qemu-img", "create", "-q", "-f", "qed", "-o", "cluster_size=64k", "-b", "base."+format, "-F", format, overlay, "6M")
			testutil.Run(t, "qemu-io", "-f", "qed", "-c", "write -q -P 0x61 1M 4k", "-c", "write -q -z 2M 64k", "-c", "write -q -P 0x62 5M 100k", overlay)
			want := blockmaptest.QemuRaw(t, overlay, "qed")
			baseData := blockmaptest.QemuRaw(t, base, format)
			if bytes.Equal(want, baseData) {
				t.Fatal("the overlay changed nothing")
			}
			roots, err := hostfile.NewRoots(dir)
			if err != nil {
				t.Fatal(err)
			}
			blockmaptest.CheckDifferencing(t, Open, model.Options{Open: openAny, Opener: roots}, overlay, base, "overlay.qed#backing:base."+format, want, baseData)
		})
	}
}

// openAny opens a backing file as formats.New would (which this package's
// tests cannot import): raw when told, else by its magic.
func openAny(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	head := make([]byte, 512)
	n, _ := r.ReadAt(head, 0)
	switch {
	case opts.Format == "raw":
		return raw.New(ctx, r, size, name, opts)
	case qcow2.Probe(head[:n], r, size):
		return qcow2.New(ctx, r, size, name, opts)
	case Probe(head[:n], r, size):
		return New(ctx, r, size, name, opts)
	}
	return raw.New(ctx, r, size, name, opts)
}

// TestNeedCheck: an image its writer never closed opens, says so, and
// reads as qemu-img reads it.
func TestNeedCheck(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "dirty", "cluster_size=64k,table_size=4", 6<<20)
	blockmaptest.CheckMarkedDirty(t, Open, img, "qed", func(b []byte) {
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])|featureNeedCheck)
	}, "need_check", "consistency check")
}

// TestBackingRefused: a backing file that is missing, outside the allowed
// roots, or a protocol is the image's error (so a scan of it fails
// closed), naming the header's offset of the name; the image still opens.
func TestBackingRefused(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct{ name, backing, want string }{
		{"missing", "gone.qcow2", "no such file"},
		{"outside the roots", "/etc/hostname", "outside the allowed roots"},
		{"protocol", "nbd:127.0.0.1:10809", "names a protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "overlay.qed")
			testutil.Run(t, "qemu-img", "create", "-q", "-f", "qed", "-u", "-b", tc.backing, "-F", "raw", img, "1M")
			im, err := Open(context.Background(), img, model.Options{Open: openAny})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			var fe *model.FormatError
			if len(im.Errors) != 1 || !strings.Contains(im.Errors[0].Error(), tc.want) || !errors.As(im.Errors[0], &fe) || fe.Offset <= 0 {
				t.Fatalf("errors %v, want one that says %q at the name's offset", im.Errors, tc.want)
			}
			if b := testutil.FileSnapshot(t, img); !bytes.HasPrefix(b[fe.Offset:], []byte(tc.backing)) {
				t.Errorf("offset %d does not hold the name", fe.Offset)
			}
		})
	}
}

func TestHostile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "h", "cluster_size=64k,table_size=4", 6<<20)
	orig := testutil.FileSnapshot(t, img)
	le := binary.LittleEndian
	l1 := int(le.Uint64(orig[40:]))
	at, _ := l2EntryAt(t, orig, 0)
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"magic", blockmaptest.PutLE32(0, 0x12345678), "bad magic"},
		{"features", blockmaptest.PutLE64(16, 0x100), "feature bits"},
		{"cluster-small", blockmaptest.PutLE32(4, 512), "cluster size"},
		{"cluster-odd", blockmaptest.PutLE32(4, 65536+4096), "cluster size"},
		{"table-size", blockmaptest.PutLE32(8, 3), "table size"},
		{"tables-huge", func(b []byte) []byte { le.PutUint32(b[4:], 64<<20); le.PutUint32(b[8:], 16); return b }, "over"},
		{"header-past-eof", blockmaptest.PutLE32(12, 1<<20), "header of"},
		{"image-size-odd", blockmaptest.PutLE64(48, 6<<20+1), "multiple of 512"},
		{"image-size-huge", blockmaptest.PutLE64(48, 1<<60), "exceeds"},
		{"l1-unaligned", blockmaptest.PutLE64(40, uint64(l1)+512), "L1 table offset"},
		{"l1-past-eof", blockmaptest.PutLE64(40, 1<<40), "L1 table offset"},
		{"l2-past-eof", blockmaptest.PutLE64(l1, 1<<40), "L2 table offset"},
		{"data-past-eof", blockmaptest.PutLE64(int(at), 1<<40), "data cluster offset"},
		{"data-unaligned", blockmaptest.PutLE64(int(at), 65536*3+8), "data cluster offset"},
		{"backing-name-outside", func(b []byte) []byte {
			le.PutUint64(b[16:], featureBackingFile)
			le.PutUint32(b[56:], 1<<20)
			le.PutUint32(b[60:], 16)
			return b
		}, "backing file name"},
		{"truncated", func(b []byte) []byte { return b[:40] }, "too small"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blockmaptest.CheckRefused(t, Open, filepath.Join(dir, tc.name+".qed"), tc.mutate(bytes.Clone(orig)), tc.want)
		})
	}
}

// TestMappedPastSize: clusters the L2 tables map past the image size are
// in the unreferenced view.
func TestMappedPastSize(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "past", "cluster_size=64k,table_size=4", 6<<20)
	blockmaptest.CheckMappedPastSize(t, Open, img, "qed", func(b []byte) { binary.LittleEndian.PutUint64(b[48:], 4<<20) })
}
