package xfs

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

//go:generate go run ./testdata/mkseeds testdata/fuzz/FuzzXFSOpen

// fuzzDeviceSize is the size of the device a fuzz input describes: the
// smallest XFS mkfs.xfs makes (one 16 MiB AG).
const fuzzDeviceSize = 16 << 20

// sparseDevice is a device of fuzzDeviceSize zero bytes with chunks
// written over them. A fuzz input is a list of chunks, each a big-endian
// 32-bit offset, a 16-bit length and that many bytes, so that a seed holds
// only the non-zero sectors of a real image (see testdata/mkseeds).
type sparseDevice struct {
	chunks []sparseChunk
}

type sparseChunk struct {
	off  int64
	data []byte
}

func decodeSparse(in []byte) sparseDevice {
	var d sparseDevice
	for len(in) >= 6 {
		off := int64(binary.BigEndian.Uint32(in))
		n := int(binary.BigEndian.Uint16(in[4:]))
		in = in[6:]
		n = min(n, len(in))
		d.chunks = append(d.chunks, sparseChunk{off, in[:n]})
		in = in[n:]
	}
	return d
}

func (d sparseDevice) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzDeviceSize {
		return 0, io.EOF
	}
	n := min(int64(len(b)), fuzzDeviceSize-off)
	clear(b[:n])
	for _, c := range d.chunks {
		if c.off < off+n && c.off+int64(len(c.data)) > off {
			s := max(c.off, off)
			e := min(c.off+int64(len(c.data)), off+n)
			copy(b[s-off:e-off], c.data[s-c.off:e-c.off])
		}
	}
	if n < int64(len(b)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// FuzzXFSOpen opens arbitrary bytes as an XFS filesystem, walks it, looks
// up block states and reads files. It must never panic, hang or allocate
// without bound.
func FuzzXFSOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		dev := decodeSparse(data)
		x, err := Open(dev, fuzzDeviceSize, "fuzz")
		if err != nil {
			return
		}
		for _, off := range []int64{0, 4096, fuzzDeviceSize / 2, fuzzDeviceSize - 1} {
			x.State(off)
		}
		n := 0
		_ = x.Walk(context.Background(), func(e fsys.Entry) error {
			if n++; n > 10000 {
				return fs.SkipAll
			}
			for _, r := range e.Runs {
				if r.Off < 0 || r.Len <= 0 || r.Off+r.Len > fuzzDeviceSize {
					t.Fatalf("%s: run %+v outside the device", e.Path, r)
				}
				x.State(r.Off)
			}
			if e.Mode.IsRegular() && e.Size < 1<<16 {
				if fl, err := x.Open(e.Path); err == nil {
					fl.ReadAt(make([]byte, fl.Size()), 0)
				}
			}
			return nil
		})
		x.ReadDir("/")
		x.ReadDir("/etc")
		x.Open("/l")
	})
}

// TestFuzzSeeds checks the committed seeds: each must open, walk to the
// file mkseeds put there and read its contents through the symlink.
func TestFuzzSeeds(t *testing.T) {
	for _, name := range []string{"tiny-v5", "tiny-v4"} {
		t.Run(name, func(t *testing.T) {
			data := testutil.FuzzSeed(t, filepath.Join("testdata/fuzz/FuzzXFSOpen", name))
			x, err := Open(decodeSparse(data), fuzzDeviceSize, name)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			if err := x.Walk(context.Background(), func(e fsys.Entry) error {
				paths = append(paths, e.Path)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(paths) != "[/ /etc /l /etc/secret]" {
				t.Errorf("walk: %v", paths)
			}
			fl, err := x.Open("/l")
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, fl.Size())
			if _, err := fl.ReadAt(got, 0); err != nil || string(got) != "password=hunter2\n" {
				t.Errorf("/l: %q, %v", got, err)
			}
		})
	}
}
