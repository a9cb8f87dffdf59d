package ufs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// manyEntries is the size of /many: with its long names, several
// 512-byte directory blocks and more than one filesystem block.
const manyEntries = 300

// longTarget is a symlink target longer than the 120 bytes an inode holds:
// it is kept in a data block, and resolves to /var/lib/big.bin.
var longTarget = "/var/" + strings.Repeat("./", 70) + "lib/big.bin"

func content(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4093 + seed)
	}
	return b
}

// writeSource builds the tree makefs copies: small files and a tail of
// fragments, a file of single indirect blocks and one of double indirect
// blocks (with 4 KiB blocks), nested and large directories, an empty
// file, a short and a long symlink and a hard link.
func writeSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	files := map[string][]byte{
		"etc/hostname":              []byte("freebsd-guest\n"),
		"etc/ssh/ssh_host_rsa_key":  content(5000, 1),
		"var/lib/medium.bin":        content(100<<10, 2),
		"var/lib/big.bin":           content(2600<<10, 3),
		"deep/a/b/c/d/e/f/deep.txt": []byte("deep\n"),
		"empty":                     nil,
	}
	for i := range manyEntries {
		files[fmt.Sprintf("many/entry-with-a-name-long-enough-to-fill-directory-blocks-%04d", i)] = []byte(fmt.Sprint(i))
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"shortlink": "etc/ssh/ssh_host_rsa_key", "longlink": longTarget} {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "etc/hostname"), filepath.Join(src, "hardlink")); err != nil {
		t.Fatal(err)
	}
	return src
}

// makeUFS2 runs makefs on src; opts are its FFS options after version=2.
func makeUFS2(t *testing.T, src, opts string) string {
	t.Helper()
	testutil.RequireTool(t, "makefs")
	img := filepath.Join(t.TempDir(), "ufs2.img")
	o := "version=2"
	if opts != "" {
		o += "," + opts
	}
	testutil.Run(t, "makefs", "-t", "ffs", "-o", o, "-s", "32m", img, src)
	return img
}

func openImage(t *testing.T, img string) (*FS, *os.File) {
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
	return f, fh
}

// sourceEntry is what the walk must give for one path of the source.
type sourceEntry struct {
	mode fs.FileMode
	size int64
	data []byte // regular files
}

