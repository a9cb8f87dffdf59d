// Package blockmaptest holds test helpers shared by the VHD, VHDX and VDI
// reader tests: pattern images, byte-for-byte view checks against
// `qemu-img convert -O raw`, and proof that an image was not modified.
package blockmaptest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/internal/zeros"
)

// Marker returns the recognisable 4 KiB pattern planted at off, so a test
// can find it again in another view.
func Marker(tag string, off int64) []byte {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i*7 + int(off>>9))
	}
	copy(b, fmt.Sprintf("MARK:%s@%d;", tag, off))
	return b
}

// PatternRaw writes a sparse raw file of size bytes with Marker(tag, off) at
// each offset.
func PatternRaw(t testing.TB, path, tag string, size int64, offs ...int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range offs {
		if off >= size {
			continue
		}
		m := Marker(tag, off)
		if off+int64(len(m)) > size {
			m = m[:size-off]
		}
		if _, err := f.WriteAt(m, off); err != nil {
			t.Fatal(err)
		}
	}
}

// QemuRaw converts img to raw with qemu-img and returns the bytes.
func QemuRaw(t testing.TB, img, format string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "qemu.raw")
	testutil.Run(t, "qemu-img", "convert", "-f", format, "-O", "raw", img, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// MapEntry is one line of `qemu-img map --output=json`.
type MapEntry struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	Data   bool  `json:"data"`
	Zero   bool  `json:"zero"`
}

// QemuMap returns qemu-img's allocation map of img.
func QemuMap(t testing.TB, img, format string) []MapEntry {
	t.Helper()
	out := testutil.Run(t, "qemu-img", "map", "-f", format, "--output=json", img)
	var m []MapEntry
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	return m
}

// Sum returns the sha256 of a file, to prove it did not change.
func Sum(t testing.TB, path string) [32]byte {
	t.Helper()
	return sha256.Sum256(testutil.FileSnapshot(t, path))
}

// CheckDisk proves that d reads exactly want, both whole and in odd-sized
// pieces; that every byte outside d's extents is zero in want; and that
// every data extent's host bytes are the guest bytes.
func CheckDisk(t testing.TB, d model.Disk, want []byte) {
	t.Helper()
	if d.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", d.Size(), len(want))
	}
	got := make([]byte, len(want))
	if n, err := d.ReadAt(got, 0); n != len(got) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt whole: n=%d err=%v", n, err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("whole read differs from qemu-img at guest offset %d", i)
	}
	// Odd-sized reads crossing sector and block boundaries.
	piece := make([]byte, 12345)
	for off := int64(0); off < int64(len(want)); off += int64(len(piece)) * 3 {
		n, err := d.ReadAt(piece, off)
		if err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d): %v", off, err)
		}
		if i := firstDiff(piece[:n], want[off:off+int64(n)]); i >= 0 {
			t.Fatalf("piece read at %d differs at +%d", off, i)
		}
	}
	// Concurrent readers must not disturb each other.
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			buf := make([]byte, 70000)
			for off := int64(g) * 4099; off < int64(len(want)); off += int64(len(buf)) * 2 {
				n, _ := d.ReadAt(buf, off)
				if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					errs <- fmt.Sprintf("concurrent read at %d differs", off)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	ext, err := model.CollectExtents(context.Background(), d)
	if err != nil {
		t.Fatalf("extents: %v", err)
	}
	covered := make([]byte, len(want))
	var last int64
	for _, e := range ext {
		if e.Offset < last || e.Length <= 0 || e.End() > int64(len(want)) {
			t.Fatalf("extent %+v out of order or range (previous end %d)", e, last)
		}
		last = e.End()
		if e.Source == model.SourceZero {
			continue
		}
		copy(covered[e.Offset:e.End()], want[e.Offset:e.End()])
		if e.Source == model.SourceData && e.File != "" {
			f, err := os.Open(e.File)
			if err != nil {
				t.Fatal(err)
			}
			host := make([]byte, e.Length)
			n, _ := f.ReadAt(host, e.FileOffset)
			f.Close()
			clear(host[n:])
			if i := firstDiff(host, want[e.Offset:e.End()]); i >= 0 {
				t.Fatalf("extent %+v: host bytes differ from guest bytes at +%d", e, i)
			}
		}
	}
	if i := firstDiff(covered, want); i >= 0 {
		t.Fatalf("non-zero guest byte at %d lies outside every extent", i)
	}
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// ExtentBytes reads only the extents of d (what a scanner sees).
func ExtentBytes(t testing.TB, d model.Disk) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Source == model.SourceZero {
			continue
		}
		if _, err := d.ReadAt(out[e.Offset:e.End()], e.Offset); err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	return out
}

// FuzzDisk exercises an opened image the way the scanner would, within
// bounds, for fuzz targets: every view's extents (at most limit of them) and
// reads at their starts.
func FuzzDisk(im *model.Image, limit int) {
	buf := make([]byte, 64<<10)
	for _, v := range im.Views {
		k := 0
		for e, err := range v.Disk.Extents(context.Background()) {
			if err != nil || k >= limit {
				break
			}
			k++
			n := min(int64(len(buf)), e.Length)
			v.Disk.ReadAt(buf[:n], e.Offset)
		}
		v.Disk.ReadAt(buf, 0)
		v.Disk.ReadAt(buf, v.Disk.Size()-int64(len(buf)/2))
	}
}

// maxSparseSize bounds files that fuzz inputs describe.
const maxSparseSize = 64 << 20

// EncodeSparse describes a mostly-empty file compactly for a fuzz corpus:
// an 8-byte little-endian file size, then records {u32 offset, u16 length,
// bytes} for each non-zero 512-byte sector run.
func EncodeSparse(file []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(file)))
	for off := 0; off < len(file); {
		if zeros.All(file[off:min(off+512, len(file))]) {
			off += 512
			continue
		}
		end := off
		for end < len(file) && end-off < 32768 && !zeros.All(file[end:min(end+512, len(file))]) {
			end = min(end+512, len(file))
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(off))
		out = binary.LittleEndian.AppendUint16(out, uint16(end-off))
		out = append(out, file[off:end]...)
		off = end
	}
	return out
}

// DecodeSparse writes the file an EncodeSparse description stands for
// (tolerating any input) into dir and returns its path.
func DecodeSparse(t testing.TB, dir string, in []byte) string {
	t.Helper()
	p := filepath.Join(dir, "fuzz.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(in) < 8 {
		return p
	}
	size := int64(binary.LittleEndian.Uint64(in) % maxSparseSize)
	f.Truncate(size)
	in = in[8:]
	for len(in) >= 6 {
		off := int64(binary.LittleEndian.Uint32(in))
		n := int(binary.LittleEndian.Uint16(in[4:]))
		in = in[6:]
		n = min(n, len(in))
		if off < maxSparseSize {
			f.WriteAt(in[:n], off)
		}
		in = in[n:]
	}
	return p
}

// WriteSeed writes one corpus file in Go's fuzz corpus format.
func WriteSeed(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if len(data) >= 64<<10 {
		t.Fatalf("seed %s is %d bytes, over 64 KiB", name, len(data))
	}
	if err := fuzzcorpus.Write(dir, name, data); err != nil {
		t.Fatal(err)
	}
}
