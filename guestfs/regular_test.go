package guestfs

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// TestRegularFiles: every regular file of the fixture is listed, in each
// partition layout, with its size, its first byte where the disk holds it,
// runs that read its bytes from the disk, and a File that reads the same.
func TestRegularFiles(t *testing.T) {
	src := writeTree(t)
	fsImg := mkExt(t, src, "-b", "1024")
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			m, img := analyzeFile(t, l.build(t, fsImg))
			got := map[string]RegularFile{}
			if err := m.RegularFiles(context.Background(), 1, func(f RegularFile) error {
				got[f.Path] = f
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(testFiles) {
				t.Errorf("%d files, want %d: %v", len(got), len(testFiles), got)
			}
			for p, n := range testFiles {
				f, ok := got[p]
				if !ok {
					t.Errorf("%s not listed", p)
					continue
				}
				want := marker(p, n)
				if f.Partition != l.part || f.Size != int64(n) || f.Start() != contentOffset(t, img, p) {
					t.Errorf("%s: partition %s, size %d, start %d; want %s, %d, %d", p, f.Partition, f.Size, f.Start(), l.part, n, contentOffset(t, img, p))
				}
				var fromRuns []byte
				for _, r := range f.Runs {
					if r.FileOff != int64(len(fromRuns)) {
						t.Fatalf("%s: run at file offset %d after %d bytes", p, r.FileOff, len(fromRuns))
					}
					fromRuns = append(fromRuns, img[r.Off:r.Off+r.Len]...)
				}
				if !bytes.Equal(fromRuns[:n], want) {
					t.Errorf("%s: the runs do not hold the file's bytes", p)
				}
				b, err := io.ReadAll(io.NewSectionReader(f.File, 0, f.Size))
				if err != nil || !bytes.Equal(b, want) {
					t.Errorf("%s: File reads %d bytes (%v), not the file's", p, len(b), err)
				}
			}
			// minSize leaves out the smaller files.
			n := 0
			m.RegularFiles(context.Background(), 5000, func(RegularFile) error { n++; return nil })
			if n != 3 {
				t.Errorf("%d files of 5000 bytes or more, want 3", n)
			}
		})
	}
}