// sourceTree lists src as the walk must: every path, a hard-linked file
// under either of its names (hardLinks holds the other).
func sourceTree(t *testing.T, src string) map[string]sourceEntry {
	out := map[string]sourceEntry{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		name := "/" + filepath.ToSlash(rel)
		if rel == "." {
			name = "/"
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := sourceEntry{mode: st.Mode().Type(), size: st.Size()}
		if st.Mode().IsRegular() {
			if e.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		if st.IsDir() {
			e.size = -1 // a directory's size is its blocks'
		}
		out[name] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWalkMatchesSource checks the walk, the block maps, the free maps and
// the reader on images makefs made from a known tree, for several block
// and fragment sizes.
func TestWalkMatchesSource(t *testing.T) {
	src := writeSource(t)
	want := sourceTree(t, src)
	for _, c := range []struct {
		name, opts   string
		bsize, fsize int64
		cgs          int64 // at least
	}{
		{"default", "", 8192, 1024, 1},
		{"4k-512", "bsize=4096,fsize=512", 4096, 512, 3},
		{"32k-4k", "bsize=32768,fsize=4096", 32768, 4096, 1},
		{"64k-8k", "bsize=65536,fsize=8192", 65536, 8192, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := makeUFS2(t, src, c.opts)
			before := sha256.Sum256(testutil.FileSnapshot(t, img))
			f, fh := openImage(t, img)
			if f.sb.bsize != c.bsize || f.sb.fsize != c.fsize || f.sb.ncg < c.cgs {
				t.Fatalf("block %d, fragment %d, %d groups; want %d, %d, %d+", f.sb.bsize, f.sb.fsize, f.sb.ncg, c.bsize, c.fsize, c.cgs)
			}
			if f.Kind() != "ufs2" {
				t.Errorf("Kind %q", f.Kind())
			}

			walked := map[string]fsys.Entry{}
			var order []string
			var links []fsys.Entry // other names of files walked (hard links)
			if err := f.Walk(context.Background(), func(e fsys.Entry) error {
				if e.Link {
					links = append(links, e)
					return nil
				}
				e.Runs = append([]fsys.Run(nil), e.Runs...)
				if _, dup := walked[e.Path]; dup {
					t.Errorf("%s walked twice", e.Path)
				}
				walked[e.Path] = e
				order = append(order, e.Path)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if order[0] != "/" {
				t.Errorf("walk starts with %s", order[0])
			}

			// Paths, types and sizes: the source's, the hard-linked file
			// under one of its two names, and under the other as a Link
			// entry with its ID.
			a, aok := walked["/etc/hostname"]
			b, bok := walked["/hardlink"]
			if aok == bok {
				t.Errorf("hard link walked under /etc/hostname: %v, /hardlink: %v; want exactly one", aok, bok)
			}
			first, other := a, "/hardlink"
			if bok {
				first, other = b, "/etc/hostname"
			}
			if len(links) != 1 || links[0].Path != other || links[0].ID != first.ID || first.ID == ([2]uint64{}) {
				t.Errorf("Link entries %+v; want %s with ID %v", links, other, first.ID)
			}
			for p, w := range want {
				e, ok := walked[p]
				if !ok {
					if p != "/etc/hostname" && p != "/hardlink" {
						t.Errorf("%s not walked", p)
					}
					continue
				}
				if e.Mode.Type() != w.mode {
					t.Errorf("%s: type %v, want %v", p, e.Mode.Type(), w.mode)
				}
				if w.size >= 0 && e.Size != w.size {
					t.Errorf("%s: size %d, want %d", p, e.Size, w.size)
				}
			}
			for p := range walked {
				if _, ok := want[p]; !ok {
					t.Errorf("%s walked, not in the source", p)
				}
			}

			// Runs: inside the filesystem, coalesced, allocated in the free
			// maps, and the file's bytes read through them.
			fsBytes := f.sb.size * f.sb.fsize
			for p, e := range walked {
				for i, r := range e.Runs {
					if r.Off < 0 || r.Len <= 0 || r.Off+r.Len > fsBytes || r.Off%f.sb.fsize != 0 {
						t.Errorf("%s: run %+v outside the filesystem", p, r)
					}
					if i > 0 {
						q := e.Runs[i-1]
						if q.Off+q.Len == r.Off && q.FileOff+q.Len == r.FileOff {
							t.Errorf("%s: runs %+v and %+v not coalesced", p, q, r)
						}
					}
					for off := r.Off; off < r.Off+r.Len; off += f.sb.fsize {
						if st := f.State(off); st != fsys.StateAllocated {
							t.Errorf("%s: fragment at %d of run %+v is %s", p, off, r, st)
							break
						}
					}
				}
				w := want[p]
				if !e.Mode.IsRegular() {
					continue
				}
				got, err := io.ReadAll(io.NewSectionReader(fsys.NewRunFile(fh, e.Size, e.Runs), 0, e.Size))
				if err != nil || !bytes.Equal(got, w.data) {
					t.Errorf("%s: %d bytes through its runs (%v), want %d", p, len(got), err, len(w.data))
				}
				if got := fstest.ReadFile(t, f, p); !bytes.Equal(got, w.data) {
					t.Errorf("%s: %d bytes through Open, want %d", p, len(got), len(w.data))
				}
			}
			// The big file has more blocks than the 12 direct addresses and
			// the single indirect block hold with 4 KiB blocks.
			if n := walked["/var/lib/big.bin"].Size / c.bsize; c.bsize == 4096 && n <= numDirect+f.sb.nindir {
				t.Errorf("big.bin: %d blocks do not reach a double indirect block", n)
			}

			// Symlinks: targets read inline and from a block; Open follows
			// them.
			for link, target := range map[string]string{"/shortlink": "etc/ssh/ssh_host_rsa_key", "/longlink": longTarget} {
				in, err := f.lookup(link, false)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := f.readSymlink(in, f.newReadBudget()); err != nil || got != target {
					t.Errorf("%s: target %q, %v; want %q", link, got, err, target)
				}
				if inline := f.inlineSymlink(in); inline != (len(target) < maxInlineSymlink) {
					t.Errorf("%s: inline %v for a %d-byte target", link, inline, len(target))
				}
			}
			if got := fstest.ReadFile(t, f, "/shortlink"); !bytes.Equal(got, want["/etc/ssh/ssh_host_rsa_key"].data) {
				t.Errorf("/shortlink: %d bytes", len(got))
			}
			if got := fstest.ReadFile(t, f, "/longlink"); !bytes.Equal(got, want["/var/lib/big.bin"].data) {
				t.Errorf("/longlink: %d bytes", len(got))
			}
			if _, err := f.Open("/etc/nope"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open of a missing file: %v", err)
			}
			if _, err := f.Open("/etc"); err == nil {
				t.Error("Open of a directory succeeded")
			}

			// Directories: entries and their types.
			ents, err := f.ReadDir("/many")
			if err != nil || len(ents) != manyEntries {
				t.Errorf("ReadDir(/many): %d entries, %v", len(ents), err)
			}
			if in, _ := f.lookup("/many", false); in == nil || in.size <= c.bsize && c.bsize < 16384 {
				t.Errorf("/many is not larger than a block")
			}
			ents, err = f.ReadDir("/")
			if err != nil {
				t.Fatal(err)
			}
			types := map[string]fs.FileMode{}
			for _, e := range ents {
				types[e.Name()] = e.Type()
			}
			for name, typ := range map[string]fs.FileMode{"etc": fs.ModeDir, "shortlink": fs.ModeSymlink, "empty": 0, "hardlink": 0} {
				if got, ok := types[name]; !ok || got != typ {
					t.Errorf("ReadDir(/): %s: %v (listed %v), want %v", name, got, ok, typ)
				}
			}
			if info, err := ents[0].Info(); err != nil || info.Name() != ents[0].Name() {
				t.Errorf("Info: %v, %v", info, err)
			}

			// Free space: State agrees with the free maps, whose count is
			// the superblock's (fs_cstotal: free blocks and fragments);
			// most of the image is free; metadata is allocated.
			free, err := freeFragments(f)
			if err != nil {
				t.Fatal(err)
			}
			if want := f.sb.nbfree*f.sb.frag + f.sb.nffree; free != want {
				t.Errorf("free maps count %d free fragments, the superblock %d", free, want)
			}
			if free < f.sb.size/2 {
				t.Errorf("only %d of %d fragments free", free, f.sb.size)
			}
			stateFree := int64(0)
			for frag := range f.sb.size {
				if f.State(frag*f.sb.fsize+f.sb.fsize-1) == fsys.StateFree {
					stateFree++
				}
			}
			if stateFree != free {
				t.Errorf("State says %d fragments are free, the maps %d", stateFree, free)
			}
			for _, off := range []int64{f.sb.loc, f.cgHeaderOff(0), f.cgHeaderOff(f.sb.ncg - 1), (f.sb.iblkno) * f.sb.fsize} {
				if st := f.State(off); st != fsys.StateAllocated {
					t.Errorf("metadata at %d: %s", off, st)
				}
			}
			if st := f.State(-1); st != fsys.StateUnknown {
				t.Errorf("State(-1): %s", st)
			}
			if sha256.Sum256(testutil.FileSnapshot(t, img)) != before {
				t.Error("image changed")
			}
		})
	}
}

// freeFragments counts the fragments the free maps mark free, reading
// each group's map whole.
func freeFragments(f *FS) (int64, error) {
	var n int64
	for g := range f.sb.ncg {
		frags := f.sb.cgFrags(g)
		m := make([]byte, (frags+7)/8)
		if err := f.read(m, f.cgHeaderOff(g)+int64(f.cgs[g].freeOff)); err != nil {
			return 0, err
		}
		for i := range frags {
			if m[i/8]&(1<<(i%8)) != 0 {
				n++
			}
		}
	}
	return n, nil
}

// TestHole: makefs writes every block, holes included, so a hole is made
// by clearing a direct block address in a copy of the image: the runs
// leave that block out and the file reads zeros there.
func TestHole(t *testing.T) {
	src := writeSource(t)
	img := makeUFS2(t, src, "bsize=4096,fsize=512")
	f, _ := openImage(t, img)
	in, err := f.lookup("/var/lib/medium.bin", false)
	if err != nil {
		t.Fatal(err)
	}
	data := testutil.FileSnapshot(t, img)
	le.PutUint64(data[in.off+diOffDirect+8:], 0) // logical block 1
	holed := filepath.Join(t.TempDir(), "holed.img")
	if err := os.WriteFile(holed, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ = openImage(t, holed)
	in, _ = f.lookup("/var/lib/medium.bin", false)
	runs, err := f.runs(in, nil, f.newReadBudget())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.FileOff < 2*4096 && r.FileOff+r.Len > 4096 {
			t.Errorf("run %+v covers the hole", r)
		}
	}
	if len(runs) < 2 || runs[0].FileOff != 0 || runs[1].FileOff != 2*4096 {
		t.Errorf("runs %+v", runs)
	}
	want := content(100<<10, 2)
	clear(want[4096:8192])
	if got := fstest.ReadFile(t, f, "/var/lib/medium.bin"); !bytes.Equal(got, want) {
		t.Error("the hole does not read as zeros, or the rest differs")
	}
}

// TestRefused: a UFS1 image, a big-endian magic and corrupt superblocks
// are refused with errors naming the device and the offset; nothing
// panics.
func TestRefused(t *testing.T) {
	testutil.RequireTool(t, "makefs")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ufs1 := filepath.Join(t.TempDir(), "ufs1.img")
	testutil.Run(t, "makefs", "-t", "ffs", "-s", "4m", ufs1, src)
	ufs2 := makeUFS2(t, src, "")
	good := testutil.FileSnapshot(t, ufs2)
	sbAt := int64(8192)
	if le.Uint32(good[sbAt+sbOffMagic:]) != magicUFS2 {
		t.Fatal("makefs did not put the UFS2 superblock at 8192")
	}
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { le.PutUint32(b[sbAt+int64(off):], v) }
	}
	cases := []struct {
		name        string
		img         []byte
		mutate      func([]byte)
		unsupported bool
	}{
		{"ufs1", testutil.FileSnapshot(t, ufs1), nil, true},
		{"big-endian", good, func(b []byte) {
			for i := sbAt; i < sbAt+sbSize; i += 4 { // swap every 32-bit word
				le.PutUint32(b[i:], bigEndianWord(b[i:]))
			}
		}, true},
		{"no-magic", good, put32(sbOffMagic, 0), false},
		{"bsize", good, put32(sbOffBsize, 3000), false},
		{"frag", good, put32(sbOffFrag, 16), false},
		{"ncg", good, put32(sbOffNcg, 1000), false},
		{"ipg", good, put32(sbOffIpg, 1<<30), false},
		{"sblockloc", good, func(b []byte) { le.PutUint64(b[sbAt+sbOffSblockloc:], 65536) }, false},
		{"size", good, func(b []byte) { le.PutUint64(b[sbAt+sbOffSize:], 1<<40) }, false},
		{"cg-magic", good, func(b []byte) {
			cblk := int64(le.Uint32(b[sbAt+sbOffCblkno:]))
			fsize := int64(le.Uint32(b[sbAt+sbOffFsize:]))
			le.PutUint32(b[cblk*fsize+cgOffMagic:], 0)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(c.img)
			if c.mutate != nil {
				c.mutate(b)
			}
			_, err := Open(bytes.NewReader(b), int64(len(b)), "p1")
			var fe *model.FormatError
			switch {
			case err == nil:
				t.Fatal("opened")
			case errors.Is(err, model.ErrUnsupported) != c.unsupported:
				t.Errorf("unsupported: %v, want %v: %v", errors.Is(err, model.ErrUnsupported), c.unsupported, err)
			case !errors.Is(err, ErrNotUFS2) && (!errors.As(err, &fe) || fe.File != "p1"):
				t.Errorf("error does not name the device: %v", err)
			}
			if c.name == "ufs1" && (!IsUFS1(b[:min(len(b), 0x10600)]) || Probe(b[:0x10600]) || !strings.Contains(err.Error(), "UFS1")) {
				t.Errorf("UFS1: IsUFS1 %v, Probe %v, %v", IsUFS1(b[:0x10600]), Probe(b[:0x10600]), err)
			}
		})
	}
}

func bigEndianWord(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
