package guestfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/guestfs/ext4"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/iso9660"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// marker returns distinctive file contents: a unique marker repeated to
// n bytes, so that its first occurrence in the raw image is the file's
// first byte.
func marker(name string, n int) []byte {
	m := []byte("<<" + name + ">>")
	return bytes.Repeat(m, n/len(m)+1)[:n]
}

// testFiles are the files every fixture holds (path -> size).
var testFiles = map[string]int{
	"/etc/ssh/ssh_host_rsa_key":      5000, // 2 blocks with slack in the last one
	"/root/.ssh/authorized_keys":     900,
	"/home/alice/.aws/credentials":   20000,
	"/var/lib/deep/a/b/c/secret.txt": 3000,
	"/deleteme/old-credential.txt":   6000,
}

func writeTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for p, n := range testFiles {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, marker(p, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// analyzeFile opens path as a raw image and analyzes its current view,
// checking that the file did not change.
func analyzeFile(t *testing.T, path string) (*Map, []byte) {
	t.Helper()
	return analyzeFileWithin(t, path, defaultBudgets())
}

// analyzeFileWithin is analyzeFile within the budgets bud.
func analyzeFileWithin(t *testing.T, path string, bud budgets) (*Map, []byte) {
	t.Helper()
	before := sha256.Sum256(testutil.FileSnapshot(t, path))
	im, err := raw.Open(context.Background(), path, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() }) // the Map reads through the open image
	m, err := analyze(context.Background(), im.Views[0].Disk, bud)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	data := testutil.FileSnapshot(t, path)
	if sha256.Sum256(data) != before {
		t.Fatal("image changed during Analyze")
	}
	return m, data
}

// contentOffset finds a file's first byte in the raw image.
func contentOffset(t *testing.T, img []byte, p string) int64 {
	t.Helper()
	i := bytes.Index(img, marker(p, 64))
	if i < 0 {
		t.Fatalf("content of %s not in the image", p)
	}
	return int64(i)
}

// embed writes a filesystem image into a disk image at byte offset off,
// after the partition table tool has written the table.
func embed(t *testing.T, disk, fsImg string, off int64) {
	t.Helper()
	b := testutil.FileSnapshot(t, fsImg)
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func mkExt(t *testing.T, src string, args ...string) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4", "debugfs")
	img := filepath.Join(t.TempDir(), "fs.img")
	a := append([]string{"-q", "-F"}, args...)
	a = append(a, "-d", src, img, "16M")
	testutil.Run(t, "mkfs.ext4", a...)
	return img
}

const partStart = 1 << 20 // 1 MiB, where sfdisk puts the first partition

// layouts wrap a filesystem image into a disk.
var layouts = []struct {
	name     string
	part     string // expected partition name
	fsOffset int64
	build    func(t *testing.T, fsImg string) string
}{
	{"whole-disk", WholeDisk, 0, func(t *testing.T, fsImg string) string { return fsImg }},
	{"gpt", "p1", partStart, func(t *testing.T, fsImg string) string {
		return sfdiskDisk(t, fsImg, "label: gpt\nstart=2048, size=32768, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", partStart)
	}},
	{"mbr", "p1", partStart, func(t *testing.T, fsImg string) string {
		return sfdiskDisk(t, fsImg, "label: dos\nstart=2048, size=32768, type=83\n", partStart)
	}},
	{"mbr-logical", "p5", partStart + 2<<20, func(t *testing.T, fsImg string) string {
		// p1 small, p2 extended from 2 MiB (its first EBR there), p5
		// logical at 3 MiB holding the fs.
		return sfdiskDisk(t, fsImg, "label: dos\nstart=2048, size=1024, type=83\nstart=4096, size=40960, type=5\nstart=6144, size=32768, type=83\n", partStart+2<<20)
	}},
}

func sfdiskDisk(t *testing.T, fsImg, script string, off int64) string {
	t.Helper()
	testutil.RequireTool(t, "sfdisk")
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(fsImg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, max(48<<20, off+st.Size()+1<<20)); err != nil {
		t.Fatal(err)
	}
	cmd := fmt.Sprintf("sfdisk --no-reread --no-tell-kernel -q %s <<'EOF'\n%sEOF\n", disk, script)
	testutil.Run(t, "sh", "-c", cmd)
	embed(t, disk, fsImg, off)
	return disk
}

func TestExtLocate(t *testing.T) {
	src := writeTree(t)
	fsKinds := []struct {
		name, fs string
		args     []string
		bs       int64
	}{
		{"ext4", "ext4", []string{"-t", "ext4", "-b", "4096"}, 4096},
		{"ext4-1k", "ext4", []string{"-t", "ext4", "-b", "1024"}, 1024},
		{"ext2", "ext2", []string{"-t", "ext2", "-b", "4096"}, 4096},
		{"ext3", "ext3", []string{"-t", "ext3", "-b", "1024"}, 1024},
	}
	for _, k := range fsKinds {
		for _, l := range layouts {
			t.Run(k.name+"/"+l.name, func(t *testing.T) {
				fsImg := mkExt(t, src, k.args...)
				// Delete one file without wiping it, as an attacker-free
				// guest would: its blocks become free, its bytes stay.
				testutil.Run(t, "debugfs", "-w", "-R", "rm /deleteme/old-credential.txt", fsImg)
				disk := l.build(t, fsImg)
				m, img := analyzeFile(t, disk)
				for _, u := range m.Unattributed() {
					// Only the empty p1 of the logical layout may be unattributed.
					if !(l.part == "p5" && strings.HasPrefix(u, "p1: unknown: ")) {
						t.Errorf("unattributed: %v", u)
					}
				}
				for p := range testFiles {
					off := contentOffset(t, img, p)
					got := m.Locate(off)
					want := Location{Partition: l.part, FS: k.fs, Path: p, State: StateAllocated}
					if p == "/deleteme/old-credential.txt" {
						want.Path, want.State = "", StateFree
					}
					if !sameLoc(got, want) {
						t.Errorf("Locate(%d) for %s = %+v, want %+v", off, p, got, want)
					}
				}
				// Slack past the end of a live file: free, path kept.
				key := "/etc/ssh/ssh_host_rsa_key"
				slack := contentOffset(t, img, key) + int64(testFiles[key]) + 10
				if got := m.Locate(slack); got.Path != key || got.State != StateFree {
					t.Errorf("slack: %+v", got)
				}
				// Superblock: metadata, allocated, no path.
				if got := m.Locate(l.fsOffset + 1024); got.State != StateAllocated || got.Path != "" || got.Partition != l.part {
					t.Errorf("superblock: %+v", got)
				}
				// The last block of this mostly empty filesystem is free
				// according to debugfs.
				last := int64(16<<20)/k.bs - 1
				out := string(testutil.Run(t, "debugfs", "-R", fmt.Sprintf("testb %d", last), fsImg))
				wantState := StateFree
				if strings.Contains(out, "marked in use") {
					wantState = StateAllocated
				}
				if got := m.Locate(l.fsOffset + last*k.bs + 7); got.State != wantState || got.Path != "" {
					t.Errorf("last block: %+v, debugfs says %s", got, wantState)
				}
				// Before the first partition: no filesystem.
				if l.fsOffset > 0 {
					if got := m.Locate(4096); got.State != StateUnknown || got.Partition != "" {
						t.Errorf("gap: %+v", got)
					}
				}
				// ReadFile and ListDir go through the filesystem.
				b, err := m.ReadFile("/root/.ssh/authorized_keys")
				if err != nil || !bytes.Equal(b, marker("/root/.ssh/authorized_keys", 900)) {
					t.Errorf("ReadFile: %d bytes, %v", len(b), err)
				}
				if _, err := m.ReadFile("/deleteme/old-credential.txt"); err == nil {
					t.Errorf("ReadFile of a deleted file succeeded")
				}
				ents, err := m.ListDir("/home/alice/.aws")
				if err != nil || len(ents) != 1 || ents[0].Name() != "credentials" {
					t.Errorf("ListDir: %v, %v", ents, err)
				}
				ps := m.Partitions()
				found := false
				for _, p := range ps {
					if p.Name == l.part {
						found = p.FS == k.fs && p.Attributed && p.Start == l.fsOffset
					}
				}
				if !found {
					t.Errorf("partitions: %+v", ps)
				}
			})
		}
	}
}

// TestDiskfsWalkMatchesOwnWalk checks that go-diskfs's tree and our own
// walker agree on every (path, inode) pair of a Debian-default ext4, with a
// directory large enough for e2fsck -D to index it as an htree, a deep
// chain and a symlink.
func TestDiskfsWalkMatchesOwnWalk(t *testing.T) {
	testutil.RequireTool(t, "e2fsck")
	src := writeTree(t)
	big := filepath.Join(src, "big")
	if err := os.MkdirAll(filepath.Join(src, "a/b/c/d/e/f/g"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a/b/c/d/e/f/g/deep.txt"), []byte("deep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a/b/c", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(big, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("file-with-a-long-name-%04d.conf", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := mkExt(t, src, "-t", "ext4")
	// e2fsck -D rebuilds directories, indexing those of more than a block.
	if out, err := exec.Command("e2fsck", "-fyD", img).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 2 {
			t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
		}
	}
	out := string(testutil.Run(t, "debugfs", "-R", "stat /big", img))
	var flags uint32
	if _, after, ok := strings.Cut(out, "Flags: "); !ok {
		t.Fatalf("debugfs stat /big: no flags:\n%s", out)
	} else if _, err := fmt.Sscanf(after, "0x%x", &flags); err != nil || flags&0x1000 == 0 { // EXT4_INDEX_FL
		t.Fatalf("/big is not an indexed directory (flags %#x):\n%s", flags, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	e, err := ext4.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	walk := func(ctx context.Context, fn func(string, uint32, os.FileMode) error) error {
		return diskfsExtWalk(ctx, e, f, st.Size(), fn)
	}
	collect := func(w func(context.Context, func(string, uint32, os.FileMode) error) error) map[string]uint32 {
		out := map[string]uint32{}
		if err := w(context.Background(), func(p string, ino uint32, _ os.FileMode) error { out[p] = ino; return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := collect(walk), collect(e.WalkInodes)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) < len(testFiles)+600 || a["/a/b/c/d/e/f/g/deep.txt"] == 0 || a["/link"] == 0 {
		t.Fatalf("go-diskfs walk %v\nown walk %v", a, b)
	}
}

func TestFATLocate(t *testing.T) {
	testutil.RequireTool(t, "mkfs.vfat", "mcopy", "mdel")
	src := writeTree(t)
	for _, c := range []struct{ name, fat string }{{"fat12", "12"}, {"fat16", "16"}, {"fat32", "32"}} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "fat.img")
			size := "16384"
			if c.fat == "32" {
				size = "40000"
			}
			if c.fat == "12" {
				size = "2048"
			}
			testutil.Run(t, "mkfs.vfat", "-C", "-F", c.fat, img, size)
			entries, _ := os.ReadDir(src)
			for _, e := range entries {
				testutil.Run(t, "mcopy", "-s", "-i", img, filepath.Join(src, e.Name()), "::/")
			}
			testutil.Run(t, "mdel", "-i", img, "::/deleteme/old-credential.txt")
			m, data := analyzeFile(t, img)
			for p := range testFiles {
				got := m.Locate(contentOffset(t, data, p))
				want := Location{Partition: WholeDisk, FS: "vfat", Path: p, State: StateAllocated}
				if strings.HasPrefix(p, "/deleteme/") {
					want.Path, want.State = "", StateFree
				}
				if !sameLoc(got, want) {
					t.Errorf("%s: %+v, want %+v", p, got, want)
				}
			}
			if got := m.Locate(0); got.State != StateAllocated || got.Path != "" {
				t.Errorf("boot sector: %+v", got)
			}
		})
	}
}

func TestISOLocate(t *testing.T) {
	testutil.RequireTool(t, "xorriso")
	src := writeTree(t)
	img := filepath.Join(t.TempDir(), "cd.iso")
	testutil.Run(t, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", img, src)
	m, data := analyzeFile(t, img)
	for p := range testFiles {
		got := m.Locate(contentOffset(t, data, p))
		want := Location{Partition: WholeDisk, FS: "iso9660", Path: p, State: StateAllocated}
		if !sameLoc(got, want) {
			t.Errorf("%s: %+v, want %+v", p, got, want)
		}
	}
}

func TestSquashfsAndUnsupported(t *testing.T) {
	src := writeTree(t)
	cases := []struct {
		name, tool, fs string
		attributed     bool
		make           func(t *testing.T, img string)
	}{
		{"squashfs", "mksquashfs", "squashfs", false, func(t *testing.T, img string) {
			testutil.Run(t, "mksquashfs", src, img, "-noappend", "-quiet", "-no-progress")
		}},
		{"swap", "mkswap", "swap", false, func(t *testing.T, img string) {
			if err := os.Truncate(img, 4<<20); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "mkswap", img)
		}},
		// While Linux is hibernated to it, the kernel's signature
		// (swsusp's S1SUSPEND) stands where mkswap's was.
		{"hibernated-swap", "mkswap", "swap", false, func(t *testing.T, img string) {
			if err := os.Truncate(img, 4<<20); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "mkswap", img)
			testutil.Bash(t, filepath.Dir(img), "printf 'S1SUSPEND\\0' | dd of="+filepath.Base(img)+" bs=1 seek=4086 conv=notrunc status=none")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testutil.RequireTool(t, c.tool)
			img := filepath.Join(t.TempDir(), c.name+".img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			c.make(t, img)
			m, _ := analyzeFile(t, img)
			ps := m.Partitions()
			if len(ps) != 1 || ps[0].FS != c.fs || ps[0].Attributed != c.attributed {
				t.Fatalf("partitions: %+v", ps)
			}
			u := m.Unattributed()
			if len(u) != 1 || !strings.HasPrefix(u[0], "disk: "+c.fs+": ") {
				t.Errorf("unattributed: %q", u)
			}
			loc := m.Locate(100)
			if loc.FS != c.fs || loc.Path != "" {
				t.Errorf("Locate: %+v", loc)
			}
		})
	}
}

func TestNoFilesystem(t *testing.T) {
	img := filepath.Join(t.TempDir(), "zero.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := analyzeFile(t, img)
	if got := m.Locate(4096); got.State != StateUnknown {
		t.Errorf("Locate: %+v", got)
	}
	if len(m.Unattributed()) != 1 {
		t.Errorf("unattributed: %q", m.Unattributed())
	}
	if _, err := m.ReadFile("/etc/shadow"); err == nil {
		t.Error("ReadFile on no filesystem succeeded")
	}
}

// BenchmarkAnalyze measures Analyze (metadata only) and Locate on a 16 MiB
// ext4 image, next to a plain read of the same image as the baseline.
// MB/s counts the image size.
func BenchmarkAnalyze(b *testing.B) {
	testutil.RequireTool(b, "mkfs.ext4")
	src := filepath.Join(b.TempDir(), "src")
	for i := 0; i < 500; i++ {
		p := filepath.Join(src, fmt.Sprintf("d%02d/f%03d", i%20, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, marker(p, 8000), 0o644)
	}
	img := filepath.Join(b.TempDir(), "fs.img")
	testutil.Run(b, "mkfs.ext4", "-q", "-F", "-d", src, img, "16M")
	im, err := raw.Open(context.Background(), img, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	d := im.Views[0].Disk
	b.Run("baseline-read", func(b *testing.B) {
		buf := make([]byte, 1<<20)
		b.SetBytes(d.Size())
		for b.Loop() {
			for off := int64(0); off < d.Size(); off += int64(len(buf)) {
				d.ReadAt(buf, off)
			}
		}
	})
	b.Run("analyze", func(b *testing.B) {
		b.SetBytes(d.Size())
		for b.Loop() {
			if _, err := Analyze(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
	m, err := Analyze(context.Background(), d)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("locate", func(b *testing.B) {
		off := int64(0)
		for b.Loop() {
			m.Locate(off)
			off = (off + 4099) % d.Size()
		}
	})
}

// TestISOWalkMatchesDiskfs: the ISO walker lists the files go-diskfs lists,
// with the same names, extents and sizes, for the name schemes xorriso
// writes: Rock Ridge (with and without Joliet), Joliet alone and plain ISO
// 9660. Where go-diskfs fails (nested Joliet directories), the walker must
// still list what the tree holds.
func TestISOWalkMatchesDiskfs(t *testing.T) {
	testutil.RequireTool(t, "xorriso")
	src := writeTree(t)
	deep := filepath.Join(src, "Mixed.Case", "nested dir")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"NOEXT", "a file with a long name beyond thirty-one characters.conf", "x.y.z"}
	for i := range 80 { // a directory of several sectors
		names = append(names, fmt.Sprintf("entry-%02d-with-a-name-long-enough-to-fill-sectors.txt", i))
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(deep, n), []byte("data of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"rock ridge", nil},
		{"rock ridge and joliet", []string{"-J"}},
		{"joliet", []string{"--norock", "-J"}},
		{"plain", []string{"--norock"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "cd.iso")
			testutil.Run(t, "xorriso", append(append([]string{"-as", "mkisofs", "-quiet"}, c.args...), "-o", img, src)...)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			want := diskfsISOTree(t, f, st.Size())
			tree, err := iso9660.Open(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][3]int64{}
			if err := tree.Walk(context.Background(), func(e fsys.Entry) error {
				if e.Path == "/" {
					return nil
				}
				dir, off := int64(0), int64(-1)
				if e.Mode.IsDir() {
					dir = 1
				}
				if len(e.Runs) > 0 {
					off = e.Runs[0].Off
				}
				got[e.Path] = [3]int64{off, e.Size, dir}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) < len(testFiles)+85 {
				t.Fatalf("walker listed %d entries: %v", len(got), got)
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s: walker %v, go-diskfs %v", p, got[p], w)
				}
			}
			if c.name != "joliet" && len(got) != len(want) {
				t.Errorf("walker listed %d entries, go-diskfs %d:\n%v\n%v", len(got), len(want), got, want)
			}
			if c.name == "joliet" {
				if _, ok := got["/Mixed.Case/nested dir/NOEXT"]; !ok {
					t.Errorf("nested Joliet directory not walked: %v", got)
				}
			}
		})
	}
}

// sameLoc compares two Locations, their Links included.
func sameLoc(a, b Location) bool { return reflect.DeepEqual(a, b) }
