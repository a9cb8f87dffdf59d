package guestfs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"sync"
	"time"

	"github.com/imgaudit/imgaudit/guestfs/ext4"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// Files is read access to the files of one partition's filesystem, with
// paths as Locate reports them for that partition. Package records
// (pkgdb) are read through it and the files that hold findings are hashed
// through it. Any filesystem whose package implements fsys.Reader can be
// read.
//
// On ext2/3/4 it keeps the last directory it listed: reading the many
// files of one directory (dpkg's info/*.md5sums) then costs one directory
// read, not one per file. It is safe for concurrent use.
type Files struct {
	r fsys.Reader
	e *ext4.FS // the same filesystem when it is ext2/3/4, else nil

	mu      sync.Mutex
	dirPath string
	dir     map[string]ext4.DirEntry
}

// Files returns read access to the filesystem of the named partition (as
// in Location.Partition), or nil when it has none that can be read.
func (m *Map) Files(partition string) *Files {
	for _, p := range m.all() {
		if p.info.Name != partition || p.idx == nil {
			continue
		}
		if r, ok := p.idx.fs.(fsys.Reader); ok {
			f := &Files{r: r}
			f.e, _ = r.(*ext4.FS)
			return f
		}
	}
	return nil
}

// ReadFile reads a regular file of at most MaxReadFile bytes, following
// symlinks inside the filesystem.
func (f *Files) ReadFile(p string) ([]byte, error) { return f.ReadFileLimit(p, MaxReadFile) }

// ReadFileLimit is ReadFile with a cap of limit bytes (package databases:
// an rpm database of a long-lived server is about 100 MB).
func (f *Files) ReadFileLimit(p string, limit int64) ([]byte, error) {
	if ent, ok := f.cached(p); ok && ent.Mode.IsRegular() {
		return f.e.ReadInodeFile(ent.Ino, limit)
	}
	fl, err := f.r.Open(p)
	if err != nil {
		return nil, err
	}
	return readWhole(p, fl, limit)
}

// cached looks p up in the last directory listed.
func (f *Files) cached(p string) (ext4.DirEntry, bool) {
	dir, name := path.Split(path.Clean("/" + p))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir == nil || path.Clean(dir) != f.dirPath {
		return ext4.DirEntry{}, false
	}
	ent, ok := f.dir[name]
	return ent, ok
}

// ReadDir lists a directory (symlinks followed), without "." and "..".
func (f *Files) ReadDir(p string) ([]iofs.DirEntry, error) {
	if f.e == nil {
		return f.r.ReadDir(p)
	}
	ents, err := f.e.List(p)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]ext4.DirEntry, len(ents))
	out := make([]iofs.DirEntry, len(ents))
	for i, e := range ents {
		byName[e.Name] = e
		out[i] = dirEntry{e}
	}
	f.mu.Lock()
	f.dirPath, f.dir = path.Clean("/"+p), byName
	f.mu.Unlock()
	return out, nil
}

// errNoSuchQuery is returned for what a filesystem package cannot tell.
var errNoSuchQuery = errors.New("guestfs: not available on this filesystem")

// Readlink returns a symlink's target.
func (f *Files) Readlink(p string) (string, error) {
	if l, ok := f.r.(interface{ Readlink(string) (string, error) }); ok {
		return l.Readlink(p)
	}
	return "", fmt.Errorf("readlink %s: %w", p, errNoSuchQuery)
}

// Open opens a regular file, whatever its size; it reads at any offset.
func (f *Files) Open(p string) (fsys.File, error) { return f.r.Open(p) }

// Mtime is the low 32 bits of a regular file's modification time in
// seconds since 1970, as CPython's .pyc headers record it.
func (f *Files) Mtime(p string) (uint32, error) {
	if m, ok := f.r.(interface{ Mtime(string) (uint32, error) }); ok {
		return m.Mtime(p)
	}
	return 0, fmt.Errorf("mtime of %s: %w", p, errNoSuchQuery)
}

// dirEntry adapts ext4.DirEntry to io/fs. Info carries the name and type
// only: listing a directory reads no inodes.
type dirEntry struct{ e ext4.DirEntry }

func (d dirEntry) Name() string                 { return d.e.Name }
func (d dirEntry) IsDir() bool                  { return d.e.Mode.IsDir() }
func (d dirEntry) Type() iofs.FileMode          { return d.e.Mode.Type() }
func (d dirEntry) Info() (iofs.FileInfo, error) { return d, nil }
func (d dirEntry) Size() int64                  { return 0 }
func (d dirEntry) Mode() iofs.FileMode          { return d.e.Mode }
func (d dirEntry) ModTime() time.Time           { return time.Time{} }
func (d dirEntry) Sys() any                     { return nil }

// FileData returns the byte ranges of the regular file at path p in
// partition that hold data (file offsets, [start, end), sorted): its
// holes and preallocated ranges read as zeros and are left out. False
// when the index cannot tell (no such file, an index cut at its caps,
// compressed or inline data): the whole file is then data.
func (m *Map) FileData(partition, p string) ([][2]int64, bool) {
	for _, q := range m.all() {
		if q.info.Name == partition && q.idx != nil {
			return q.idx.dataOf(p)
		}
	}
	return nil, false
}

// FileRuns returns where the data of the regular file at path p in
// partition lies in the disk Analyze read (runs sorted by file offset;
// bytes on no PV of this disk are left out), and false when the index
// cannot tell (as FileData).
func (m *Map) FileRuns(partition, p string) ([]GuestRun, bool) {
	for _, q := range m.all() {
		if q.info.Name == partition && q.idx != nil {
			runs, ok := q.idx.dataRuns(p)
			if !ok {
				return nil, false
			}
			var out []GuestRun
			for _, r := range runs {
				out = m.appendGuestRuns(out, q, fsys.Run{Off: r.off, Len: r.n, FileOff: r.fileOff})
			}
			return out, true
		}
	}
	return nil, false
}

// SwapArea is a swap partition or logical volume: the paged-out memory of
// the guest's processes.
type SwapArea struct {
	Name string      // as Location names it: "p2", "vg0/swap_1"
	R    io.ReaderAt // its bytes
	Size int64
	Runs []GuestRun // where they lie in the disk (FileOff: the area's offset)
}

// SwapAreas lists the swap partitions and logical volumes.
func (m *Map) SwapAreas() []SwapArea {
	var out []SwapArea
	for _, p := range m.all() {
		if p.info.FS != "swap" || p.r == nil || p.info.Size <= 0 {
			continue
		}
		out = append(out, SwapArea{Name: p.info.Name, R: p.r, Size: p.info.Size,
			Runs: m.appendGuestRuns(nil, p, fsys.Run{Off: 0, Len: p.info.Size})})
	}
	return out
}
