package guestfs

import (
	iofs "io/fs"
	"path"
	"sync"
	"time"

	"github.com/imgaudit/imgaudit/guestfs/ext4"
)

// Files is read access to the files of one partition's filesystem, with
// paths as Locate reports them for that partition. Package records
// (pkgdb) are read through it and the files that hold findings are hashed
// through it. Only ext2/3/4 can be read today; other filesystems get
// readers of their own behind the same type.
//
// It keeps the last directory it listed: reading the many files of one
// directory (dpkg's info/*.md5sums) then costs one directory read, not one
// per file. It is safe for concurrent use.
type Files struct {
	e *ext4.FS

	mu      sync.Mutex
	dirPath string
	dir     map[string]ext4.DirEntry
}

// Files returns read access to the filesystem of the named partition (as
// in Location.Partition), or nil when it has none that can be read.
func (m *Map) Files(partition string) *Files {
	for _, p := range m.parts {
		if p.info.Name == partition && p.idx != nil && p.idx.ext != nil {
			return &Files{e: p.idx.ext}
		}
	}
	return nil
}

// ReadFile reads a regular file of at most ext4.MaxReadFile bytes,
// following symlinks inside the filesystem.
func (f *Files) ReadFile(p string) ([]byte, error) {
	if ent, ok := f.cached(p); ok && ent.Mode.IsRegular() {
		return f.e.ReadInodeFile(ent.Ino, ext4.MaxReadFile)
	}
	return f.e.ReadFile(p)
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
	ents, err := f.e.ReadDir(p)
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

// Readlink returns a symlink's target.
func (f *Files) Readlink(p string) (string, error) { return f.e.Readlink(p) }

// Open opens a regular file for streaming, whatever its size.
func (f *Files) Open(p string) (*ext4.File, error) { return f.e.Open(p) }

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
