package ntfs

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadCompressed: files that ntfs-3g compresses (in a folder with the
// compressed attribute) read back by path as ntfs-3g itself reads them:
// text (LZNT1 units), random bytes (units stored as is), a file with a
// hole (sparse units), text and random bytes mixed, and a file rewritten
// in the middle after it was written.
func TestReadCompressed(t *testing.T) {
	testutil.RequireTool(t, "dd")
	var text strings.Builder
	for i := 0; text.Len() < 300<<10; i++ {
		fmt.Fprintf(&text, "Dec  6 10:%02d:%02d web01 sshd[%d]: Accepted publickey for deploy\n", i/60%60, i%60, 800+i)
	}
	noise := make([]byte, 200<<10)
	rand.Read(noise)
	c := testutil.FSContent{Extra: func(mnt string) {
		dir := compressedDir(t, mnt)
		for name, b := range map[string][]byte{
			"text.log":  []byte(text.String()),
			"noise.bin": noise,
			"mixed":     append(append([]byte(text.String()[:100000]), noise[:70000]...), text.String()[:90001]...),
		} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		f, err := os.Create(filepath.Join(dir, "holes"))
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte(text.String()[:5000]), 0)
		f.WriteAt([]byte(text.String()[:7000]), 1<<20)
		f.Close()
		testutil.Bash(t, dir, "cp text.log rewritten.log && printf 'rewritten in the middle' | dd of=rewritten.log bs=1 seek=150000 conv=notrunc status=none")
	}}
	img := testutil.MakeNTFS(t, 64<<20, c)
	mnt, unmount := testutil.NTFSMount(t, img, "ro")
	want := map[string][]byte{}
	for _, name := range []string{"text.log", "noise.bin", "mixed", "holes", "rewritten.log"} {
		b, err := os.ReadFile(filepath.Join(mnt, "c", name))
		if err != nil {
			t.Fatal(err)
		}
		want["/c/"+name] = b
	}
	unmount()
	f, _ := openImage(t, img)
	compressed := 0
	for p := range want {
		i, _, err := f.lookup(p)
		if err == nil && f.recs[i].stream("").compressed {
			compressed++
		}
	}
	if compressed != len(want) {
		t.Fatalf("%d of %d files compressed", compressed, len(want))
	}
	fstest.ReadsBack(t, f, want)
	if !bytes.Equal(want["/c/noise.bin"], noise) {
		t.Errorf("ntfs-3g reads noise.bin otherwise")
	}
}

// TestOpenCompressedRuns: files that ntfs-3g compressed and then deleted
// (the record stays, without its in-use flag) decode from the runs the
// walk gives for them to what ntfs-3g read while they lived. ntfsundelete,
// the tool for deleted files, recovers none of a compressed file ("0%"),
// so the live read is the reference. A unit one of whose clusters was
// allocated again decodes up to that cluster and reads zeros after it,
// and the units around it are whole.
func TestOpenCompressedRuns(t *testing.T) {
	var text strings.Builder
	for i := 0; text.Len() < 300<<10; i++ {
		fmt.Fprintf(&text, "Dec  6 11:%02d:%02d web01 sudo[%d]: deploy : TTY=pts/0 ; COMMAND=/usr/bin/systemctl restart app\n", i/60%60, i%60, 900+i)
	}
	noise := make([]byte, 100<<10)
	rand.Read(noise)
	files := map[string][]byte{
		"text.log": []byte(text.String()),
		"mixed":    append(append([]byte(text.String()[:70000]), noise...), text.String()[:50001]...),
	}
	want := map[string][]byte{}
	c := testutil.FSContent{Extra: func(mnt string) {
		dir := compressedDir(t, mnt)
		for name, b := range files {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			syscall.Sync()
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want["/c/"+name] = got
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
	}}
	img := testutil.MakeNTFS(t, 64<<20, c)
	f, _ := openImage(t, img)
	deleted := map[string]fsys.Entry{}
	if err := f.Walk(t.Context(), func(e fsys.Entry) error {
		if _, ok := want[e.Path]; ok && e.Deleted {
			e.Runs = slices.Clone(e.Runs)
			deleted[e.Path] = e
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	read := func(runs []fsys.Run, size int64) []byte {
		t.Helper()
		r, err := f.OpenCompressedRuns(runs, size)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, size)
		if n, err := r.ReadAt(got, 0); n != len(got) || err != nil {
			t.Fatalf("read %d of %d bytes: %v", n, len(got), err)
		}
		return got
	}
	for p, b := range want {
		e, ok := deleted[p]
		if !ok {
			t.Fatalf("%s: no deleted entry", p)
		}
		if !bytes.Equal(b, files[path.Base(p)]) {
			t.Errorf("%s: ntfs-3g read back other bytes than were written", p)
		}
		if got := read(e.Runs, e.Size); !bytes.Equal(got, b) {
			t.Errorf("%s: the deleted file decodes otherwise than ntfs-3g read it", p)
		}
	}

	// The second unit's second cluster allocated again: cut it out of
	// the runs, as the walk does for a cluster that $Bitmap has in use.
	unit, cs := 16*f.clusterSize, f.clusterSize
	e := deleted["/c/text.log"]
	var cut []fsys.Run
	for _, r := range e.Runs {
		for off := int64(0); off < r.Len; off += cs {
			if r.FileOff+off != unit+cs {
				cut = append(cut, fsys.Run{Off: r.Off + off, Len: cs, FileOff: r.FileOff + off, Compressed: true, Codec: r.Codec})
			}
		}
	}
	got, orig := read(cut, e.Size), want["/c/text.log"]
	n := int64(bytes.IndexByte(got[unit:2*unit], 0))
	switch {
	case !bytes.Equal(got[:unit], orig[:unit]) || !bytes.Equal(got[2*unit:], orig[2*unit:]):
		t.Errorf("the units around the one cut changed")
	case n < lznt1Chunk || !bytes.Equal(got[unit:unit+n], orig[unit:unit+n]):
		t.Errorf("the cut unit: %d bytes decoded before the zeros, want its first chunks (%d bytes at least)", n, lznt1Chunk)
	case bytes.Count(got[unit+n:2*unit], []byte{0}) != int(unit-n):
		t.Errorf("the cut unit: not zeros after its first %d bytes", n)
	}
	if _, err := f.OpenCompressedRuns([]fsys.Run{{Off: 0, Len: cs}}, cs); err == nil {
		t.Errorf("OpenCompressedRuns took a run that is not compressed")
	}
}

// compressedDir makes the folder mnt/c with NTFS's compressed attribute,
// set through ntfs-3g's xattr: the files written in it are compressed.
func compressedDir(t *testing.T, mnt string) string {
	t.Helper()
	dir := filepath.Join(mnt, "c")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(dir, "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLZNT1Corrupt: damaged units are errors, never a panic or a read
// past the unit.
func TestLZNT1Corrupt(t *testing.T) {
	for _, c := range []struct {
		name string
		src  []byte
	}{
		{"chunk past the end", []byte{0x10, 0xB0, 'a'}},
		{"reference before the start", []byte{0x03, 0xB0, 0x01, 0x00, 0x00}},
		{"cut reference", []byte{0x02, 0xB0, 0x01, 0x00}},
		{"stored chunk past the unit", append([]byte{0xFF, 0x3F}, make([]byte, 4096)...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := decompressLZNT1(c.src, make([]byte, 2048)); err == nil {
				t.Errorf("no error")
			}
		})
	}
}
