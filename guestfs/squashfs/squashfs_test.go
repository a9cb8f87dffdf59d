package squashfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func openFile(t *testing.T, path string) error {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fs, notes, err := open(context.Background(), f, st.Size(), path)
	if err != nil {
		return err
	}
	if fs.Kind() != "squashfs" || len(notes) != 1 || !strings.Contains(notes[0], "not attributed") {
		t.Errorf("%s: kind %q, notes %q", path, fs.Kind(), notes)
	}
	return nil
}

// TestOpenMksquashfs: squashfs images that mksquashfs writes with each of
// its compressors open.
func TestOpenMksquashfs(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
mkdir -p src/etc/deep
echo host > src/etc/hostname
head -c 300000 /dev/urandom > src/etc/deep/big.bin
for c in gzip xz zstd lz4 lzo; do mksquashfs src $c.sqfs -noappend -quiet -no-progress -comp $c >/dev/null; done`)
	for _, c := range []string{"gzip", "xz", "zstd", "lz4", "lzo"} {
		if err := openFile(t, filepath.Join(dir, c+".sqfs")); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// TestOpenMetadataBombs: a metadata block that inflates to 900 MiB or 200
// MiB (hostile.SquashfsMetadataBomb) costs neither the memory nor the time
// it claims. In the id table, which the reader never needs, the image opens
// (go-diskfs's reader, used before, took 4.5 GiB and 15 s); in the inode
// table, the root inode cannot be read and the error says where.
func TestOpenMetadataBombs(t *testing.T) {
	testutil.RequireTool(t, "mksquashfs", "zstd")
	for _, inodes := range []bool{false, true} {
		path, err := hostile.SquashfsMetadataBomb(context.Background(), t.TempDir(), inodes)
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = openFile(t, path)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("%s: opening allocated %d MiB", filepath.Base(path), alloc>>20)
		}
		switch {
		case !inodes && err != nil:
			t.Errorf("%s: %v", filepath.Base(path), err)
		case inodes && (err == nil || !strings.Contains(err.Error(), "offset ")):
			t.Errorf("%s: error %v, want one naming the metadata block's offset", filepath.Base(path), err)
		}
	}
}

// FuzzOpen opens arbitrary bytes as a squashfs partition: it must never
// panic, and never allocate more than the reader's caps. The seeds are
// images that mksquashfs writes at fuzz time with each compressor.
func FuzzOpen(f *testing.F) {
	testutil.RequireTool(f, "mksquashfs")
	dir := f.TempDir()
	testutil.Bash(f, dir, `set -e
mkdir -p src/etc
echo host > src/etc/hostname
for c in gzip xz zstd lz4 lzo; do mksquashfs src $c.sqfs -noappend -quiet -no-progress -comp $c >/dev/null; done`)
	for _, c := range []string{"gzip", "xz", "zstd", "lz4", "lzo"} {
		f.Add(testutil.FileSnapshot(f, filepath.Join(dir, c+".sqfs")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		open(context.Background(), bytes.NewReader(data), int64(len(data)), "fuzz")
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Fatalf("opening %d bytes allocated %d MiB", len(data), alloc>>20)
		}
	})
}
