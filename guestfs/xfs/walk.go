package xfs

import (
	"bytes"
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
	// maxSymlinkLen is XFS's symlink target limit.
	maxSymlinkLen = 1024
	// symlinkHeaderV5 is the header of each remote symlink block on v5.
	symlinkHeaderV5 = 56
)

// Walk visits every directory, regular file and symlink reachable from the
// root, depth first, each directory before its entries, with the runs of
// its data fork; a file with several hard links once, under its first
// path, and under each other path as a Link entry. Entries whose inode the inode B+trees record as free are stale and
// skipped. Unreadable directories and inodes are skipped and reported in a
// *fsys.PartialError.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	imap, notes := f.readInodeMap()
	d := f.newDirReader()
	var cache inodeCache
	var buf []fsys.Run // reused: fn does not keep e.Runs
	w := fsys.TreeWalk[*inode]{
		Kind: "xfs", Name: f.name, Root: f.sb.RootIno, Notes: notes,
		MaxDepth: maxWalkDepth, MaxEntries: maxWalkEntries, MaxNotes: maxWalkNotes,
		// Visit reads inode ino and gives its Entry to fn.
		Visit: func(p string, ino uint64, note func(error)) (*inode, bool, bool, error) {
			in, err := f.inode(ino, &cache)
			if err != nil {
				note(fmt.Errorf("%s: %w", p, err))
				return nil, false, false, nil
			}
			if !in.isDir() && !in.isReg() && !in.isSymlink() {
				return nil, false, false, nil
			}
			e := fsys.Entry{Path: p, Mode: in.fileMode(), Size: in.size}
			if in.isReg() {
				e.ID = [2]uint64{0, ino}
			}
			if in.flags&diFlagRealtime == 0 {
				exts, err := f.extentsWithin(in, d.bmbt)
				if err != nil {
					note(fmt.Errorf("%s: %w", p, err))
				}
				buf = f.runs(exts, buf[:0])
				e.Runs = buf
			}
			return in, true, in.isDir(), fn(e)
		},
		Entries: func(in *inode) ([]fsys.TreeEntry, error) {
			ents, err := d.entries(in)
			return treeEntries(ents), err
		},
		InUse: func(ino uint64) bool { return imap.allocated(f, ino) },
		Link:  func(p string, ino uint64) error { return fn(fsys.LinkEntry(p, ino)) },
	}
	err := w.Run(ctx)
	if pe, ok := err.(*fsys.PartialError); ok && d.bmbt.left == 0 {
		// First, so that a shortened note still says it.
		pe.Notes = append([]string{fmt.Sprintf("xfs: extent B+tree blocks shared between inodes: the walk read its budget of %d (twice the filesystem's blocks), and the files and directories after were not mapped", d.bmbt.total)}, pe.Notes...)
	}
	return err
}

// lookup resolves an absolute path to its inode, following symlinks
// (within the filesystem) up to 40 times; followLast says whether a
// symlink in the last component is followed.
func (f *FS) lookup(p string, followLast bool) (*inode, error) {
	d := f.newDirReader()
	l := fsys.TreeLookup[*inode]{
		Kind: "xfs", Root: f.sb.RootIno, MaxSteps: maxWalkDepth * 2, MaxSymlinks: maxSymlinks,
		Inode:     func(ino uint64) (*inode, error) { return f.inode(ino, nil) },
		IsDir:     (*inode).isDir,
		IsSymlink: (*inode).isSymlink,
		Entries: func(in *inode) ([]fsys.TreeEntry, error) {
			ents, err := d.entries(in)
			return treeEntries(ents), err
		},
		ReadSymlink: f.readSymlink,
	}
	return l.Lookup(p, followLast)
}

// treeEntries gives a directory's entries as fsys's tree walks take them.
func treeEntries(ents []dirent) []fsys.TreeEntry {
	out := make([]fsys.TreeEntry, len(ents))
	for i, de := range ents {
		out[i] = fsys.TreeEntry{Name: de.name, Ino: de.ino}
	}
	return out
}

// readSymlink returns a symlink's target: kept in the inode (local), or in
// blocks (remote, each with a header on v5).
func (f *FS) readSymlink(in *inode) (string, error) {
	if in.size <= 0 || in.size > maxSymlinkLen {
		return "", model.Errorf(f.name, in.off, "xfs: symlink inode %d of %d bytes", in.ino, in.size)
	}
	if in.format == fmtLocal {
		if in.size > int64(len(in.fork)) {
			return "", model.Errorf(f.name, in.off, "xfs: symlink inode %d: %d bytes in a %d-byte fork", in.ino, in.size, len(in.fork))
		}
		return string(in.fork[:in.size]), nil
	}
	exts, err := f.extents(in)
	if err != nil {
		return "", err
	}
	var out []byte
	blk := make([]byte, f.sb.BlockSize)
	for _, e := range exts {
		for i := uint64(0); i < e.n && int64(len(out)) < in.size; i++ {
			off, _ := f.fsbOff(e.fsb+i, 1)
			if err := f.read(blk, off); err != nil {
				return "", err
			}
			data := blk
			if f.crc() {
				if string(blk[:4]) != "XSLM" {
					return "", model.Errorf(f.name, off, "xfs: symlink inode %d: bad block magic %q", in.ino, blk[:4])
				}
				data = blk[symlinkHeaderV5:]
			}
			out = append(out, data...)
		}
	}
	if int64(len(out)) < in.size {
		return "", model.Errorf(f.name, in.off, "xfs: symlink inode %d: %d of %d bytes mapped", in.ino, len(out), in.size)
	}
	return string(bytes.TrimRight(out[:in.size], "\x00")), nil
}

// Open opens a regular file by absolute path, following symlinks inside
// the filesystem. Its bytes are read on demand.
func (f *FS) Open(p string) (fsys.File, error) {
	in, err := f.lookup(p, true)
	if err != nil {
		return nil, err
	}
	if !in.isReg() {
		return nil, fmt.Errorf("xfs: %s: not a regular file", p)
	}
	if in.flags&diFlagRealtime != 0 {
		return nil, fmt.Errorf("xfs: %s: on the realtime device: %w", p, model.ErrUnsupported)
	}
	exts, err := f.extents(in)
	if err != nil {
		return nil, err
	}
	return fsys.NewRunFile(f.r, in.size, f.runs(exts, nil)), nil
}

// ReadDir lists directory p (symlinks followed), without "." and "..".
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	in, err := f.lookup(p, true)
	if err != nil {
		return nil, err
	}
	ents, err := f.newDirReader().entries(in)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		if !fsys.ValidName(e.name) {
			continue
		}
		typ := ftypeMode(e.ftype)
		if !f.hasFType() {
			if in, err := f.inode(e.ino, nil); err == nil {
				typ = in.fileMode().Type()
			}
		}
		out = append(out, fsys.DirEntry{EntryName: e.name, EntryType: typ, Stat: func() (fs.FileInfo, error) {
			in, err := f.inode(e.ino, nil)
			if err != nil {
				return nil, err
			}
			return fsys.FileInfo{FileName: e.name, FileSize: in.size, FileMode: in.fileMode()}, nil
		}})
	}
	return out, nil
}
