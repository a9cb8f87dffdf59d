package pkgdb

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// IsRecordFile reports whether the file at absolute guest path p is one
// the readers may read: dpkg's status, diversions and md5sums, an rpm
// database directory's files, apk's installed database, and the RECORD
// and METADATA of a Python distribution in a searched site directory. A
// container layer walk keeps such files (NewMemFS) so that Read can run
// over an image's merged records, which no filesystem holds.
func IsRecordFile(p string) bool {
	p = path.Clean("/" + p)
	dir := path.Dir(p)
	switch {
	case p == dpkgStatusPath, p == dpkgDiversionsPath, p == apkInstalledPath, isAptRelease(p):
		return true
	case dir == dpkgInfoDir:
		return strings.HasSuffix(p, ".md5sums")
	case slices.Contains(rpmDBDirs, dir):
		return true
	}
	if strings.Contains(p, "/"+npmCacheDir+"/index-v5/") {
		return true
	}
	if isPnpmIndex(p) || isYarnMetadata(p) || path.Base(p) == yarnLockName {
		return true
	}
	if strings.HasSuffix(p, ".ziphash") && strings.Contains(p, "/"+goModDownload+"/") {
		return true
	}
	if base := path.Base(p); (base == "RECORD" || base == "METADATA") && strings.HasSuffix(dir, ".dist-info") {
		site := path.Dir(dir)
		for _, pat := range pythonSitePatterns {
			if ok, _ := path.Match(pat, site); ok {
				return true
			}
		}
	}
	return false
}

// MemFS is an FS over files held in memory (a container image's package
// records, gathered from its layers), with the symlinks it knows
// (LinkReader): directories are those the files' paths imply.
type MemFS struct {
	files map[string][]byte
	links map[string]string
	dirs  map[string][]fs.DirEntry
}

// NewMemFS returns an FS of files (absolute paths to contents) and links
// (absolute paths to symlink targets). The contents are shared, not
// copied.
func NewMemFS(files map[string][]byte, links map[string]string) *MemFS {
	m := &MemFS{files: map[string][]byte{}, links: map[string]string{}, dirs: map[string][]fs.DirEntry{}}
	for p, b := range files {
		m.files[path.Clean("/"+p)] = b
	}
	for p, t := range links {
		m.links[path.Clean("/"+p)] = t
	}
	seen := map[string]bool{}
	add := func(p string, size int64) {
		dir := false
		for !seen[p] && p != "/" {
			seen[p] = true
			parent := path.Dir(p)
			m.dirs[parent] = append(m.dirs[parent], memEntry{name: path.Base(p), dir: dir, size: size})
			p, dir, size = parent, true, 0
		}
	}
	for p, b := range m.files {
		add(p, int64(len(b)))
	}
	for _, es := range m.dirs {
		slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return m
}

// ReadFile returns a file's contents.
func (m *MemFS) ReadFile(p string) ([]byte, error) {
	if b, ok := m.files[path.Clean("/"+p)]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
}

// ReadDir lists a directory the files' paths imply.
func (m *MemFS) ReadDir(p string) ([]fs.DirEntry, error) {
	if es, ok := m.dirs[path.Clean("/"+p)]; ok {
		return slices.Clone(es), nil
	}
	return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
}

// Readlink returns a known symlink's target.
func (m *MemFS) Readlink(p string) (string, error) {
	if t, ok := m.links[path.Clean("/"+p)]; ok {
		return t, nil
	}
	return "", fmt.Errorf("%s: not a known symlink: %w", p, fs.ErrInvalid)
}

type memEntry struct {
	name string
	dir  bool
	size int64
}

func (e memEntry) Name() string { return e.name }
func (e memEntry) IsDir() bool  { return e.dir }
func (e memEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	return 0
}
func (e memEntry) Info() (fs.FileInfo, error) { return e, nil }

// fs.FileInfo, for Info.
func (e memEntry) Size() int64        { return e.size }
func (e memEntry) Mode() fs.FileMode  { return e.Type() }
func (e memEntry) ModTime() time.Time { return time.Time{} }
func (e memEntry) Sys() any           { return nil }
