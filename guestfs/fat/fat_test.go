package fat

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// walkAll walks f and returns its entries by path, with their runs copied.
func walkAll(t *testing.T, f *FS) (map[string]fsys.Entry, error) {
	t.Helper()
	out := map[string]fsys.Entry{}
	err := f.Walk(context.Background(), func(e fsys.Entry) error {
		e.Runs = append([]fsys.Run(nil), e.Runs...)
		out[e.Path] = e
		return nil
	})
	return out, err
}

// openFAT opens the FAT image at path; the file is closed when t ends.
func openFAT(t *testing.T, path string) (*FS, *os.File) {
	t.Helper()
	img, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	st, err := img.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(img, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return f, img
}

// TestWalkMtools: the paths, sizes and contents of files that mtools
// wrote into FAT12, FAT16 and FAT32 filesystems that mkfs.fat made, read
// through the runs Walk gives.
func TestWalkMtools(t *testing.T) {
	testutil.RequireTool(t, "mkfs.fat", "mmd", "mcopy")
	for _, tc := range []struct {
		name, size, mkfs string
		fatType          int
	}{
		{"fat12", "1M", "-F 12", 12},
		{"fat16", "8M", "-F 16 -s 1", 16},
		{"fat32", "40M", "-F 32 -s 1", 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testutil.Bash(t, dir, `set -e
head -c 5000 /dev/urandom > big.bin
printf 'hello\n' > hello.txt
truncate -s `+tc.size+` fs.img
mkfs.fat `+tc.mkfs+` fs.img >/dev/null
mmd -i fs.img ::/etc ::/etc/deep
mcopy -i fs.img hello.txt ::/etc/hostname
mcopy -i fs.img big.bin "::/etc/deep/A long file name.bin"`)
			f, img := openFAT(t, filepath.Join(dir, "fs.img"))
			if f.fatType != tc.fatType {
				t.Errorf("FAT%d, want FAT%d", f.fatType, tc.fatType)
			}
			got, err := walkAll(t, f)
			if err != nil {
				t.Fatal(err)
			}
			for p, src := range map[string]string{
				"/etc/hostname":                  "hello.txt",
				"/etc/deep/A long file name.bin": "big.bin",
			} {
				want, err := os.ReadFile(filepath.Join(dir, src))
				if err != nil {
					t.Fatal(err)
				}
				e, ok := got[p]
				if !ok {
					t.Fatalf("%s missing from the walk", p)
				}
				if e.Size != int64(len(want)) {
					t.Errorf("%s: size %d, want %d", p, e.Size, len(want))
				}
				var data []byte
				for _, r := range e.Runs {
					b := make([]byte, r.Len)
					if _, err := img.ReadAt(b, r.Off); err != nil {
						t.Fatal(err)
					}
					data = append(data, b...)
					if s := f.State(r.Off); s != fsys.StateAllocated {
						t.Errorf("%s: run at %d is %s", p, r.Off, s)
					}
				}
				if int64(len(data)) < e.Size || !bytes.Equal(data[:e.Size], want) {
					t.Errorf("%s: the runs do not hold the file mcopy wrote", p)
				}
			}
			if !got["/etc/deep"].Mode.IsDir() {
				t.Errorf("/etc/deep is not a directory: %v", got["/etc/deep"].Mode)
			}
		})
	}
}

// TestCrossLinkedChains: a FAT whose directory entries all start the same
// long chain (hostile.FATCrossLinkedSized) is walked within the step
// budget, says so, and still maps the first files.
func TestCrossLinkedChains(t *testing.T) {
	testutil.RequireTool(t, "mkfs.fat", "mmd")
	path, err := hostile.FATCrossLinkedSized(context.Background(), t.TempDir(), 64)
	if err != nil {
		t.Fatal(err)
	}
	f, img := openFAT(t, path)
	st, _ := img.Stat()
	start := time.Now()
	got, err := walkAll(t, f)
	t.Logf("walked %d entries in %v", len(got), time.Since(start))
	var pe *fsys.PartialError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "cross-linked cluster chains") {
		t.Fatalf("walk error %v, want a partial walk that names the cross-linked chains", err)
	}
	var mapped int64
	for _, e := range got {
		for _, r := range e.Runs {
			mapped += r.Len
		}
	}
	// Without the budget each of the 1,022 files maps the whole chain
	// (about 60 MiB): 60 GiB in all. With it, about twice the
	// filesystem.
	if limit := 3 * st.Size(); mapped > limit {
		t.Errorf("the walk mapped %d bytes, over 3 times the %d-byte filesystem", mapped, st.Size())
	}
	if e := got["/d/F0000000.TXT"]; len(e.Runs) == 0 || e.Runs[0].Len < 1<<20 {
		t.Errorf("the first file's chain was not followed: %+v", e.Runs)
	}
}

// FuzzFATOpen reads arbitrary bytes as a FAT filesystem packed by
// sparseimg (its size, then the byte ranges that are not zero; at most
// 64 MiB): Open, Walk and State must never panic, and the walk must stay
// within its budgets. The seeds are FAT12, FAT16 and FAT32 filesystems
// that mkfs.fat makes at fuzz time, with files that mtools writes. Packed,
// the FAT32 one is a few KiB instead of the 640 KiB its two FATs span
// (Go's fuzzer minimizes each new input before it counts executions, so
// large seeds made it show a handful a minute).
func FuzzFATOpen(f *testing.F) {
	testutil.RequireTool(f, "mkfs.fat", "mmd", "mcopy")
	dir := f.TempDir()
	testutil.Bash(f, dir, `set -e
printf 'hello\n' > hello.txt
for spec in "12 1M -F12" "16 8M -F16 -s1" "32 40M -F32 -s1"; do
  set -- $spec; n=$1 size=$2; shift 2
  truncate -s $size fat$n.img
  mkfs.fat "$@" fat$n.img >/dev/null
  mmd -i fat$n.img ::/etc
  mcopy -i fat$n.img hello.txt ::/etc/hostname
  mcopy -i fat$n.img hello.txt "::/etc/a long name.txt"
done`)
	for _, n := range []string{"12", "16", "32"} {
		f.Add(sparseimg.Encode(testutil.FileSnapshot(f, filepath.Join(dir, "fat"+n+".img")), 64))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := sparseimg.Decode(data)
		size := min(r.Size(), 64<<20)
		fs, err := Open(r, size)
		if err != nil {
			return
		}
		var mapped int64
		fs.Walk(context.Background(), func(e fsys.Entry) error {
			for _, run := range e.Runs {
				if run.Off < 0 || run.Len <= 0 || run.Off+run.Len > size {
					t.Fatalf("%s: run %+v outside the %d-byte filesystem", e.Path, run, size)
				}
				mapped += run.Len
			}
			return nil
		})
		if limit := fs.chainBudget() * fs.clusterSize; mapped > limit {
			t.Fatalf("the walk mapped %d bytes, over its budget of %d", mapped, limit)
		}
		for _, off := range []int64{-1, 0, 512, fs.dataOff, size / 2, size - 1, size} {
			fs.State(off)
		}
	})
}
