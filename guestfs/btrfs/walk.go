package btrfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// Directory entry file types (btrfs_dir_item.type).
const (
	ftRegular = 1
	ftDir     = 2
	ftSymlink = 7
)

// EXTENT_DATA layout (struct btrfs_file_extent_item).
const (
	fileExtentHeader = 21 // generation, ram_bytes, compression, encryption, other_encoding, type
	fileExtentFull   = 53
	extentInline     = 0
	extentPrealloc   = 2
)

// dirent is one DIR_INDEX item: a name in a directory, pointing to an
// inode of the same tree or (ROOT_ITEM) to another subvolume.
type dirent struct {
	name  string
	loc   key
	ftype uint8
}

// listDir returns the DIR_INDEX entries of directory ino of tree, in index
// order (creation order). Hostile names are dropped.
func (f *FS) listDir(ctx context.Context, tree treeRoot, ino uint64, b *budget) ([]dirent, error) {
	var out []dirent
	lo, hi := key{obj: ino, typ: typeDirIndex}, key{obj: ino, typ: typeDirIndex, off: ^uint64(0)}
	err := f.iterate(ctx, tree, lo, hi, b, func(it item) error {
		d := it.data
		if len(d) < 30 {
			return nil
		}
		nl := int(le.Uint16(d[27:]))
		if 30+nl > len(d) {
			return nil
		}
		name := string(d[30 : 30+nl])
		if !fsys.ValidName(name) {
			return nil
		}
		if len(out) >= maxEntries {
			return fmt.Errorf("directory %d: more than %d entries: %w", ino, maxEntries, errCorrupt)
		}
		out = append(out, dirent{name: name, loc: readKey(d), ftype: d[29]})
		return nil
	})
	return out, err
}

// inode is what one inode's items say: its mode and size, and, for files
// and symlinks, the device runs of its data.
type inode struct {
	mode uint32
	size int64
	runs []fsys.Run
	// compressed counts the runs whose bytes are compressed.
	compressed int
	// refs are the file's compressed extent items, each as the file reads
	// it (runs give a shared compressed extent once; a file may use parts
	// of one extent at several offsets).
	refs []compressedRef
}

// compressedRef is one compressed EXTENT_DATA item: file bytes
// [fileOff, fileOff+n) are the extent's decoded bytes from skip on. The
// stored stream is len bytes at filesystem offset off (a tree leaf's
// bytes for an inline extent); off is -1 when its bytes are not in one
// piece on this device (striped), which cannot be read.
type compressedRef struct {
	fileOff, n, skip int64
	codec            string
	off, len         int64
}

func (in *inode) fileMode() fs.FileMode {
	m := fs.FileMode(in.mode & 0o777)
	switch in.mode & 0xF000 {
	case 0x4000:
		m |= fs.ModeDir
	case 0xA000:
		m |= fs.ModeSymlink
	case 0x8000:
	default:
		m |= fs.ModeIrregular
	}
	return m
}

