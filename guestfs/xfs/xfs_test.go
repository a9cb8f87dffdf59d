package xfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// tree is what a fixture holds: regular files with their contents, and
// directories with many entries (short-form, block, leaf and node or
// B+tree directories).
type tree struct {
	files    map[string][]byte
	symlinks map[string]string // path -> target
	dirs     map[string]int    // path -> number of entries
}

func newTree() tree {
	tr := tree{files: map[string][]byte{}, symlinks: map[string]string{}, dirs: map[string]int{}}
	tr.files["/etc/hostname"] = []byte("guest-host\n")
	tr.files["/etc/ssh/ssh_host_rsa_key"] = bytes.Repeat([]byte("RSA-KEY-MATERIAL-0123456789abcdef\n"), 300)
	tr.files["/var/lib/big.bin"] = bigContent(300 << 10)
	tr.files["/deep/a/b/c/d/e/f/g/deep.txt"] = []byte("deep\n")
	for _, d := range []struct {
		path string
		n    int
	}{{"/small", 2}, {"/block", 40}, {"/leaf", 400}, {"/node", 3000}} {
		tr.dirs[d.path] = d.n
		for i := 0; i < d.n; i++ {
			var content []byte // empty files keep the fixtures quick to build
			if i%100 == 0 {
				content = []byte(strconv.Itoa(i))
			}
			tr.files[fmt.Sprintf("%s/entry-with-a-name-long-enough-to-fill-directory-blocks-%05d", d.path, i)] = content
		}
	}
	tr.symlinks["/shortlink"] = "etc/ssh/ssh_host_rsa_key"
	tr.symlinks["/longlink"] = "/" + strings.Repeat("long-symlink-target/", 15) + "end" // a remote symlink
	return tr
}

func bigContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

// xfsCase is one mkfs.xfs configuration. v4 filesystems cannot be mounted
// by this kernel: they are populated by mkfs.xfs -p from a protofile.
type xfsCase struct {
	name  string
	mkfs  []string
	proto bool
}

var xfsCases = []xfsCase{
	{"v5", nil, false},
	{"v5-1k-dirblock-8k", []string{"-b", "size=1024", "-n", "size=8192"}, false},
	{"v5-nrext64", []string{"-i", "nrext64=1"}, false},
	{"v4", []string{"-m", "crc=0"}, true},
	{"v4-no-ftype", []string{"-m", "crc=0", "-n", "ftype=0"}, true},
}

