package ntfs

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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
		dir := filepath.Join(mnt, "c")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setxattr(dir, "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0); err != nil {
			t.Fatal(err)
		}
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
