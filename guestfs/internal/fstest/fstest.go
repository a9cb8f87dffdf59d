// Package fstest holds what the tests of the filesystem packages share:
// the fuzz targets' common exercise of an opened filesystem, the check
// that a seed walks down to its files, run sorting for comparisons, and
// the check that a walk of hostile shared metadata stays bounded.
package fstest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// FuzzSize bounds the device a fuzz target opens: sizes up to a terabyte
// are the parser's business, but reading hundreds of megabytes of zeros
// each run would stall fuzzing.
const FuzzSize = 256 << 20

// Exercise walks f (a filesystem of size bytes; at most 20000 entries),
// failing t if a run lies outside the device, reads the first regular
// files' first 64 KiB through f's fsys.Reader, asks State at a few
// offsets and lists and opens paths. Errors are expected: it checks that
// nothing panics, hangs or leaves the device.
func Exercise(t *testing.T, f fsys.FS, size int64, paths ...string) {
	r, _ := f.(fsys.Reader)
	n := 0
	f.Walk(context.Background(), func(e fsys.Entry) error {
		if n++; n > 20000 {
			return errors.New("enough")
		}
		for _, run := range e.Runs {
			if run.Len <= 0 || run.Off < 0 || run.Off+run.Len > size || run.FileOff < 0 {
				t.Fatalf("%s: run %+v outside the %d-byte device", e.Path, run, size)
			}
		}
		if r != nil && !e.Deleted && e.Mode.IsRegular() && n < 50 {
			if fl, err := r.Open(e.Path); err == nil {
				fl.ReadAt(make([]byte, min(fl.Size(), 1<<16)), 0)
			}
		}
		// A deleted file's compressed data, decoded from its runs.
		if cr, ok := f.(fsys.CompressedRunReader); ok && e.Deleted && len(e.Runs) > 0 && e.Runs[0].Compressed && n < 50 {
			if fl, err := cr.OpenCompressedRuns(e.Runs, e.Size); err == nil {
				fl.ReadAt(make([]byte, min(fl.Size(), 1<<17)), 0)
			}
		}
		return nil
	})
	for _, off := range []int64{0, 0x10000, size / 3, size / 2, size - 1} {
		f.State(off)
	}
	if r != nil {
		for _, p := range append([]string{"/"}, paths...) {
			r.ReadDir(p)
			r.Open(p)
		}
	}
}

// WalksTo fails t unless a walk of f gives every path in want.
func WalksTo(t *testing.T, f fsys.FS, want ...string) {
	t.Helper()
	var paths []string
	if err := f.Walk(context.Background(), func(e fsys.Entry) error { paths = append(paths, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		if !slices.Contains(paths, p) {
			t.Errorf("no %s in %q", p, paths)
		}
	}
}

// SortRuns returns a copy of rs sorted by file offset, then device offset.
func SortRuns(rs []fsys.Run) []fsys.Run {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b fsys.Run) int {
		return cmp.Or(cmp.Compare(a.FileOff, b.FileOff), cmp.Compare(a.Off, b.Off))
	})
	return rs
}

// ReadsBack fails t unless each file of want opens through r and reads
// back as its bytes.
func ReadsBack(t *testing.T, r fsys.Reader, want map[string][]byte) {
	t.Helper()
	for p, b := range want {
		f, err := r.Open(p)
		if err != nil {
			t.Errorf("Open(%s): %v", p, err)
			continue
		}
		got := make([]byte, f.Size())
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, b) {
			t.Errorf("Open(%s): %d bytes, %v", p, len(got), err)
		}
	}
}

// ReadFile opens path through r and reads it whole, failing t (and
// returning what it read, or nil) when it cannot.
func ReadFile(t *testing.T, r fsys.Reader, path string) []byte {
	t.Helper()
	f, err := r.Open(path)
	if err != nil {
		t.Errorf("Open(%s): %v", path, err)
		return nil
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Errorf("read %s: %v", path, err)
	}
	return b
}

// Gone fails t unless path does not exist through r (a deleted file).
func Gone(t *testing.T, r fsys.Reader, path string) {
	t.Helper()
	if _, err := r.Open(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(%s): %v, want fs.ErrNotExist", path, err)
	}
}