// mkXFS makes a 300 MiB XFS image holding tr. Mounted fixtures also get a
// hard link, a file fragmented into 200 extents (a B+tree extent fork) and
// a preallocated (unwritten) file.
func mkXFS(t *testing.T, c xfsCase, tr tree) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.xfs", "xfs_db")
	dir := t.TempDir()
	img := filepath.Join(dir, c.name+".img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 300<<20); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q"}, c.mkfs...)
	if c.proto {
		proto := filepath.Join(dir, "proto")
		if err := os.WriteFile(proto, []byte(protofile(t, dir, tr)), 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Run(t, "mkfs.xfs", append(args, "-p", proto, img)...)
		return img
	}
	testutil.Run(t, "mkfs.xfs", append(args, img)...)
	mnt, unmount := testutil.LoopMount(t, img)
	for p, content := range tr.files {
		full := filepath.Join(mnt, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range tr.symlinks {
		if err := os.Symlink(target, filepath.Join(mnt, p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(mnt, "etc/hostname"), filepath.Join(mnt, "hardlink")); err != nil {
		t.Fatal(err)
	}
	frag, err := os.Create(filepath.Join(mnt, "frag"))
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("F"), 4096)
	for i := 0; i < 200; i++ { // one block written, one left as a hole
		if _, err := frag.WriteAt(block, int64(i)*8192); err != nil {
			t.Fatal(err)
		}
	}
	frag.Close()
	testutil.Run(t, "fallocate", "-l", "1M", filepath.Join(mnt, "prealloc"))
	testutil.Run(t, "sync")
	unmount()
	return img
}

// protofile writes tr as an mkfs.xfs protofile, file contents in dir.
func protofile(t *testing.T, dir string, tr tree) string {
	type node struct {
		kids    map[string]*node
		content string // host file with the contents
		link    string
	}
	root := &node{kids: map[string]*node{}}
	add := func(p string) *node {
		n := root
		parts := strings.Split(strings.Trim(p, "/"), "/")
		for _, part := range parts {
			if n.kids[part] == nil {
				n.kids[part] = &node{kids: map[string]*node{}}
			}
			n = n.kids[part]
		}
		return n
	}
	i := 0
	for p, c := range tr.files {
		host := filepath.Join(dir, fmt.Sprintf("content-%d", i))
		i++
		if err := os.WriteFile(host, c, 0o644); err != nil {
			t.Fatal(err)
		}
		add(p).content = host
	}
	for p, target := range tr.symlinks {
		add(p).link = target
	}
	var b strings.Builder
	b.WriteString("/dev/null\n0 0\nd--755 0 0\n")
	var write func(n *node)
	write = func(n *node) {
		names := make([]string, 0, len(n.kids))
		for name := range n.kids {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			k := n.kids[name]
			switch {
			case k.link != "":
				fmt.Fprintf(&b, "%s l--777 0 0 %s\n", name, k.link)
			case k.content != "":
				fmt.Fprintf(&b, "%s ---644 0 0 %s\n", name, k.content)
			default:
				fmt.Fprintf(&b, "%s d--755 0 0\n", name)
				write(k)
				b.WriteString("$\n")
			}
		}
	}
	write(root)
	b.WriteString("$\n")
	return b.String()
}

func openXFS(t *testing.T, img string) *FS {
	t.Helper()
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fh.Close() })
	st, _ := fh.Stat()
	f, err := Open(fh, st.Size(), img)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func xfsDB(t *testing.T, img string, cmds ...string) string {
	t.Helper()
	args := []string{"-r"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return string(testutil.Run(t, "xfs_db", append(args, img)...))
}

// ncheck lists every inode's paths as xfs_db's ncheck gives them.
func ncheck(t *testing.T, img string) map[uint64][]string {
	out := map[uint64][]string{}
	for _, line := range strings.Split(xfsDB(t, img, "blockget -n", "ncheck"), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		ino, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		out[ino] = append(out[ino], "/"+strings.TrimSuffix(f[1], "/."))
	}
	return out
}

// TestWalkMatchesXfsDB checks the walk, the extent maps, the free-space
// lookups and the reader against xfs_db on fixtures made by mkfs.xfs.
func TestWalkMatchesXfsDB(t *testing.T) {
	for _, c := range xfsCases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTree()
			img := mkXFS(t, c, tr)
			before := sha256.Sum256(testutil.FileSnapshot(t, img))
			f := openXFS(t, img)

			walked := map[string]fsys.Entry{}
			var links []fsys.Entry // other names of files walked (hard links)
			if err := f.Walk(context.Background(), func(e fsys.Entry) error {
				if e.Link {
					links = append(links, e)
					return nil
				}
				e.Runs = append([]fsys.Run(nil), e.Runs...)
				walked[e.Path] = e
				return nil
			}); err != nil {
				t.Fatal(err)
			}

			// Paths: each walked path is one of its inode's names in
			// ncheck, and each inode ncheck names was walked once, and
			// under its other names as Link entries (/hardlink).
			names := ncheck(t, img)
			inodes := map[uint64]string{}
			byName := fstest.NewHardLinks[uint64]()
			for _, l := range links {
				in, err := f.lookup(l.Path, false)
				if err != nil {
					t.Fatalf("lookup %s: %v", l.Path, err)
				}
				byName.Add(t, in.ino, l)
			}
			if !c.proto {
				// ncheck names an inode once; mkXFS made /hardlink a
				// second name of /etc/hostname.
				in, err := f.lookup("/hardlink", false)
				if err != nil {
					t.Fatal(err)
				}
				all := map[uint64][]string{in.ino: {"/etc/hostname", "/hardlink"}}
				defer func() { byName.Check(t, all) }()
			} else if len(links) > 0 {
				t.Errorf("Link entries %+v in a fixture without hard links", links)
			}
			for p := range walked {
				if p == "/" {
					continue
				}
				in, err := f.lookup(p, false)
				if err != nil {
					t.Fatalf("lookup %s: %v", p, err)
				}
				if !contains(names[in.ino], p) {
					t.Errorf("%s: inode %d, xfs_db names %v", p, in.ino, names[in.ino])
				}
				byName.Add(t, in.ino, walked[p])
				inodes[in.ino] = p
			}
			for ino, ps := range names {
				if _, ok := inodes[ino]; !ok {
					t.Errorf("inode %d (%v) not walked", ino, ps)
				}
			}
			for p, n := range tr.dirs {
				if e, ok := walked[p]; !ok || !e.Mode.IsDir() {
					t.Errorf("%s not walked as a directory", p)
				}
				if ents, err := f.ReadDir(p); err != nil || len(ents) != n {
					t.Errorf("ReadDir(%s): %d entries, %v; want %d", p, len(ents), err, n)
				}
			}

			// Extents: every walked entry with runs maps the blocks that
			// xfs_db's bmap lists, in one xfs_db run.
			var cmds, order []string
			for p, e := range walked {
				if len(e.Runs) > 0 {
					in, _ := f.lookup(p, false)
					cmds = append(cmds, "echo =="+p, fmt.Sprintf("inode %d", in.ino), "bmap")
					order = append(order, p)
				}
			}
			if len(order) < len(tr.files)/1000 {
				t.Fatalf("only %d entries with runs", len(order))
			}
			bmaps := parseBmaps(xfsDB(t, img, cmds...))
			bs := f.sb.BlockSize
			for _, p := range order {
				var want []fsys.Run
				for _, x := range bmaps[p] {
					off, ok := f.fsbOff(x.fsb, x.n)
					if !ok {
						t.Fatalf("%s: xfs_db extent %+v outside the filesystem", p, x)
					}
					want = append(want, fsys.Run{Off: off, Len: int64(x.n) * bs, FileOff: int64(x.fileOff) * bs, Unwritten: x.unwritten})
				}
				if got := walked[p].Runs; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: runs %v, xfs_db %v", p, short(got), short(want))
				}
				for _, r := range walked[p].Runs {
					if st := f.State(r.Off + r.Len - 1); st != fsys.StateAllocated {
						t.Errorf("%s: block of run %+v is %s in the free-space B+tree", p, r, st)
					}
				}
			}
			// The directories have the forms they were made for.
			forms := map[string]func(in *inode, exts []extent) bool{
				"/small": func(in *inode, _ []extent) bool { return in.format == fmtLocal },
				"/block": func(in *inode, exts []extent) bool {
					return in.format == fmtExtents && len(exts) == 1 && exts[0].fileOff == 0
				},
				"/node": func(_ *inode, exts []extent) bool { // leaf or node: blocks past the leaf offset
					return len(exts) > 1 && exts[len(exts)-1].fileOff >= uint64(leafOffset/bs)
				},
			}
			for p, ok := range forms {
				in, err := f.lookup(p, false)
				if err != nil {
					t.Fatal(err)
				}
				exts, err := f.extents(in)
				if err != nil || !ok(in, exts) {
					t.Errorf("%s: format %d, %d extents (%v): not the expected directory form", p, in.format, len(exts), err)
				}
			}
			if !c.proto {
				if got := walked["/frag"]; len(got.Runs) < 200 {
					t.Errorf("/frag: %d runs, want at least 200", len(got.Runs))
				}
				if got := walked["/prealloc"]; len(got.Runs) == 0 || !got.Runs[0].Unwritten {
					t.Errorf("/prealloc: runs %+v, want unwritten", got.Runs)
				}
				in, _ := f.lookup("/frag", false)
				if in.format != fmtBtree {
					t.Errorf("/frag: fork format %d, want a B+tree", in.format)
				}
			}

			// Free space: the first and last block of every free extent
			// xfs_db lists are free; the superblock is not.
			free := parseFreesp(t, xfsDB(t, img, "freesp -d"))
			if len(free) == 0 {
				t.Fatal("xfs_db lists no free extent")
			}
			for _, x := range free {
				start := f.agOff(x.ag) + int64(x.agbno)*bs
				for _, off := range []int64{start, start + int64(x.n)*bs - 1} {
					if st := f.State(off); st != fsys.StateFree {
						t.Errorf("free extent %+v: offset %d is %s", x, off, st)
					}
				}
			}
			if st := f.State(100); st != fsys.StateAllocated {
				t.Errorf("superblock: %s", st)
			}

			// Reader: contents through Open, symlinks followed.
			for p, want := range tr.files {
				if got := fstest.ReadFile(t, f, p); !bytes.Equal(got, want) {
					t.Errorf("%s: read %d bytes, want %d", p, len(got), len(want))
				}
			}
			if got := fstest.ReadFile(t, f, "/shortlink"); !bytes.Equal(got, tr.files["/etc/ssh/ssh_host_rsa_key"]) {
				t.Errorf("/shortlink: %d bytes", len(got))
			}
			in, err := f.lookup("/longlink", false)
			if err != nil {
				t.Fatal(err)
			}
			if target, err := f.readSymlink(in); err != nil || target != tr.symlinks["/longlink"] {
				t.Errorf("/longlink: %q, %v", target, err)
			}
			if _, err := f.Open("/etc/nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open of a missing file: %v", err)
			}
			if sha256.Sum256(testutil.FileSnapshot(t, img)) != before {
				t.Error("image changed")
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// parseBmaps reads "echo ==PATH" markers and bmap lines ("data offset 0
// startblock 534 (0/534) count 256 flag 1").
func parseBmaps(out string) map[string][]extent {
	m := map[string][]extent{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(line, "=="); ok {
			cur = strings.TrimSpace(p)
			continue
		}
		var e extent
		var ag, agbno uint64
		var flag int
		if n, _ := fmt.Sscanf(line, "data offset %d startblock %d (%d/%d) count %d flag %d", &e.fileOff, &e.fsb, &ag, &agbno, &e.n, &flag); n == 6 {
			e.unwritten = flag == 1
			m[cur] = append(m[cur], e)
		}
	}
	return m
}

type freeExtent struct {
	ag, agbno uint32
	n         uint32
}

// parseFreesp reads freesp -d's extent lines, "agno agbno len" (the
// histogram after them has five columns).
func parseFreesp(t *testing.T, out string) []freeExtent {
	var fx []freeExtent
	for _, line := range strings.Split(out, "\n") {
		var x freeExtent
		if len(strings.Fields(line)) != 3 {
			continue
		}
		if n, _ := fmt.Sscanf(strings.TrimSpace(line), "%d %d %d", &x.ag, &x.agbno, &x.n); n == 3 {
			fx = append(fx, x)
		}
	}
	return fx
}

func short(rs []fsys.Run) string {
	if len(rs) > 6 {
		return fmt.Sprintf("%v ... (%d runs)", rs[:6], len(rs))
	}
	return fmt.Sprint(rs)
}

// TestSharedBtree: 100 empty files that all share one extent B+tree of
// level 4 (hostile.XFSSharedBtreeSized: mkfs.xfs from a protofile, then
// edited) are walked within the walk's budget of B+tree blocks, and the
// walk says so. Without the budget each file read its own cap of 65,536
// blocks: 27 GB read for a 300 MiB filesystem, 22 s.
func TestSharedBtree(t *testing.T) {
	testutil.RequireTool(t, "mkfs.xfs", "xfs_db")
	img, err := hostile.XFSSharedBtreeSized(context.Background(), t.TempDir(), 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	cr := &fstest.CountingReader{R: fh}
	f, err := Open(cr, st.Size(), img)
	if err != nil {
		t.Fatal(err)
	}
	fstest.BoundedPartialWalk(t, f, cr, st.Size(), "B+tree blocks shared between inodes", 100)
}
