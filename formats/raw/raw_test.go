package raw

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestOpenMapsReadOnly: a raw image is mapped so that scans read it without
// copies; what Slice lends equals what ReadAt reads, the mapping cannot be
// written, and the file is unchanged.
func TestOpenMapsReadOnly(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	path := filepath.Join(t.TempDir(), "disk.raw")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "raw", path, "4M")
	testutil.Run(t, "qemu-io", "-f", "raw", "-c", "write -q -P 0x5a 1M 64k", "-c", "write -q -P 0xa5 4194000 304", path)
	before := testutil.FileSnapshot(t, path)

	im, err := Open(context.Background(), path, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := im.Views[0].Disk.(mappedDisk)
	if !ok || d.Map == nil {
		t.Fatalf("raw view disk %T is not mapped", im.Views[0].Disk)
	}
	size := d.Size()
	for _, tc := range []struct {
		name   string
		off    int64
		n      int
		wantOK bool
	}{
		{"start", 0, 4096, true},
		{"pattern", 1 << 20, 65536, true},
		{"end", size - 304, 304, true},
		{"past the end", size - 304, 305, false},
		{"negative offset", -1, 16, false},
		{"negative length", 0, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := d.Slice(tc.off, tc.n)
			if ok != tc.wantOK {
				t.Fatalf("Slice(%d, %d) ok=%v, want %v", tc.off, tc.n, ok, tc.wantOK)
			}
			if !ok {
				return
			}
			want := make([]byte, tc.n)
			if _, err := d.ReadAt(want, tc.off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("Slice(%d, %d) differs from ReadAt", tc.off, tc.n)
			}
			// Released bytes drop out of the mapping's page tables,
			// not out of the file: they read the same again.
			d.Release(b)
			if !bytes.Equal(b, want) {
				t.Fatalf("Slice(%d, %d) differs from ReadAt after Release", tc.off, tc.n)
			}
		})
	}

	b, _ := d.Slice(1<<20, 1)
	if !writeFaults(b) {
		t.Fatal("the mapping of a raw image could be written")
	}
	if err := im.Close(); err != nil {
		t.Fatal(err)
	}
	if after := testutil.FileSnapshot(t, path); !bytes.Equal(before, after) {
		t.Fatal("image changed")
	}
}

// writeFaults reports whether writing to b faults.
func writeFaults(b []byte) (faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			_, faulted = v.(interface{ Addr() uintptr })
		}
	}()
	b[0] ^= 0xff
	return false
}