// Names lists directory dir through r, sorted, "name/" for directories.
func Names(t *testing.T, r fsys.Reader, dir string) string {
	t.Helper()
	ents, err := r.ReadDir(dir)
	if err != nil {
		t.Errorf("ReadDir(%s): %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// HardLinks checks the names a walk gives each file of a tool's listing
// (K identifies a file there): one entry with the file's runs, which the
// caller compares with the tool's, and a Link entry with its ID for each
// other name (fsys.FS.Walk).
type HardLinks[K comparable] struct {
	first map[K]fsys.Entry // Runs not kept
	links map[K][]fsys.Entry
}

// NewHardLinks returns an empty check.
func NewHardLinks[K comparable]() *HardLinks[K] {
	return &HardLinks[K]{first: map[K]fsys.Entry{}, links: map[K][]fsys.Entry{}}
}

// Add records entry e of file k and reports whether it is the file's
// entry with runs, false for a Link entry (no size or runs to compare).
// It fails t for a second entry with runs.
func (h *HardLinks[K]) Add(t *testing.T, k K, e fsys.Entry) bool {
	t.Helper()
	e.Runs = nil
	if e.Link {
		h.links[k] = append(h.links[k], e)
		return false
	}
	if prev, dup := h.first[k]; dup {
		t.Errorf("%s and %s: the same file given twice with runs", prev.Path, e.Path)
	}
	h.first[k] = e
	return true
}

// Given reports whether file k was given with its runs.
func (h *HardLinks[K]) Given(k K) bool { _, ok := h.first[k]; return ok }

// Check fails t unless every file with several names in want (k: all
// its paths) was given under each exactly once, its Link entries with a
// non-zero ID equal to its entry's, and no file with one name got a Link.
func (h *HardLinks[K]) Check(t *testing.T, want map[K][]string) {
	t.Helper()
	for k, paths := range want {
		first, ok := h.first[k]
		if !ok {
			continue // the caller reports files not walked
		}
		got := []string{first.Path}
		for _, l := range h.links[k] {
			got = append(got, l.Path)
			if l.ID != first.ID || l.ID == ([2]uint64{}) {
				t.Errorf("%s: link ID %v, %s has %v", l.Path, l.ID, first.Path, first.ID)
			}
		}
		slices.Sort(got)
		w := slices.Sorted(slices.Values(paths))
		if !slices.Equal(got, w) {
			t.Errorf("file %s given under %q, the tool names %q", first.Path, got, w)
		}
		if len(paths) > 1 && first.ID == ([2]uint64{}) {
			t.Errorf("%s: several names but no ID", first.Path)
		}
	}
	for k, ls := range h.links {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: a Link entry for a file the tool does not list", ls[0].Path)
		}
	}
}

// CountingReader counts the bytes read through it.
type CountingReader struct {
	R io.ReaderAt
	n atomic.Int64
}

func (c *CountingReader) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.R.ReadAt(b, off)
	c.n.Add(int64(n))
	return n, err
}

// Read is the number of bytes read so far.
func (c *CountingReader) Read() int64 { return c.n.Load() }

// BoundedPartialWalk walks f, opened over cr (a device of size bytes), as
// the filesystem of a hostile image whose files share metadata: the walk
// must be partial, its first note must contain note (the budget that ran
// out, named first), it must still give at least minPaths paths, and it
// must read at most four times the device.
func BoundedPartialWalk(t *testing.T, f fsys.FS, cr *CountingReader, size int64, note string, minPaths int) {
	t.Helper()
	paths := 0
	err := f.Walk(context.Background(), func(fsys.Entry) error { paths++; return nil })
	var pe *fsys.PartialError
	if !errors.As(err, &pe) || !strings.Contains(pe.Notes[0], note) {
		t.Fatalf("walk: %v, want a partial walk whose first note says %q", err, note)
	}
	if paths < minPaths {
		t.Errorf("the walk gave %d paths, want %d: the files past the budget must still be listed", paths, minPaths)
	}
	if read := cr.Read(); read > 4*size {
		t.Errorf("the walk read %d bytes, over 4 times the %d-byte device", read, size)
	}
}
