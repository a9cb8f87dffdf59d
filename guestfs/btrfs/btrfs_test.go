package btrfs

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// fixture is the content of every test image: a live file, a small file
// (inline), a deleted file, a file overwritten in place (copy-on-write
// puts the new bytes elsewhere), and, made while mounted, a hard link, a
// symlink, a preallocated file, a zstd-compressed file, a subvolume and a
// snapshot of it.
func fixture() testutil.FSContent {
	return testutil.FSContent{
		Live: map[string][]byte{
			"/etc/app/credentials": testutil.Marker("/etc/app/credentials", 9000),
			"/etc/small.conf":      testutil.Marker("/etc/small.conf", 40),
			"/d/e/f/deep.txt":      testutil.Marker("/d/e/f/deep.txt", 5000),
		},
		Deleted:     map[string][]byte{"/tmp/token-deleted": testutil.Marker("/tmp/token-deleted", 20000)},
		Overwritten: map[string][2][]byte{"/srv/overwritten": {testutil.Marker("/srv/overwritten-old", 12000), testutil.Marker("/srv/overwritten-new", 12000)}},
	}
}

// populateExtra makes, under the mount mnt, what only a mounted btrfs can
// hold: subvolumes, snapshots, compressed and preallocated extents.
func populateExtra(t *testing.T, mnt string) {
	t.Helper()
	testutil.RequireTool(t, "btrfs", "fallocate")
	j := func(p string) string { return filepath.Join(mnt, p) }
	if err := os.Link(j("etc/app/credentials"), j("etc/app/cred-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../etc/small.conf", j("srv/link")); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "fallocate", "-l", "65536", j("prealloc"))
	if err := os.WriteFile(j("comp.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "btrfs", "property", "set", j("comp.txt"), "compression", "zstd")
	if err := os.WriteFile(j("comp.txt"), bytes.Repeat([]byte("compressible line of text\n"), 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "btrfs", "subvolume", "create", j("sv"))
	if err := os.WriteFile(j("sv/inner.txt"), testutil.Marker("/sv/inner.txt", 7000), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "btrfs", "subvolume", "snapshot", "-r", j("sv"), j("snap"))
	testutil.Run(t, "btrfs", "subvolume", "create", j("sv/nested"))
	if err := os.WriteFile(j("sv/nested/n.txt"), []byte("nested\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// makeImage makes a 256 MiB btrfs with mkfs.btrfs args, holding fixture().
func makeImage(t *testing.T, args ...string) (string, testutil.FSContent) {
	t.Helper()
	testutil.RequireTool(t, "mkfs.btrfs", "btrfs", "mount")
	c := fixture()
	c.Extra = func(mnt string) { populateExtra(t, mnt) }
	return testutil.MakeBtrfs(t, 256<<20, c, args), c
}

func openImage(t *testing.T, img string) (*FS, []byte) {
	t.Helper()
	data := testutil.FileSnapshot(t, img)
	f, err := Open(context.Background(), bytes.NewReader(data), int64(len(data)), "disk")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f, data
}

// --- what btrfs-progs says: dump-tree, parsed ---

type dtItem struct {
	leaf           uint64
	obj            string
	typ            string
	off            uint64
	itemOff, itemN int
	text           string
}

var (
	leafRe = regexp.MustCompile(`^leaf (\d+) items`)
	itemRe = regexp.MustCompile(`^\titem \d+ key \((\S+) (\S+) (-?\d+)\) itemoff (\d+) itemsize (\d+)`)
)

// dumpTree runs `btrfs inspect-internal dump-tree -t tree` and returns its
// leaf items in order.
func dumpTree(t *testing.T, img string, tree string) []dtItem {
	t.Helper()
	out := string(testutil.Run(t, "btrfs", "inspect-internal", "dump-tree", "-t", tree, img))
	var items []dtItem
	var leaf uint64
	for _, line := range strings.Split(out, "\n") {
		if m := leafRe.FindStringSubmatch(line); m != nil {
			leaf, _ = strconv.ParseUint(m[1], 10, 64)
			continue
		}
		if m := itemRe.FindStringSubmatch(line); m != nil {
			off, err := strconv.ParseUint(m[3], 10, 64)
			if err != nil {
				off = ^uint64(0)
			}
			io, _ := strconv.Atoi(m[4])
			n, _ := strconv.Atoi(m[5])
			items = append(items, dtItem{leaf: leaf, obj: m[1], typ: m[2], off: off, itemOff: io, itemN: n})
			continue
		}
		if len(items) > 0 && strings.HasPrefix(line, "\t\t") {
			items[len(items)-1].text += line + "\n"
		}
	}
	return items
}

func field(t *testing.T, text, re string) []string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("dump-tree: no %q in\n%s", re, text)
	}
	return m[1:]
}

func num(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic(err)
	}
	return v
}

// toolChunk is a chunk as dump-tree -t chunk prints it.
type toolChunk struct {
	logical, length uint64
	copies          []uint64
}

func toolChunks(t *testing.T, img string) []toolChunk {
	var out []toolChunk
	for _, it := range dumpTree(t, img, "chunk") {
		if it.typ != "CHUNK_ITEM" {
			continue
		}
		c := toolChunk{logical: it.off, length: num(field(t, it.text, `length (\d+)`)[0])}
		for _, m := range regexp.MustCompile(`stripe \d+ devid \d+ offset (\d+)`).FindAllStringSubmatch(it.text, -1) {
			c.copies = append(c.copies, num(m[1]))
		}
		out = append(out, c)
	}
	return out
}

// toolPhys maps [logical, logical+n) through the tool's chunks: one run
// per copy.
func toolPhys(t *testing.T, cs []toolChunk, logical, n uint64) []uint64 {
	for _, c := range cs {
		if logical >= c.logical && logical+n <= c.logical+c.length {
			var out []uint64
			for _, cp := range c.copies {
				out = append(out, cp+logical-c.logical)
			}
			return out
		}
	}
	t.Fatalf("logical %d+%d in no chunk", logical, n)
	return nil
}

// toolInode is an inode as dump-tree describes it, with every path that
// links it.
type toolInode struct {
	paths []string
	mode  fs.FileMode
	size  int64
	runs  []fsys.Run
}

// toolWalk walks the directory tree from dump-tree's DIR_INDEX items, into
// subvolumes linked by a ROOT_REF, and maps each inode's EXTENT_DATA items
// the way the package documents: device runs of every copy, inline data
// at its place in the leaf, compressed extents whole.
func toolWalk(t *testing.T, img string) map[string]*toolInode {
	cs := toolChunks(t, img)
	rootRefs := map[string]bool{} // "parent/child/dirid/name"
	for _, it := range dumpTree(t, img, "root") {
		if it.typ == "ROOT_REF" {
			m := field(t, it.text, `dirid (\d+) sequence \d+ name (.*)`)
			parent := it.obj
			if parent == "FS_TREE" {
				parent = "5"
			}
			rootRefs[fmt.Sprintf("%s/%d/%s/%s", parent, it.off, m[0], m[1])] = true
		}
	}
	inodes := map[string]*toolInode{}
	var walk func(tree string, dir uint64, p string)
	walk = func(tree string, dir uint64, p string) {
		items := dumpTree(t, img, tree)
		byObj := map[string][]dtItem{}
		for _, it := range items {
			byObj[it.obj] = append(byObj[it.obj], it)
		}
		inode := func(ino string) *toolInode {
			in := &toolInode{}
			for _, it := range byObj[ino] {
				switch it.typ {
				case "INODE_ITEM":
					m := field(t, it.text, `size (\d+) nbytes`)
					in.size = int64(num(m[0]))
					mode, _ := strconv.ParseUint(field(t, it.text, `mode (\d+)`)[0], 8, 32)
					switch mode & 0o170000 {
					case 0o040000:
						in.mode = fs.ModeDir
					case 0o120000:
						in.mode = fs.ModeSymlink
					}
				case "EXTENT_DATA":
					in.runs = append(in.runs, toolExtent(t, cs, it, in.runs)...)
				}
			}
			return in
		}
		var visit func(dir uint64, p string)
		visit = func(dir uint64, p string) {
			for _, it := range byObj[strconv.FormatUint(dir, 10)] {
				if it.typ != "DIR_INDEX" {
					continue
				}
				loc := field(t, it.text, `location key \((\S+) (\S+) (-?\d+)\) type (\S+)`)
				name := field(t, it.text, `name: (.*)`)[0]
				cp := strings.TrimSuffix(p, "/") + "/" + name
				if loc[1] == "ROOT_ITEM" {
					if rootRefs[fmt.Sprintf("%s/%s/%d/%s", tree, loc[0], dir, name)] {
						key := loc[0] + ":256"
						inodes[key] = &toolInode{paths: []string{cp}, mode: fs.ModeDir}
						walk(loc[0], 256, cp)
					}
					continue
				}
				key := tree + ":" + loc[0]
				if in := inodes[key]; in != nil {
					in.paths = append(in.paths, cp)
					continue
				}
				in := inode(loc[0])
				in.paths = []string{cp}
				inodes[key] = in
				if loc[3] == "DIR" {
					in.runs = nil
					visit(num(loc[0]), cp)
				}
			}
		}
		visit(dir, p)
	}
	inodes["5:256"] = &toolInode{paths: []string{"/"}, mode: fs.ModeDir}
	walk("5", 256, "/")
	return inodes
}

// toolCodec names dump-tree's compression numbers (the kernel's
// btrfs_compression_type, include/uapi/linux/btrfs_tree.h).
func toolCodec(n string) string {
	return map[string]string{"1": "zlib", "2": "lzo", "3": "zstd"}[n]
}

func toolExtent(t *testing.T, cs []toolChunk, it dtItem, have []fsys.Run) []fsys.Run {
	var out []fsys.Run
	if strings.Contains(it.text, "type 0 (inline)") {
		m := field(t, it.text, `inline extent data size (\d+) ram_bytes \d+ compression (\d+)`)
		n := num(m[0])
		for _, leaf := range toolPhys(t, cs, it.leaf, 1) {
			out = append(out, fsys.Run{Off: int64(leaf) + headerSize + int64(it.itemOff) + fileExtentHeader, Len: int64(n),
				FileOff: int64(it.off), Inline: true, Compressed: m[1] != "0", Codec: toolCodec(m[1])})
		}
		return out
	}
	d := field(t, it.text, `(?:extent|prealloc) data disk byte (\d+) nr (\d+)`)
	o := field(t, it.text, `(?:extent|prealloc) data offset (\d+) nr (\d+)`)
	disk, diskN, off, n := num(d[0]), num(d[1]), num(o[0]), num(o[1])
	if disk == 0 {
		return nil
	}
	comp := regexp.MustCompile(`extent compression (\d+)`).FindStringSubmatch(it.text)
	if comp != nil && comp[1] != "0" {
		for _, r := range have {
			if r.Compressed && !r.Inline && r.Off == int64(toolPhys(t, cs, disk, diskN)[0]) {
				return nil // the same compressed extent, given once
			}
		}
		for _, p := range toolPhys(t, cs, disk, diskN) {
			out = append(out, fsys.Run{Off: int64(p), Len: int64(diskN), FileOff: max(0, int64(it.off)-int64(off)), Compressed: true, Codec: toolCodec(comp[1])})
		}
		return out
	}
	for _, p := range toolPhys(t, cs, disk+off, n) {
		out = append(out, fsys.Run{Off: int64(p), Len: int64(n), FileOff: int64(it.off), Unwritten: strings.Contains(it.text, "(prealloc)")})
	}
	return out
}

// TestWalkMatchesDumpTree compares, for images made with several mkfs
// options, every path, type, size and device run of our walk with what
// btrfs-progs' dump-tree says about the same image.
func TestWalkMatchesDumpTree(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"default-dup-metadata", nil},
		{"4k-nodes-single-metadata", []string{"-n", "4096", "-m", "single"}},
		{"mixed-block-groups", []string{"--mixed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, _ := makeImage(t, c.args...)
			f, _ := openImage(t, img)
			want := toolWalk(t, img)
			byPath := map[string]*toolInode{}
			for _, in := range want {
				for _, p := range in.paths {
					byPath[p] = in
				}
			}
			got := map[*toolInode]string{}
			names := fstest.NewHardLinks[*toolInode]()
			err := f.Walk(context.Background(), func(e fsys.Entry) error {
				in := byPath[e.Path]
				if in == nil {
					t.Errorf("walk gives %s, which dump-tree does not have", e.Path)
					return nil
				}
				if !names.Add(t, in, e) {
					return nil // another name of a file: its runs are the file's entry's
				}
				got[in] = e.Path
				if e.Mode.Type() != in.mode {
					t.Errorf("%s: type %v, dump-tree says %v", e.Path, e.Mode.Type(), in.mode)
				}
				if in.mode != fs.ModeDir && e.Size != in.size {
					t.Errorf("%s: size %d, dump-tree says %d", e.Path, e.Size, in.size)
				}
				if g, w := fstest.SortRuns(e.Runs), fstest.SortRuns(in.runs); !slices.Equal(g, w) {
					t.Errorf("%s: runs\n  %+v\ndump-tree:\n  %+v", e.Path, g, w)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			paths := map[*toolInode][]string{}
			for _, in := range want {
				if in.mode.IsRegular() {
					paths[in] = in.paths
				}
			}
			names.Check(t, paths) // /etc/app/credentials, also /etc/app/cred-link
			for _, in := range want {
				if _, ok := got[in]; !ok {
					t.Errorf("%v: not walked", in.paths)
				}
			}
			// The fixture's kinds of data are all there.
			for _, p := range []string{"/etc/small.conf", "/comp.txt", "/prealloc", "/snap/inner.txt", "/sv/nested/n.txt", "/srv/link"} {
				if byPath[p] == nil || got[byPath[p]] == "" {
					t.Errorf("%s: not walked", p)
				}
			}
			kinds := map[string]bool{}
			for _, r := range byPath["/etc/small.conf"].runs {
				kinds["inline"] = kinds["inline"] || r.Inline
			}
			for _, r := range byPath["/comp.txt"].runs {
				kinds["compressed"] = kinds["compressed"] || r.Compressed
			}
			for _, r := range byPath["/prealloc"].runs {
				kinds["unwritten"] = kinds["unwritten"] || r.Unwritten
			}
			if len(kinds) != 3 || !kinds["inline"] || !kinds["compressed"] || !kinds["unwritten"] {
				t.Errorf("fixture kinds: %v", kinds)
			}
		})
	}
}

// runAt returns the path of the walked run that covers device offset off.
func runAt(t *testing.T, f *FS, off int64) (string, fsys.Run) {
	t.Helper()
	var p string
	var run fsys.Run
	if err := f.Walk(context.Background(), func(e fsys.Entry) error {
		for _, r := range e.Runs {
			if off >= r.Off && off < r.Off+r.Len {
				p, run = e.Path, r
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p, run
}

// TestStatesAndRead: the live file's bytes are in its run, the deleted
// file's and the overwritten file's old bytes in no run and free (the
// extent tree no longer has them: dump-tree -t extent is the witness), and
// files read back by path, through symlinks and into subvolumes.
func TestStatesAndRead(t *testing.T) {
	img, c := makeImage(t)
	f, data := openImage(t, img)
	extents := dumpTree(t, img, "extent")
	inExtentTree := func(off int64) bool {
		for _, tc := range toolChunks(t, img) {
			for _, cp := range tc.copies {
				if off < int64(cp) || off >= int64(cp+tc.length) {
					continue
				}
				logical := tc.logical + uint64(off) - cp
				for _, it := range extents {
					n := it.off
					if it.typ == "METADATA_ITEM" {
						n = uint64(f.nodeSize)
					} else if it.typ != "EXTENT_ITEM" {
						continue
					}
					if logical >= num(it.obj) && logical < num(it.obj)+n {
						return true
					}
				}
			}
		}
		return false
	}
	at := func(b []byte) int64 {
		i := bytes.Index(data, b[:min(64, len(b))])
		if i < 0 {
			t.Fatalf("%.20q... not in the image", b)
		}
		return int64(i)
	}
	over := c.Overwritten["/srv/overwritten"]
	for _, w := range []struct {
		name    string
		content []byte
		path    string // "" = in no run
		state   string
	}{
		{"live", c.Live["/etc/app/credentials"], "/etc/app/credentials", fsys.StateAllocated},
		{"inline", c.Live["/etc/small.conf"], "/etc/small.conf", fsys.StateAllocated},
		{"overwritten, new bytes", over[1], "/srv/overwritten", fsys.StateAllocated},
		{"overwritten, old bytes", over[0], "", fsys.StateFree},
		{"deleted", c.Deleted["/tmp/token-deleted"], "", fsys.StateFree},
	} {
		t.Run(w.name, func(t *testing.T) {
			off := at(w.content)
			if w.name == "inline" {
				// Copy-on-write leaves older copies of the leaf in free
				// metadata space: the live copy is a later occurrence.
				for i := int(off); i >= 0; {
					if p, _ := runAt(t, f, int64(i)); p == w.path {
						off = int64(i)
						break
					}
					j := bytes.Index(data[i+1:], w.content)
					if j < 0 {
						t.Fatalf("no occurrence of %s in its inline run", w.path)
					}
					i += 1 + j
				}
			}
			p, r := runAt(t, f, off)
			if p != w.path {
				t.Fatalf("byte %d: in a run of %q, want %q", off, p, w.path)
			}
			if p != "" {
				if r.Inline != (len(w.content) < 100) {
					t.Errorf("run %+v: inline %v", r, r.Inline)
				}
				return
			}
			if got := f.State(off); got != w.state {
				t.Errorf("State(%d) = %s, want %s", off, got, w.state)
			}
			if inExtentTree(off) != (w.state == fsys.StateAllocated) {
				t.Errorf("byte %d: in dump-tree's extent tree: %v", off, inExtentTree(off))
			}
		})
	}
	if got := f.State(superOffset + 100); got != fsys.StateAllocated {
		t.Errorf("superblock: %s", got)
	}
	if got := f.State(int64(len(data)) - 4096); got != fsys.StateFree { // no chunk reaches the end of 256 MiB
		t.Errorf("unallocated device space: %s", got)
	}

	fstest.ReadsBack(t, f, map[string][]byte{
		"/etc/app/credentials": c.Live["/etc/app/credentials"],
		"/etc/app/cred-link":   c.Live["/etc/app/credentials"],
		"/d/e/f/deep.txt":      c.Live["/d/e/f/deep.txt"],
		"/srv/overwritten":     over[1],
		"/srv/link":            c.Live["/etc/small.conf"],
		"/snap/inner.txt":      testutil.Marker("/sv/inner.txt", 7000),
		"/sv/nested/n.txt":     []byte("nested\n"),
		"/prealloc":            make([]byte, 65536),
		"/comp.txt":            bytes.Repeat([]byte("compressible line of text\n"), 20000),
	})
	fstest.Gone(t, f, "/tmp/token-deleted")
	if got := fstest.Names(t, f, "/etc/app"); got != "cred-link credentials" {
		t.Errorf("ReadDir(/etc/app) = %s", got)
	}
	if ents, err := f.ReadDir("/"); err != nil || !slices.ContainsFunc(ents, func(e fs.DirEntry) bool { return e.Name() == "sv" && e.IsDir() }) {
		t.Errorf("ReadDir(/): %v, %v", ents, err)
	}
}

// TestReaderRoot: the reader resolves paths from the subvolume the guest
// mounts as its root: the default subvolume when one is set, else a
// top-level "root" (Fedora) or "@" (Ubuntu) subvolume when the top level
// has no /etc, else the top level. The walk keeps the top level's paths.
func TestReaderRoot(t *testing.T) {
	testutil.RequireTool(t, "mkfs.btrfs", "btrfs", "mount")
	osRelease := func(mnt, dir, id string) {
		p := filepath.Join(mnt, dir, "etc/os-release")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("ID="+id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name     string
		layout   func(mnt string)
		want     string // ID in /etc/os-release as the reader sees it
		walkPath string // where the walk finds that file
	}{
		{"top level", func(mnt string) { osRelease(mnt, "", "top") }, "top", "/etc/os-release"},
		{"fedora", func(mnt string) {
			testutil.Run(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "root"))
			testutil.Run(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "home"))
			osRelease(mnt, "root", "fedora")
		}, "fedora", "/root/etc/os-release"},
		{"ubuntu", func(mnt string) {
			testutil.Run(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "@"))
			osRelease(mnt, "@", "ubuntu")
		}, "ubuntu", "/@/etc/os-release"},
		{"set-default", func(mnt string) {
			osRelease(mnt, "", "top")
			testutil.Run(t, "btrfs", "subvolume", "create", filepath.Join(mnt, "snap1"))
			osRelease(mnt, "snap1", "default")
			testutil.Run(t, "btrfs", "subvolume", "set-default", filepath.Join(mnt, "snap1"))
		}, "default", "/snap1/etc/os-release"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := testutil.MakeBtrfs(t, 128<<20, testutil.FSContent{Extra: c.layout}, []string{"--mixed"})
			f, _ := openImage(t, img)
			fstest.ReadsBack(t, f, map[string][]byte{"/etc/os-release": []byte("ID=" + c.want + "\n")})
			fstest.WalksTo(t, f, c.walkPath)
		})
	}
}
