package xfs

import (
	"bytes"
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
	// maxSymlinkLen is XFS's symlink target limit.
	maxSymlinkLen = 1024
	// symlinkHeaderV5 is the header of each remote symlink block on v5.
	symlinkHeaderV5 = 56
)

// Walk visits every directory, regular file and symlink reachable from the
// root, depth first, each directory before its entries, with the runs of
// its data fork; a file with several hard links once, under its first
// path. Entries whose inode the inode B+trees record as free are stale and
// skipped. Unreadable directories and inodes are skipped and reported in a
// *fsys.PartialError.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	imap, notes := f.readInodeMap()
	skipped := 0
	note := func(err error) {
		if skipped++; skipped <= maxWalkNotes {
			notes = append(notes, err.Error())
		}
	}
	d := f.newDirReader()
	var cache inodeCache
	var buf []fsys.Run // reused: fn does not keep e.Runs
	// entry reads inode ino and gives its Entry to fn.
	entry := func(p string, ino uint64) (*inode, error) {
		in, err := f.inode(ino, &cache)
		if err != nil {
			note(fmt.Errorf("%s: %w", p, err))
			return nil, nil
		}
		if !in.isDir() && !in.isReg() && !in.isSymlink() {
			return nil, nil
		}
		e := fsys.Entry{Path: p, Mode: in.fileMode(), Size: in.size}
		if in.flags&diFlagRealtime == 0 {
			exts, err := f.extents(in)
			if err != nil {
				note(fmt.Errorf("%s: %w", p, err))
			}
			buf = f.runs(exts, buf[:0])
			e.Runs = buf
		}
		return in, fn(e)
	}
	root, err := entry("/", f.sb.RootIno)
	if err != nil {
		return err
	}
	if root == nil || !root.isDir() {
		return model.Errorf(f.name, -1, "xfs: root inode %d is not a readable directory", f.sb.RootIno)
	}
	type frame struct {
		path  string
		in    *inode
		depth int
	}
	seen := map[uint64]bool{f.sb.RootIno: true}
	stack := []frame{{"/", root, 0}}
	entries := 0
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := d.entries(fr.in)
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
			if !imap.allocated(f, de.ino) {
				note(fmt.Errorf("%s: entry names free inode %d", fsys.Join(fr.path, de.name), de.ino))
				continue
			}
			seen[de.ino] = true
			p := fsys.Join(fr.path, de.name)
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
	d := f.newDirReader()
	links := 0
	cur, err := f.inode(f.sb.RootIno, nil)
	if err != nil {
		return nil, err
	}
	var stack []*inode // the directories above cur, for ".."
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for steps := 0; len(rest) > 0; steps++ {
		if steps > maxWalkDepth*2 {
			return nil, fmt.Errorf("xfs: %s: path too deep", p)
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
			return nil, fmt.Errorf("xfs: %s: not a directory", p)
		}
		ents, err := d.entries(cur)
		if err != nil {
			return nil, err
		}
		var next *inode
		for _, e := range ents {
			if e.name == name {
				if next, err = f.inode(e.ino, nil); err != nil {
					return nil, err
				}
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("xfs: %s: %w", p, fs.ErrNotExist)
		}
		if next.isSymlink() && (len(rest) > 0 || followLast) {
			if links++; links > maxSymlinks {
				return nil, fmt.Errorf("xfs: %s: too many symlinks", p)
			}
			target, err := f.readSymlink(next)
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
