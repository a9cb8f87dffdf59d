package qcow2_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// randFile writes n pseudo-random bytes, starting with a marker, to a file
// in dir and returns its path and content.
func randFile(t testing.TB, dir string, seed uint64, n int) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(dir, fmt.Sprintf("pattern-%d-%d.bin", seed, n))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func qemuImg(t testing.TB, args ...string) []byte {
	t.Helper()
	return testutil.Run(t, "qemu-img", args...)
}

// qemuIO runs qemu-io commands on a qcow2 image.
func qemuIO(t testing.TB, img string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "qcow2"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	testutil.Run(t, "qemu-io", append(args, img)...)
}

// convertRaw returns what qemu-img reads from img (optionally a snapshot).
func convertRaw(t testing.TB, img, snapshot string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "converted.raw")
	args := []string{"convert", "-U", "-O", "raw"}
	if snapshot != "" {
		args = append(args, "-l", "snapshot.name="+snapshot)
	}
	qemuImg(t, append(args, img, out)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readDisk reads a whole disk through ReadAt in blocks of bs bytes.
func readDisk(t testing.TB, d model.Disk, bs int) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	for off := int64(0); off < d.Size(); off += int64(bs) {
		end := min(off+int64(bs), d.Size())
		n, err := d.ReadAt(out[off:end], off)
		if err != nil && !(err == io.EOF && int64(n) == end-off) {
			t.Fatalf("ReadAt(%d, %d): n=%d err=%v", off, end-off, n, err)
		}
	}
	return out
}

// readExtents reads only the non-zero extents of d into a zeroed buffer,
// checking that extents are sorted, disjoint and inside the disk.
func readExtents(t testing.TB, d model.Disk) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	prevEnd := int64(0)
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			t.Fatalf("extents: %v", err)
		}
		if e.Offset < prevEnd || e.Length <= 0 || e.End() > d.Size() {
			t.Fatalf("bad extent %+v after end %d (size %d)", e, prevEnd, d.Size())
		}
		prevEnd = e.End()
		if e.Source == model.SourceZero {
			continue
		}
		if e.Source == model.SourceData && e.FileLength != e.Length {
			t.Fatalf("data extent %+v: FileLength != Length", e)
		}
		if _, err := d.ReadAt(out[e.Offset:e.End()], e.Offset); err != nil && err != io.EOF {
			t.Fatalf("read extent %+v: %v", e, err)
		}
	}
	return out
}

// checkHostBytes checks that data extents name the host bytes they hold.
func checkHostBytes(t testing.TB, d model.Disk, guest []byte) {
	t.Helper()
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Source != model.SourceData {
			continue
		}
		f := files[e.File]
		if f == nil {
			var err error
			if f, err = os.Open(e.File); err != nil {
				t.Fatalf("extent %+v: %v", e, err)
			}
			files[e.File] = f
		}
		host := make([]byte, e.Length)
		n, _ := f.ReadAt(host, e.FileOffset)
		clear(host[n:])
		if !bytes.Equal(host, guest[e.Offset:e.End()]) {
			t.Fatalf("extent %+v: host bytes differ from guest bytes", e)
		}
	}
}

// firstDiff describes where two byte slices differ, without printing them.
func firstDiff(a, b []byte) string {
	if len(a) != len(b) {
		return fmt.Sprintf("length %d vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at byte %d (0x%x)", i, i)
		}
	}
	return "equal"
}

func sha(t testing.TB, path string) [32]byte {
	t.Helper()
	return sha256.Sum256(testutil.FileSnapshot(t, path))
}

func mustOpen(t testing.TB, path string) *model.Image {
	t.Helper()
	im, err := formats.Open(context.Background(), path, model.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

func viewsOf(im *model.Image, k model.Kind) []model.View {
	var out []model.View
	for _, v := range im.Views {
		if v.Kind == k {
			out = append(out, v)
		}
	}
	return out
}
