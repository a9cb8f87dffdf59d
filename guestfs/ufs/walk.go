package ufs

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

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
// its data; a file with several hard links once, under its first path.
// Entries naming an inode its group's inode map says is free are stale and
// skipped. Unreadable directories and inodes are skipped and reported in
// a *fsys.PartialError.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	var notes []string
	skipped := 0
	note := func(err error) {
		if skipped++; skipped <= maxWalkNotes {
			notes = append(notes, err.Error())
		}
	}
	budget := f.newReadBudget()
	var buf []fsys.Run // reused: fn does not keep e.Runs
	// entry reads inode ino and gives its Entry to fn.
	entry := func(p string, ino uint32) (*inode, error) {
		in, err := f.inode(ino)
		if err != nil {
			note(fmt.Errorf("%s: %w", p, err))
			return nil, nil
		}
		if !in.isDir() && !in.isReg() && !in.isSymlink() {
			return nil, nil
		}
		if f.isSnapshot(in) {
			note(fmt.Errorf("%s: snapshot file: its data is not read", p))
		}
		buf, err = f.runs(in, buf[:0], budget)
		if err != nil {
			note(fmt.Errorf("%s: %w", p, err))
		}
		return in, fn(fsys.Entry{Path: p, Mode: in.fileMode(), Size: in.size, Runs: buf})
	}
	root, err := entry("/", rootIno)
	if err != nil {
		return err
	}
	if root == nil || !root.isDir() {
		return model.Errorf(f.name, -1, "ufs2: root inode %d is not a readable directory", rootIno)
	}
	type frame struct {
		path  string
		in    *inode
		depth int
	}
	seen := map[uint32]bool{rootIno: true}
	stack := []frame{{"/", root, 0}}
	entries := 0
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := f.entries(fr.in, budget)
		if err != nil {
			note(fmt.Errorf("directory %q: %w", fr.path, err))
		}
		var subdirs []frame
		for _, de := range ents {
			if !fsys.ValidName(de.name) || seen[de.ino] {
				continue
			}
			if entries++; entries > maxWalkEntries {
				notes = append(notes, fmt.Sprintf("more than %d entries: walk stopped", maxWalkEntries))
				return &fsys.PartialError{Notes: notes}
			}
			p := fsys.Join(fr.path, de.name)
			if used, err := f.inodeAllocated(de.ino); err != nil || !used {
				note(fmt.Errorf("%s: entry names free or unreadable inode %d", p, de.ino))
				continue
			}
			seen[de.ino] = true
			in, err := entry(p, de.ino)
			if err != nil {
				return err
			}
			if in != nil && in.isDir() && fr.depth < maxWalkDepth {
				subdirs = append(subdirs, frame{p, in, fr.depth + 1})
			}
		}
		// Push in reverse so the walk visits subdirectories in entry order.
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	if skipped > maxWalkNotes {
		notes = append(notes, fmt.Sprintf("and %d more problems", skipped-maxWalkNotes))
	}
	if len(notes) > 0 {
		return &fsys.PartialError{Notes: notes}
	}
	return nil
}

// lookup resolves an absolute path to its inode, following symlinks
// (within the filesystem) up to 40 times; followLast says whether a
// symlink in the last component is followed.
func (f *FS) lookup(p string, followLast bool) (*inode, error) {
	budget := f.newReadBudget()
	links := 0
	cur, err := f.inode(rootIno)
	if err != nil {
		return nil, err
	}
	var stack []*inode // the directories above cur, for ".."
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for steps := 0; len(rest) > 0; steps++ {
		if steps > maxWalkDepth*2 {
			return nil, fmt.Errorf("ufs2: %s: path too deep", p)
		}
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
			continue
		}
		if !cur.isDir() {
			return nil, fmt.Errorf("ufs2: %s: not a directory", p)
		}
		ents, err := f.entries(cur, budget)
		if err != nil {
			return nil, err
		}
		var next *inode
		for _, e := range ents {
			if e.name == name {
				if next, err = f.inode(e.ino); err != nil {
					return nil, err
				}
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("ufs2: %s: %w", p, fs.ErrNotExist)
		}
		if next.isSymlink() && (len(rest) > 0 || followLast) {
			if links++; links > maxSymlinks {
				return nil, fmt.Errorf("ufs2: %s: too many symlinks", p)
			}
			target, err := f.readSymlink(next, budget)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(target, "/") && len(stack) > 0 {
				cur, stack = stack[0], nil // back to the root
			}
			rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
			continue
		}
		stack = append(stack, cur)
		cur = next
	}
	return cur, nil
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
