package vmdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zlib"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

const secret = "IMGAUDIT-PLANTED-SECRET-7f3a9c"

// writePatternRaw writes a raw image of size bytes: incompressible blocks,
// runs of a planted secret and holes, so that every reader path is hit.
func writePatternRaw(t testing.TB, path string, size int64, seed uint64) []byte {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for off := int64(0); off < size; off += 96 << 10 {
		switch (off / (96 << 10)) % 4 {
		case 0:
			n := min(int64(40<<10), size-off)
			for i := off; i < off+n; i++ {
				b[i] = byte(r.Uint32())
			}
		case 1:
			copy(b[off+1000:], bytes.Repeat([]byte(secret), 16))
		case 2: // hole
		case 3:
			for i := off; i < min(off+70000, size); i++ {
				b[i] = byte(i / 7)
			}
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// qemuRaw converts an image to raw with qemu-img and returns its bytes.
func qemuRaw(t testing.TB, img string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.raw")
	testutil.Run(t, "qemu-img", "convert", "-O", "raw", img, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirHashes fingerprints every file in dir, to prove reading changed nothing.
func dirHashes(t testing.TB, dir string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			m[e.Name()] = sha256.Sum256(testutil.FileSnapshot(t, filepath.Join(dir, e.Name())))
		}
	}
	return m
}

func checkUnchanged(t testing.TB, dir string, before map[string][32]byte) {
	t.Helper()
	after := dirHashes(t, dir)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed while reading", k)
		}
	}
}

// readDisk reads a whole disk through ReadAt in odd-sized chunks.
func readDisk(t testing.TB, d model.Disk) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	const chunk = 300_001
	for off := int64(0); off < d.Size(); off += chunk {
		n := min(chunk, d.Size()-off)
		if _, err := d.ReadAt(out[off:off+n], off); err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
		}
	}
	return out
}

// checkExtents proves the extent list is sorted, covers every non-zero
// guest byte, and that each extent's host location really holds its bytes.
func checkExtents(t testing.TB, d model.Disk, want []byte) {
	t.Helper()
	ext, err := model.CollectExtents(context.Background(), d)
	if err != nil {
		t.Fatalf("extents: %v", err)
	}
	covered := make([]byte, len(want))
	prev := int64(0)
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, e := range ext {
		if e.Offset < prev || e.Length <= 0 || e.End() > int64(len(want)) {
			t.Fatalf("extent %+v out of order or range (prev end %d)", e, prev)
		}
		prev = e.End()
		if e.Source == model.SourceZero {
			continue
		}
		copy(covered[e.Offset:e.End()], want[e.Offset:e.End()])
		if e.File == "" || e.FileOffset < 0 {
			continue
		}
		f := files[e.File]
		if f == nil {
			if f, err = os.Open(e.File); err != nil {
				continue // not a host file (e.g. an OVA member name)
			}
			files[e.File] = f
		}
		switch e.Source {
		case model.SourceData:
			host := make([]byte, e.Length)
			n, _ := f.ReadAt(host, e.FileOffset)
			clear(host[n:])
			if !bytes.Equal(host, want[e.Offset:e.End()]) {
				t.Fatalf("extent %+v: host bytes differ from guest bytes", e)
			}
		case model.SourceCompressed:
			c := make([]byte, e.FileLength)
			if _, err := f.ReadAt(c, e.FileOffset); err != nil {
				t.Fatalf("extent %+v: %v", e, err)
			}
			zr, err := zlib.NewReader(bytes.NewReader(c))
			if err != nil {
				t.Fatalf("extent %+v: %v", e, err)
			}
			g, _ := io.ReadAll(zr)
			if len(g) < int(e.Length) || !bytes.Equal(g[:e.Length], want[e.Offset:e.End()]) {
				t.Fatalf("extent %+v: inflated host bytes differ from guest bytes", e)
			}
		}
	}
	if !bytes.Equal(covered, want) {
		t.Fatalf("extents do not cover every non-zero byte")
	}
}

// firstDiff describes where two byte slices differ, without printing data.
func firstDiff(a, b []byte) int {
	if len(a) != len(b) {
		return -2
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func openOpts() model.Options { return model.Options{Open: New} }

func mustOpen(t testing.TB, path string) *model.Image {
	t.Helper()
	im, err := Open(context.Background(), path, openOpts())
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

func currentDisk(t testing.TB, im *model.Image) model.Disk {
	t.Helper()
	v, ok := im.Current()
	if !ok {
		t.Fatal("no current view")
	}
	return v.Disk
}

func compareView(t testing.TB, d model.Disk, want []byte, what string) {
	t.Helper()
	got := readDisk(t, d)
	if i := firstDiff(got, want); i != -1 {
		t.Fatalf("%s: differs from qemu-img convert at %d (sizes %d vs %d)", what, i, len(got), len(want))
	}
	checkExtents(t, d, want)
}
