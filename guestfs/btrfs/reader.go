package btrfs

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// This file makes *FS an fsys.Reader: files are read by path as the guest
// sees them, from the subvolume it mounts as its root (see readerRoot),
// crossing into subvolumes where they are linked, following symlinks
// inside the filesystem.

// maxSymlinkTarget bounds a symlink's target.
const maxSymlinkTarget = 4096

// node is where a path component leads.
type node struct {
	tree   treeRoot
	subvol uint64
	ino    uint64
	ftype  uint8
}

// lookup resolves p to its inode, following every symlink on the way and,
// when it is one, the last component.
func (f *FS) lookup(ctx context.Context, p string) (node, error) {
	f.rootOnce.Do(func() { f.root, f.rootErr = f.readerRoot(ctx) })
	if f.rootErr != nil {
		return node{}, f.rootErr
	}
	root := f.root
	stack := []node{root}
	todo := strings.Split(p, "/")
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if cur.ftype != ftDir {
			return node{}, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		ents, err := f.listDir(ctx, cur.tree, cur.ino, nil)
		if err != nil {
			return node{}, fmt.Errorf("btrfs: %s: %s: %w", f.name, p, err)
		}
		var next *dirent
		for i := range ents {
			if ents[i].name == c {
				next = &ents[i]
				break
			}
		}
		if next == nil {
			return node{}, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		switch {
		case next.loc.typ == typeRootItem:
			ok, err := f.hasRootRef(ctx, cur.subvol, next.loc.obj, cur.ino, c)
			if err != nil || !ok {
				return node{}, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
			}
			t, d, err := f.findRoot(ctx, next.loc.obj)
			if err != nil {
				return node{}, fmt.Errorf("btrfs: %s: %s: subvolume %d: %w", f.name, p, next.loc.obj, err)
			}
			stack = append(stack, node{tree: t, subvol: next.loc.obj, ino: d, ftype: ftDir})
		case next.ftype == ftSymlink:
			if hops++; hops > maxSymlinks {
				return node{}, fmt.Errorf("btrfs: %s: %s: too many symlinks", f.name, p)
			}
			target, err := f.readLink(ctx, cur.tree, next.loc.obj)
			if err != nil {
				return node{}, fmt.Errorf("btrfs: %s: %s: %w", f.name, p, err)
			}
			if strings.HasPrefix(target, "/") {
				stack = []node{root}
			}
			todo = append(strings.Split(target, "/"), todo...)
		default:
			stack = append(stack, node{tree: cur.tree, subvol: cur.subvol, ino: next.loc.obj, ftype: next.ftype})
		}
	}
	return stack[len(stack)-1], nil
}

// Names of a top-level subvolume that distributions mount as the root
// filesystem: Fedora's "root", Ubuntu's and others' "@".
var rootSubvolumes = []string{"root", "@"}

// readerRoot is the directory the reader resolves absolute paths from:
// the default subvolume when one is set (what a mount without subvol=
// gives), else, when the top level has no /etc, its "root" or "@"
// subvolume that has one (Fedora and Ubuntu layouts mount that with
// subvol=), else the top level. The walk's paths stay those of the top
// level.
func (f *FS) readerRoot(ctx context.Context) (node, error) {
	top, dirid, err := f.findRoot(ctx, fsTreeID)
	if err != nil {
		return node{}, fmt.Errorf("btrfs: %s: top-level subvolume: %w", f.name, err)
	}
	subvol := func(id uint64) (node, bool) {
		t, d, err := f.findRoot(ctx, id)
		return node{tree: t, subvol: id, ino: d, ftype: ftDir}, err == nil
	}
	if id := f.defaultSubvolume(ctx); id != 0 && id != fsTreeID {
		if n, ok := subvol(id); ok {
			return n, nil
		}
	}
	root := node{tree: top, subvol: fsTreeID, ino: dirid, ftype: ftDir}
	hasEtc := func(n node) bool {
		ents, _ := f.listDir(ctx, n.tree, n.ino, nil)
		for _, e := range ents {
			if e.name == "etc" {
				return true
			}
		}
		return false
	}
	if hasEtc(root) {
		return root, nil
	}
	ents, _ := f.listDir(ctx, top, dirid, nil)
	for _, name := range rootSubvolumes {
		for _, e := range ents {
			if e.name != name || e.loc.typ != typeRootItem {
				continue
			}
			if ok, _ := f.hasRootRef(ctx, fsTreeID, e.loc.obj, dirid, name); !ok {
				continue
			}
			if n, ok := subvol(e.loc.obj); ok && hasEtc(n) {
				return n, nil
			}
		}
	}
	return root, nil
}

// defaultSubvolume returns the subvolume id the root tree's "default"
// directory item names (btrfs subvolume set-default), or 0.
func (f *FS) defaultSubvolume(ctx context.Context) uint64 {
	var id uint64
	lo, hi := key{obj: rootTreeDir, typ: typeDirItem}, key{obj: rootTreeDir, typ: typeDirItem, off: ^uint64(0)}
	f.iterate(ctx, f.rootTree, lo, hi, nil, func(it item) error {
		d := it.data
		if len(d) >= 30 {
			if nl := int(le.Uint16(d[27:])); 30+nl <= len(d) && string(d[30:30+nl]) == "default" {
				id = readKey(d).obj
				return errStop
			}
		}
		return nil
	})
	return id
}

func (f *FS) readLink(ctx context.Context, tree treeRoot, ino uint64) (string, error) {
	in, err := f.readInode(ctx, tree, ino, true, false, nil, nil)
	if err != nil {
		return "", err
	}
	if in.size > maxSymlinkTarget {
		return "", fmt.Errorf("symlink of %d bytes: %w", in.size, errCorrupt)
	}
	b := make([]byte, in.size)
	if _, err := fsys.NewRunFile(f.r, in.size, in.runs).ReadAt(b, 0); err != nil && len(b) > 0 {
		return "", fmt.Errorf("symlink: %w", err)
	}
	return string(b), nil
}

// Open opens a regular file by path. Its bytes are read on demand through
// its extents' first copies; a compressed extent is decoded whole (zlib,
// LZO, zstd) when the file reads a byte of it.
func (f *FS) Open(p string) (fsys.File, error) {
	ctx := context.Background()
	n, err := f.lookup(ctx, p)
	if err != nil {
		return nil, err
	}
	in, err := f.readInode(ctx, n.tree, n.ino, true, false, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("btrfs: %s: %s: %w", f.name, p, err)
	}
	if in.mode&0xF000 != 0x8000 {
		return nil, fmt.Errorf("btrfs: %s: not a regular file", p)
	}
	if len(in.refs) == 0 {
		return fsys.NewRunFile(f.r, in.size, in.runs), nil
	}
	plain := make([]fsys.Run, 0, len(in.runs))
	for _, r := range in.runs {
		if !r.Compressed {
			plain = append(plain, r)
		}
	}
	// In the tree's key order already, unless the tree is damaged.
	refs := slices.Clone(in.refs)
	slices.SortStableFunc(refs, func(a, b compressedRef) int { return cmp.Compare(a.fileOff, b.fileOff) })
	return &compressedFile{f: f, plain: fsys.NewRunFile(f.r, in.size, plain), refs: refs, lastRef: -1}, nil
}

// ReadDir lists directory p (symlinks followed), without "." and "..".
// A subvolume linked in p is listed as a directory.
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	ctx := context.Background()
	n, err := f.lookup(ctx, p)
	if err != nil {
		return nil, err
	}
	if n.ftype != ftDir {
		return nil, fmt.Errorf("btrfs: %s: not a directory", p)
	}
	ents, err := f.listDir(ctx, n.tree, n.ino, nil)
	if err != nil {
		return nil, fmt.Errorf("btrfs: %s: %s: %w", f.name, p, err)
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		var typ fs.FileMode
		switch {
		case e.loc.typ == typeRootItem || e.ftype == ftDir:
			typ = fs.ModeDir
		case e.ftype == ftSymlink:
			typ = fs.ModeSymlink
		case e.ftype == ftRegular:
		default:
			typ = fs.ModeIrregular
		}
		de := fsys.DirEntry{EntryName: e.name, EntryType: typ}
		if e.loc.typ == typeInodeItem {
			name, ino := e.name, e.loc.obj
			de.Stat = func() (fs.FileInfo, error) {
				in, err := f.readInode(ctx, n.tree, ino, false, false, nil, nil)
				if err != nil {
					return nil, err
				}
				return fsys.FileInfo{FileName: name, FileSize: in.size, FileMode: in.fileMode()}, nil
			}
		}
		out = append(out, de)
	}
	return out, nil
}

var (
	_ fsys.FS     = (*FS)(nil)
	_ fsys.Reader = (*FS)(nil)
)
