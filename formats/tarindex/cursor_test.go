package tarindex

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestCursorReadAhead: with or without read-ahead, and whatever its size,
// a Cursor reads and seeks as an io.SectionReader of the same bytes
// (iotest.TestReader), and a tar reader over it, reading every member or
// seeking over them, sees the same members, data and offsets as Build, in
// a tar GNU tar wrote of files around the block and buffer sizes and a
// sparse file.
func TestCursorReadAhead(t *testing.T) {
	testutil.RequireTool(t, "tar", "fallocate")
	root := t.TempDir()
	sizes := []int{0, 1, 511, 512, 513, 4095, 4096, 65535, 65536, 65537, 200000}
	rng := rand.New(rand.NewPCG(1, 2))
	var names []string
	for _, n := range sizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("f%06d", n)
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	sp := make([]byte, 3<<20)
	copy(sp[1<<20:], bytes.Repeat([]byte("sparse"), 5000))
	if err := os.WriteFile(filepath.Join(root, "sparse.img"), sp, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "fallocate", "--dig-holes", filepath.Join(root, "sparse.img"))
	names = append(names, "sparse.img")
	tarPath := filepath.Join(t.TempDir(), "a.tar")
	testutil.Run(t, "tar", append([]string{"--format=gnu", "--sparse", "-cf", tarPath, "-C", root}, names...)...)
	tb, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	x, err := Build(t.Context(), bytes.NewReader(tb), int64(len(tb)), "a.tar", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ahead := range []int{0, 512, 4096, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprint("ahead ", ahead), func(t *testing.T) {
			cursor := func() *Cursor {
				c := NewCursor(bytes.NewReader(tb), int64(len(tb)))
				if ahead > 0 {
					c.ReadAhead(ahead)
				}
				return c
			}
			if err := iotest.TestReader(cursor(), tb); err != nil {
				t.Fatal(err)
			}
			for _, readData := range []bool{true, false} {
				c := cursor()
				tr := tar.NewReader(c)
				for i, e := range x.Entries() {
					h, err := tr.Next()
					if err != nil {
						t.Fatalf("member %d: %v", i, err)
					}
					if h.Name != e.Raw || c.Pos() != e.Offset {
						t.Errorf("member %d: %s with data at %d, want %s at %d", i, h.Name, c.Pos(), e.Raw, e.Offset)
					}
					if !readData {
						continue
					}
					got, err := io.ReadAll(tr)
					if err != nil {
						t.Fatalf("%s: %v", h.Name, err)
					}
					want, _ := os.ReadFile(filepath.Join(root, h.Name))
					if sha256.Sum256(got) != sha256.Sum256(want) {
						t.Errorf("%s: %d bytes read differ from the file's %d", h.Name, len(got), len(want))
					}
				}
				if _, err := tr.Next(); err != io.EOF {
					t.Errorf("after the last member: %v, want io.EOF", err)
				}
			}
		})
	}
}
