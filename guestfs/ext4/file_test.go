package ext4

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestOpenStreamsWholeFiles: Open reads every file of the tree, a file
// larger than ReadFile's cap and a sparse file with holes byte for byte as
// the host wrote them, on every filesystem variant, and Readlink returns
// the symlink's target.
func TestOpenStreamsWholeFiles(t *testing.T) {
	testutil.RequireTool(t, "truncate")
	src, files := tree(t)
	big := bigContent(MaxReadFile + 3<<20 + 17) // over ReadFile's cap, not block-aligned
	files["/var/lib/huge.bin"] = big
	if err := os.WriteFile(filepath.Join(src, "var/lib/huge.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	// A sparse file: data, a 1 MiB hole, data, then a hole up to i_size.
	sparse := filepath.Join(src, "var/lib/sparse.bin")
	head, mid := bigContent(5000), bytes.Repeat([]byte("tail-data"), 700)
	if err := os.WriteFile(sparse, head, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(sparse, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(mid, 1<<20+5000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testutil.Run(t, "truncate", "-s", "3M", sparse)
	files["/var/lib/sparse.bin"] = testutil.FileSnapshot(t, sparse)
	stamp := time.Date(2024, 5, 1, 12, 0, 7, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "var/lib/huge.bin"), stamp, stamp); err != nil {
		t.Fatal(err)
	}

	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			c.size = "64M"
			img := mkImage(t, c, src)
			before := sum(t, img)
			e, _ := openImage(t, img)
			// debugfs is the reference for the sparse file: mke2fs -d
			// drops its trailing hole where inline_data is on.
			dumped := filepath.Join(t.TempDir(), "sparse")
			testutil.Run(t, "debugfs", "-R", "dump /var/lib/sparse.bin "+dumped, img)
			for p, want := range files {
				if p == "/var/lib/sparse.bin" {
					want = testutil.FileSnapshot(t, dumped)
				}
				fl, err := e.Open(p)
				if err != nil {
					t.Fatalf("Open(%s): %v", p, err)
				}
				if fl.Size() != int64(len(want)) {
					t.Errorf("%s: Size %d, want %d", p, fl.Size(), len(want))
				}
				h := sha256.New()
				// An odd buffer size crosses block and run boundaries.
				n, err := io.CopyBuffer(h, io.NewSectionReader(fl, 0, fl.Size()), make([]byte, 12345))
				if err != nil || n != int64(len(want)) || !bytes.Equal(h.Sum(nil), sha256OfBytes(want)) {
					t.Errorf("%s: streamed %d bytes, err %v, digest equal %v", p, n, err, bytes.Equal(h.Sum(nil), sha256OfBytes(want)))
				}
			}
			if mt, err := e.Mtime("/var/lib/huge.bin"); err != nil || mt != uint32(stamp.Unix()) {
				t.Errorf("Mtime of huge.bin: %v", err)
			}
			if _, err := e.ReadFile("/var/lib/huge.bin"); err == nil {
				t.Errorf("ReadFile of a file over the cap succeeded")
			}
			if _, err := e.Open("/etc/ssh"); err == nil {
				t.Errorf("Open of a directory succeeded")
			}
			if got, err := e.Readlink("/etc/keylink"); err != nil || got != "ssh/ssh_host_rsa_key" {
				t.Errorf("Readlink = %q, %v", got, err)
			}
			if _, err := e.Readlink("/etc/hostname"); err == nil {
				t.Errorf("Readlink of a regular file succeeded")
			}
			if sum(t, img) != before {
				t.Fatal("image changed while reading")
			}
		})
	}
}

func sha256OfBytes(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestOpenInlineHugeSize: an inline-data file whose i_size debugfs sets to
// 1 TiB opens as 1 TiB of its inline bytes then zeros, read in place. Open
// allocated i_size bytes for inline data before, and a fuzz input ran out
// of memory that way.
func TestOpenInlineHugeSize(t *testing.T) {
	testutil.RequireTool(t, "mke2fs", "debugfs")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
mkdir -p root/etc
printf 'password=inline\n' > root/etc/small.conf
mke2fs -q -F -t ext4 -O inline_data -d root fs.img 4M
debugfs -w -R "sif /etc/small.conf size 0x10000000000" fs.img 2>/dev/null`)
	img := filepath.Join(dir, "fs.img")
	e, _ := openImage(t, img)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fl, err := e.Open("/etc/small.conf")
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 32)
	n, _ := fl.ReadAt(head, 0)
	tail := []byte{1, 2, 3}
	m, err := fl.ReadAt(tail, 1<<40-3)
	runtime.ReadMemStats(&after)
	if fl.Size() != 1<<40 || n != 32 || !bytes.HasPrefix(head, []byte("password=inline\n")) || !bytes.Equal(head[16:], make([]byte, 16)) {
		t.Errorf("size %d, head %q", fl.Size(), head[:n])
	}
	if m != 3 || !bytes.Equal(tail, []byte{0, 0, 0}) || (err != nil && err != io.EOF) {
		t.Errorf("the last 3 bytes: %d, %v, %v", m, tail, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("opening and reading allocated %d MiB", alloc>>20)
	}
}
