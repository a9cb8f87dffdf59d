package ext4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// tree writes a source tree for mkfs -d: small, multi-block, sparse-looking
// and nested files, a symlink, and a directory big enough to need an htree.
func tree(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"/etc/hostname":              []byte("guest-host\n"),
		"/etc/ssh/ssh_host_rsa_key":  bytes.Repeat([]byte("RSA-KEY-MATERIAL-0123456789abcdef\n"), 200),
		"/root/.ssh/authorized_keys": []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTestsOnly user@host\n"),
		"/var/lib/big.bin":           bigContent(300 << 10),
		"/tiny":                      []byte("x"),
	}
	for i := 0; i < 300; i++ { // enough entries for an htree directory
		files[fmt.Sprintf("/many/file-with-a-longish-name-%04d", i)] = []byte(fmt.Sprintf("content %d\n", i))
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("ssh/ssh_host_rsa_key", filepath.Join(src, "etc/keylink")); err != nil {
		t.Fatal(err)
	}
	return src, files
}

func bigContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

type fsCase struct {
	name string
	mkfs []string // mkfs.ext4 arguments before -d
	size string
}

var fsCases = []fsCase{
	{"ext4-4k", []string{"-t", "ext4", "-b", "4096", "-g", "1024"}, "16M"},
	{"ext4-1k", []string{"-t", "ext4", "-b", "1024"}, "24M"},
	{"ext2", []string{"-t", "ext2", "-b", "1024"}, "8M"},
	{"ext3", []string{"-t", "ext3", "-b", "4096"}, "16M"},
	{"ext4-inline", []string{"-t", "ext4", "-O", "inline_data", "-I", "256"}, "8M"},
	{"ext4-metabg", []string{"-t", "ext4", "-b", "1024", "-g", "1024", "-O", "^resize_inode,meta_bg"}, "16M"},
	{"ext4-32bit", []string{"-t", "ext4", "-O", "^64bit,^metadata_csum", "-g", "1024", "-b", "4096"}, "16M"},
}

func mkImage(t *testing.T, c fsCase, src string) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4", "debugfs")
	img := filepath.Join(t.TempDir(), c.name+".img")
	args := append([]string{"-q", "-F", "-E", "lazy_itable_init=1"}, c.mkfs...)
	args = append(args, "-d", src, img, c.size)
	testutil.Run(t, "mkfs.ext4", args...)
	return img
}

func openImage(t *testing.T, img string) (*FS, *os.File) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	e, err := OpenNamed(f, st.Size(), img)
	if err != nil {
		t.Fatal(err)
	}
	return e, f
}

func sum(t *testing.T, p string) [32]byte {
	t.Helper()
	return sha256.Sum256(testutil.FileSnapshot(t, p))
}

// debugfsBlocks lists the data blocks of a file as debugfs reports them.
func debugfsBlocks(t *testing.T, img, p string) []uint64 {
	out := string(testutil.Run(t, "debugfs", "-R", "blocks "+p, img))
	var bl []uint64
	for _, f := range strings.Fields(out) {
		if n, err := strconv.ParseUint(f, 10, 64); err == nil {
			bl = append(bl, n)
		}
	}
	return bl
}

func TestWalkReadFileBlocks(t *testing.T) {
	src, files := tree(t)
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			img := mkImage(t, c, src)
			before := sum(t, img)
			e, _ := openImage(t, img)

			seen := map[string]fs.FileMode{}
			if err := e.WalkInodes(context.Background(), func(p string, ino uint32, mode fs.FileMode) error {
				seen[p] = mode
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for p := range files {
				if m, ok := seen[p]; !ok || !m.IsRegular() {
					t.Errorf("walk: %s missing or not regular (%v)", p, m)
				}
			}
			if m := seen["/etc/keylink"]; m&fs.ModeSymlink == 0 {
				t.Errorf("walk: /etc/keylink mode %v", m)
			}
			if !seen["/lost+found"].IsDir() || !seen["/etc/ssh"].IsDir() {
				t.Errorf("walk: directories missing")
			}

			for p, want := range files {
				got, err := e.ReadFile(p)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadFile(%s): %d bytes, err %v; want %d bytes", p, len(got), err, len(want))
				}
			}
			if got, err := e.ReadFile("/etc/keylink"); err != nil || !bytes.Equal(got, files["/etc/ssh/ssh_host_rsa_key"]) {
				t.Errorf("ReadFile through symlink: %v", err)
			}
			if _, err := e.ReadFile("/etc/nope"); err == nil {
				t.Errorf("ReadFile of a missing file succeeded")
			}
			ents, err := e.List("/etc/ssh")
			if err != nil || len(ents) != 1 || ents[0].Name != "ssh_host_rsa_key" {
				t.Errorf("ReadDir(/etc/ssh) = %v, %v", ents, err)
			}

			// Block maps agree with debugfs for multi-block files.
			for _, p := range []string{"/etc/ssh/ssh_host_rsa_key", "/var/lib/big.bin"} {
				ino, err := e.Lookup(p)
				if err != nil {
					t.Fatal(err)
				}
				runs, err := e.InodeBlocks(ino)
				if err != nil {
					t.Fatal(err)
				}
				var got []uint64
				for _, r := range runs {
					for i := uint64(0); i < r.Len; i++ {
						got = append(got, r.Physical+i)
					}
				}
				want := debugfsBlocks(t, img, p)
				if c.name == "ext4-inline" || strings.HasPrefix(c.name, "ext2") || c.name == "ext3" {
					// debugfs also lists indirect blocks for block-mapped
					// files; keep only the data blocks we report.
					want = filterIn(want, got)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: blocks %v, debugfs %v", p, short(got), short(want))
				}
				if len(got) == 0 {
					t.Errorf("%s: no blocks", p)
				}
			}
			if sum(t, img) != before {
				t.Fatal("image changed while reading")
			}
		})
	}
}

