package ufs

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	// maxWalkDepth bounds path depth (PATH_MAX/2 one-letter components).
	maxWalkDepth = 2048
	// maxWalkEntries bounds the entries one walk visits.
	maxWalkEntries = 16 << 20
	// maxWalkNotes bounds the problems one walk reports.
	maxWalkNotes = 8
	// maxSymlinks bounds symlink resolution, as Linux's 40.
	maxSymlinks = 40
	// maxSymlinkLen is MAXPATHLEN: no longer target is followed.
	maxSymlinkLen = 1024
)

// Walk visits every directory, regular file and symlink reachable from the
// root, depth first, each directory before its entries, with the runs of
// its data; a file with several hard links once, under its first path,
// and under each other path as a Link entry.
// Entries naming an inode its group's inode map says is free are stale and
// skipped. Unreadable directories and inodes are skipped and reported in
// a *fsys.PartialError.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	budget := f.newReadBudget()
	var buf []fsys.Run // reused: fn does not keep e.Runs
	w := fsys.TreeWalk[*inode]{
		Kind: "ufs2", Name: f.name, Root: rootIno,
		MaxDepth: maxWalkDepth, MaxEntries: maxWalkEntries, MaxNotes: maxWalkNotes,
		// Visit reads inode ino and gives its Entry to fn.
		Visit: func(p string, ino uint64, note func(error)) (*inode, bool, bool, error) {
			in, err := f.inode(uint32(ino))
			if err != nil {
				note(fmt.Errorf("%s: %w", p, err))
				return nil, false, false, nil
			}
			if !in.isDir() && !in.isReg() && !in.isSymlink() {
				return nil, false, false, nil
			}
			if f.isSnapshot(in) {
				note(fmt.Errorf("%s: snapshot file: its data is not read", p))
			}
			buf, err = f.runs(in, buf[:0], budget)
			if err != nil {
				note(fmt.Errorf("%s: %w", p, err))
			}
			e := fsys.Entry{Path: p, Mode: in.fileMode(), Size: in.size, Runs: buf}
			if in.isReg() {
				e.ID = [2]uint64{0, ino}
			}
			return in, true, in.isDir(), fn(e)
		},
		Entries: func(in *inode) ([]fsys.TreeEntry, error) {
			ents, err := f.entries(in, budget)
			return treeEntries(ents), err
		},
		InUse: func(ino uint64) bool {
			used, err := f.inodeAllocated(uint32(ino))
			return err == nil && used
		},
		Link: func(p string, ino uint64) error { return fn(fsys.LinkEntry(p, ino)) },
	}
	return w.Run(ctx)
}

// lookup resolves an absolute path to its inode, following symlinks
// (within the filesystem) up to 40 times; followLast says whether a
// symlink in the last component is followed.
func (f *FS) lookup(p string, followLast bool) (*inode, error) {
	budget := f.newReadBudget()
	l := fsys.TreeLookup[*inode]{
		Kind: "ufs2", Root: rootIno, MaxSteps: maxWalkDepth * 2, MaxSymlinks: maxSymlinks,
		Inode:     func(ino uint64) (*inode, error) { return f.inode(uint32(ino)) },
		IsDir:     (*inode).isDir,
		IsSymlink: (*inode).isSymlink,
		Entries: func(in *inode) ([]fsys.TreeEntry, error) {
			ents, err := f.entries(in, budget)
			return treeEntries(ents), err
		},
		ReadSymlink: func(in *inode) (string, error) { return f.readSymlink(in, budget) },
	}
	return l.Lookup(p, followLast)
}

// treeEntries gives a directory's entries as fsys's tree walks take them.
func treeEntries(ents []dirent) []fsys.TreeEntry {
	out := make([]fsys.TreeEntry, len(ents))
	for i, de := range ents {
		out[i] = fsys.TreeEntry{Name: de.name, Ino: uint64(de.ino)}
	}
	return out
}

// readSymlink returns a symlink's target: kept in the inode's block
// addresses when short, else in its data blocks.
func (f *FS) readSymlink(in *inode, budget *readBudget) (string, error) {
	if in.size <= 0 || in.size > maxSymlinkLen {
		return "", model.Errorf(f.name, in.off, "ufs2: symlink inode %d of %d bytes", in.ino, in.size)
	}
	if f.inlineSymlink(in) {
		return string(in.inline[:in.size]), nil
	}
	runs, err := f.runs(in, nil, budget)
	if err != nil {
		return "", err
	}
	b := make([]byte, in.size)
	if _, err := fsys.NewRunFile(f.r, in.size, runs).ReadAt(b, 0); err != nil {
		return "", model.Wrapf(err, f.name, in.off, "ufs2: symlink inode %d", in.ino)
	}
	return string(b), nil
}

// Open opens a regular file by absolute path, following symlinks inside
// the filesystem. Its bytes are read on demand; holes read as zeros.
func (f *FS) Open(p string) (fsys.File, error) {
	in, err := f.lookup(p, true)
	if err != nil {
		return nil, err
	}
	if !in.isReg() {
		return nil, fmt.Errorf("ufs2: %s: not a regular file", p)
	}
	if f.isSnapshot(in) {
		return nil, fmt.Errorf("ufs2: %s: snapshot file: %w", p, model.ErrUnsupported)
	}
	runs, err := f.runs(in, nil, f.newReadBudget())
	if err != nil {
		return nil, err
	}
	return fsys.NewRunFile(f.r, in.size, runs), nil
}

// ReadDir lists directory p (symlinks followed), without "." and "..".
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	in, err := f.lookup(p, true)
	if err != nil {
		return nil, err
	}
	ents, err := f.entries(in, f.newReadBudget())
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		if !fsys.ValidName(e.name) {
			continue
		}
		out = append(out, fsys.DirEntry{EntryName: e.name, EntryType: dtypeMode(e.dtype), Stat: func() (fs.FileInfo, error) {
			in, err := f.inode(e.ino)
			if err != nil {
				return nil, err
			}
			return fsys.FileInfo{FileName: e.name, FileSize: in.size, FileMode: in.fileMode()}, nil
		}})
	}
	return out, nil
}