// readInode reads the INODE_ITEM of ino and, unless dataToo is false, its
// EXTENT_DATA items, mapped to device runs: every copy when allCopies is
// set (DUP metadata holds inline data twice), else the first. runs is
// appended to buf[:0].
func (f *FS) readInode(ctx context.Context, tree treeRoot, ino uint64, dataToo, allCopies bool, b *budget, buf []fsys.Run) (*inode, error) {
	in := &inode{runs: buf[:0]}
	found := false
	hiType := uint8(typeInodeItem)
	if dataToo {
		hiType = typeExtentData
	}
	lo, hi := key{obj: ino, typ: typeInodeItem}, key{obj: ino, typ: hiType, off: ^uint64(0)}
	var seenDisk map[uint64]bool // compressed extents already given
	var mapErr error
	err := f.iterate(ctx, tree, lo, hi, b, func(it item) error {
		switch it.k.typ {
		case typeInodeItem:
			if len(it.data) < 160 {
				return fmt.Errorf("inode %d: item of %d bytes: %w", ino, len(it.data), errCorrupt)
			}
			in.size = int64(le.Uint64(it.data[16:]))
			in.mode = le.Uint32(it.data[52:])
			if in.size < 0 {
				return fmt.Errorf("inode %d: size %d: %w", ino, in.size, errCorrupt)
			}
			found = true
		case typeExtentData:
			if err := f.addExtent(in, it, allCopies, &seenDisk); err != nil && mapErr == nil {
				mapErr = fmt.Errorf("inode %d, file offset %d: %w", ino, it.k.off, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("inode %d: no inode item: %w", ino, errCorrupt)
	}
	return in, mapErr
}

// addExtent maps one EXTENT_DATA item to runs.
func (f *FS) addExtent(in *inode, it item, allCopies bool, seenDisk *map[uint64]bool) error {
	d := it.data
	if len(in.runs) >= maxFileRuns {
		return fmt.Errorf("more than %d runs: %w", maxFileRuns, errCorrupt)
	}
	if len(d) < fileExtentHeader {
		return fmt.Errorf("extent item of %d bytes: %w", len(d), errCorrupt)
	}
	if int64(it.k.off) < 0 {
		return fmt.Errorf("file offset %d: %w", it.k.off, errCorrupt)
	}
	compressed := d[16] != 0
	codec := compressionCodec(d[16])
	if d[20] == extentInline {
		n := uint64(len(d) - fileExtentHeader)
		if n == 0 {
			return nil
		}
		if compressed {
			in.compressed++
		}
		// The inline bytes sit in the leaf: map the leaf's copies.
		start := uint64(it.off + fileExtentHeader)
		if compressed {
			ref := compressedRef{fileOff: int64(it.k.off), n: int64(le.Uint64(d[8:])), codec: codec, off: -1, len: int64(n)}
			f.chunks.mapRange(it.leaf, uint64(f.nodeSize), false, func(p piece) {
				if ref.off < 0 && p.length == uint64(f.nodeSize) {
					ref.off = int64(p.phys + start)
				}
			})
			f.addRef(in, ref, true)
		}
		return f.chunks.mapRange(it.leaf, uint64(f.nodeSize), allCopies, func(p piece) {
			in.runs = append(in.runs, fsys.Run{Off: int64(p.phys + start), Len: int64(n), FileOff: int64(it.k.off), Inline: true, Compressed: compressed, Codec: codec})
		})
	}
	if len(d) < fileExtentFull {
		return fmt.Errorf("extent item of %d bytes: %w", len(d), errCorrupt)
	}
	diskBytenr, diskLen := le.Uint64(d[21:]), le.Uint64(d[29:])
	offset, n := le.Uint64(d[37:]), le.Uint64(d[45:])
	if diskBytenr == 0 || n == 0 {
		return nil // a hole
	}
	unwritten := d[20] == extentPrealloc
	logical, fileOff := diskBytenr+offset, int64(it.k.off)
	if compressed {
		ref := compressedRef{fileOff: int64(it.k.off), n: int64(n), skip: int64(offset), codec: codec, off: -1, len: int64(diskLen)}
		f.chunks.mapRange(diskBytenr, diskLen, false, func(p piece) {
			if ref.off < 0 && p.logical == diskBytenr && p.length == diskLen {
				ref.off = int64(p.phys)
			}
		})
		f.addRef(in, ref, false)
		// The whole disk extent is the compressed stream; several file
		// extents may share it. Give it once, at its first file offset.
		if *seenDisk == nil {
			*seenDisk = map[uint64]bool{}
		}
		if (*seenDisk)[diskBytenr] {
			return nil
		}
		(*seenDisk)[diskBytenr] = true
		in.compressed++
		logical, n = diskBytenr, diskLen
		fileOff = max(0, fileOff-int64(offset))
	}
	if n > uint64(f.size) || logical+n < logical {
		return fmt.Errorf("extent of %d bytes: %w", n, errCorrupt)
	}
	return f.chunks.mapRange(logical, n, allCopies, func(p piece) {
		in.runs = append(in.runs, fsys.Run{
			Off: int64(p.phys), Len: int64(p.length), FileOff: fileOff + int64(p.logical-logical),
			Unwritten: unwritten, Compressed: compressed, Codec: codec,
		})
	})
}

// addRef keeps a compressed extent item for reading, within the bounds of
// what btrfs writes: an extent holds at most 128 KiB of a file, stored in
// at most as much; a regular extent's item covers whole sectors of the
// file, and an inline one less than a sector at its start. Anything else
// is corrupt, and left unreadable: the bounds keep a read of n bytes to at
// most n/4096+2 extents to decode, whatever a hostile tree says.
func (f *FS) addRef(in *inode, r compressedRef, inline bool) {
	bad := r.len <= 0 || r.len > maxExtentBytes || r.n <= 0 || r.skip < 0 || r.skip+r.n > maxExtentBytes || r.fileOff < 0
	if inline {
		bad = bad || r.fileOff != 0 || r.n > Sector
	} else {
		bad = bad || r.fileOff%Sector != 0 || r.n%Sector != 0 || r.skip%Sector != 0
	}
	if bad {
		r.off = -1
	}
	if len(in.refs) < maxFileRuns {
		in.refs = append(in.refs, r)
	}
}

// compressionCodec names an extent's compression byte (btrfs_compression_type).
func compressionCodec(b byte) string {
	switch b {
	case 1:
		return "zlib"
	case 2:
		return "lzo"
	case 3:
		return "zstd"
	}
	return ""
}

// dirJob is a directory whose entries the walk has yet to visit.
type dirJob struct {
	tree   treeRoot
	subvol uint64
	ino    uint64
	path   string
	depth  int
}

// maxWalkNotes bounds the problems one walk reports.
const maxWalkNotes = 8

// Walk visits every directory, regular file and symlink of the top-level
// subvolume (id 5) and, under the paths where they are linked, of every
// other subvolume and snapshot, each directory before its entries, a file
// with several hard links once with its runs, and under each other name
// as a Link entry. Runs are device offsets of every copy
// (both copies of DUP metadata for inline data). Unreadable parts are
// skipped and reported in a *fsys.PartialError.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	w := walker{f: f, ctx: ctx, fn: fn, seen: map[[2]uint64]bool{}, subvols: map[uint64]bool{fsTreeID: true},
		b: &budget{left: walkBudget}}
	tree, dirid, err := f.findRoot(ctx, fsTreeID)
	if err != nil {
		return fmt.Errorf("btrfs: %s: top-level subvolume: %w", f.name, err)
	}
	if err := w.visitDir(tree, fsTreeID, dirid, "/", 0); err != nil {
		return err
	}
	for len(w.stack) > 0 {
		j := w.stack[len(w.stack)-1]
		w.stack = w.stack[:len(w.stack)-1]
		ents, err := f.listDir(ctx, j.tree, j.ino, w.b)
		if err != nil {
			if err := w.problem(fmt.Errorf("%s: %w", j.path, err)); err != nil {
				return err
			}
		}
		for _, d := range ents {
			if err := w.child(j, d); err != nil {
				return err
			}
		}
	}
	if w.skipped > maxWalkNotes {
		w.notes = append(w.notes, fmt.Sprintf("and %d more unreadable entries", w.skipped-maxWalkNotes))
	}
	if len(w.notes) > 0 {
		return &fsys.PartialError{Notes: w.notes}
	}
	return nil
}

type walker struct {
	f       *FS
	ctx     context.Context
	fn      func(fsys.Entry) error
	seen    map[[2]uint64]bool // (subvolume, inode) already given
	subvols map[uint64]bool
	stack   []dirJob
	b       *budget
	buf     []fsys.Run
	entries int
	notes   []string
	skipped int
}

// problem records a skipped part; cancellation and an exhausted budget end
// the walk.
func (w *walker) problem(err error) error {
	if w.ctx.Err() != nil {
		return w.ctx.Err()
	}
	if errors.Is(err, errBudget) {
		return fmt.Errorf("btrfs: %s: %w", w.f.name, err)
	}
	if w.skipped++; w.skipped <= maxWalkNotes {
		w.notes = append(w.notes, err.Error())
	}
	return nil
}

// child visits directory entry d of directory j.
func (w *walker) child(j dirJob, d dirent) error {
	p := fsys.Join(j.path, d.name)
	switch {
	case d.loc.typ == typeRootItem:
		id := d.loc.obj
		if w.subvols[id] {
			return nil
		}
		// A snapshot keeps the entries of the subvolumes nested in its
		// source, but only a ROOT_REF from this subvolume makes one a
		// child here; without it the guest sees an empty directory.
		if ok, err := w.f.hasRootRef(w.ctx, j.subvol, id, j.ino, d.name); err != nil || !ok {
			if err != nil {
				return w.problem(fmt.Errorf("%s: subvolume %d: %w", p, id, err))
			}
			return nil
		}
		if len(w.subvols) >= maxSubvolumes {
			return w.problem(fmt.Errorf("%s: more than %d subvolumes: not walked", p, maxSubvolumes))
		}
		w.subvols[id] = true
		tree, dirid, err := w.f.findRoot(w.ctx, id)
		if err != nil {
			return w.problem(fmt.Errorf("%s: subvolume %d: %w", p, id, err))
		}
		return w.visitDir(tree, id, dirid, p, j.depth+1)
	case d.loc.typ != typeInodeItem:
		return nil
	case d.ftype == ftDir:
		return w.visitDir(j.tree, j.subvol, d.loc.obj, p, j.depth+1)
	case d.ftype == ftRegular || d.ftype == ftSymlink:
		id := [2]uint64{j.subvol, d.loc.obj}
		if w.seen[id] {
			if d.ftype == ftRegular {
				return w.emit(fsys.Entry{Path: p, Mode: 0o644, ID: id, Link: true})
			}
			return nil
		}
		w.seen[id] = true
		in, err := w.f.readInode(w.ctx, j.tree, d.loc.obj, true, true, w.b, w.buf)
		if in == nil {
			return w.problem(fmt.Errorf("%s: %w", p, err))
		}
		w.buf = in.runs
		if err != nil {
			if err := w.problem(fmt.Errorf("%s: %w", p, err)); err != nil {
				return err
			}
		}
		e := fsys.Entry{Path: p, Mode: in.fileMode(), Size: in.size, Runs: in.runs}
		if e.Mode.IsRegular() {
			e.ID = id
		}
		return w.emit(e)
	}
	return nil
}

// visitDir gives directory ino and queues its entries.
func (w *walker) visitDir(tree treeRoot, subvol, ino uint64, p string, depth int) error {
	id := [2]uint64{subvol, ino}
	if w.seen[id] {
		return nil // a directory has one link: this is a cycle
	}
	w.seen[id] = true
	if depth > maxDirDepth {
		return w.problem(fmt.Errorf("%s: deeper than %d directories: not walked", p, maxDirDepth))
	}
	in, err := w.f.readInode(w.ctx, tree, ino, false, false, w.b, nil)
	if err != nil {
		return w.problem(fmt.Errorf("%s: %w", p, err))
	}
	if in.mode&0xF000 != 0x4000 {
		return w.problem(fmt.Errorf("%s: inode %d is not a directory: %w", p, ino, errCorrupt))
	}
	if err := w.emit(fsys.Entry{Path: p, Mode: in.fileMode(), Size: in.size}); err != nil {
		return err
	}
	w.stack = append(w.stack, dirJob{tree: tree, subvol: subvol, ino: ino, path: p, depth: depth})
	return nil
}

func (w *walker) emit(e fsys.Entry) error {
	if w.entries++; w.entries > maxEntries {
		return &fsys.PartialError{Notes: append(w.notes, fmt.Sprintf("more than %d entries: walk stopped", maxEntries))}
	}
	return w.fn(e)
}