func filterIn(want, got []uint64) []uint64 {
	in := map[uint64]bool{}
	for _, g := range got {
		in[g] = true
	}
	var out []uint64
	for _, w := range want {
		if in[w] {
			out = append(out, w)
		}
	}
	return out
}

func short(b []uint64) string {
	if len(b) > 8 {
		return fmt.Sprintf("%v...(%d)", b[:8], len(b))
	}
	return fmt.Sprint(b)
}

// TestIndirectBlocksCounted checks, for block-mapped filesystems, that
// every block debugfs lists is either data we report or an indirect block.
func TestIndirectBlocksCounted(t *testing.T) {
	src, _ := tree(t)
	c := fsCases[2] // ext2, 1 KiB blocks: big.bin needs double indirect blocks
	img := mkImage(t, c, src)
	e, _ := openImage(t, img)
	runs, err := e.InodeBlocks(mustLookup(t, e, "/var/lib/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, r := range runs {
		n += r.Len
	}
	all := debugfsBlocks(t, img, "/var/lib/big.bin")
	// 300 KiB of 1 KiB blocks: 300 data blocks, plus 1 single, 1 double
	// and 1 second-level indirect block, as debugfs lists them.
	if n != 300 || len(all) != 303 {
		t.Errorf("data blocks %d (want 300), debugfs lists %d (want 303)", n, len(all))
	}
}

func mustLookup(t *testing.T, e *FS, p string) uint32 {
	t.Helper()
	ino, err := e.Lookup(p)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// TestBlockAllocatedMatchesDebugfs compares every block's bitmap state with
// debugfs testb, including BLOCK_UNINIT groups, before and after deleting
// a file with debugfs.
func TestBlockAllocatedMatchesDebugfs(t *testing.T) {
	src, _ := tree(t)
	for _, c := range fsCases {
		t.Run(c.name, func(t *testing.T) {
			img := mkImage(t, c, src)
			check := func(stage string) {
				e, _ := openImage(t, img)
				first := max(uint64(e.Superblock().FirstDataBlock), 1) // debugfs refuses block 0
				n := e.BlocksCount() - first
				out := string(testutil.Run(t, "debugfs", "-R", fmt.Sprintf("testb %d %d", first, n), img))
				var bad []string
				lines := 0
				for _, line := range strings.Split(out, "\n") {
					var blk uint64
					var rest string
					if _, err := fmt.Sscanf(line, "Block %d %s", &blk, &rest); err != nil {
						continue
					}
					lines++
					want := strings.Contains(line, "marked in use")
					got, err := e.BlockAllocated(blk)
					if err != nil {
						t.Fatal(err)
					}
					if got != want && len(bad) < 10 {
						bad = append(bad, fmt.Sprintf("%d: got %v want %v", blk, got, want))
					}
				}
				if uint64(lines) != n {
					t.Fatalf("%s: debugfs reported %d blocks, want %d", stage, lines, n)
				}
				if len(bad) > 0 {
					t.Errorf("%s: %v", stage, bad)
				}
			}
			check("fresh")

			// Delete a multi-block file; its blocks must read as free.
			e, _ := openImage(t, img)
			runs, err := e.InodeBlocks(mustLookup(t, e, "/var/lib/big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "debugfs", "-w", "-R", "rm /var/lib/big.bin", img)
			check("after rm")
			e, _ = openImage(t, img)
			for _, r := range runs {
				if a, _ := e.BlockAllocated(r.Physical); a {
					t.Errorf("block %d of the deleted file still allocated", r.Physical)
				}
			}
			if _, err := e.Lookup("/var/lib/big.bin"); err == nil {
				t.Errorf("deleted file still found")
			}
		})
	}
}

func TestRejectsNonExt(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"zeros", make([]byte, 8192)},
		{"magic-only", func() []byte { b := make([]byte, 8192); b[1024+0x38], b[1024+0x39] = 0x53, 0xEF; return b }()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Open(bytes.NewReader(c.data), int64(len(c.data))); err == nil {
				t.Fatal("opened garbage")
			}
		})
	}
}

// TestSharedIndexTree: 200 empty files that all share one extent tree of
// depth 4 (hostile.Ext4SharedIndexSized: mkfs.ext4 -d, then edited) are
// walked within the walk's budget of index blocks, and the walk says
// so. Without the budget each file read its own cap of 16,384 index
// blocks: 13 GB read for a 64 MiB filesystem.
func TestSharedIndexTree(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs")
	img, err := hostile.Ext4SharedIndexSized(context.Background(), t.TempDir(), 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	cr := &fstest.CountingReader{R: f}
	e, err := OpenNamed(cr, st.Size(), img)
	if err != nil {
		t.Fatal(err)
	}
	fstest.BoundedPartialWalk(t, e, cr, st.Size(), "index blocks shared between inodes", 200)
}
