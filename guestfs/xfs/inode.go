package xfs

import (
	"fmt"
	"io/fs"
	"math"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	inodeMagic = "IN"

	// Inode data fork formats.
	fmtDev     = 0
	fmtLocal   = 1
	fmtExtents = 2
	fmtBtree   = 3

	// di_flags.
	diFlagRealtime = 0x1

	coreSizeV2 = 100
	coreSizeV3 = 176

	extentLen = 16 // one bmbt record

	// Bounds for hostile input.
	maxBmbtLevels = 10
	// maxExtentsPerInode bounds one inode's extent list: a million extents
	// is far beyond any real file and keeps hostile trees from eating
	// memory.
	maxExtentsPerInode = 1 << 20
	// maxBmbtBlocks bounds the B+tree blocks read for one inode's extents.
	maxBmbtBlocks = 1 << 16
)

// inode is the part of an on-disk inode the reader uses.
type inode struct {
	ino      uint64
	off      int64 // byte offset of the on-disk inode
	mode     uint16
	format   uint8
	size     int64
	nextents uint64
	flags    uint16
	fork     []byte // the data fork
}

func (in *inode) isDir() bool     { return in.mode&0xF000 == 0x4000 }
func (in *inode) isReg() bool     { return in.mode&0xF000 == 0x8000 }
func (in *inode) isSymlink() bool { return in.mode&0xF000 == 0xA000 }

// fileMode converts di_mode to an fs.FileMode.
func (in *inode) fileMode() fs.FileMode { return fsys.UnixMode(in.mode) }

// inodeOff is the byte offset of inode ino, if the number lies inside the
// filesystem: AG number, AG block and index in the block.
func (f *FS) inodeOff(ino uint64) (int64, bool) {
	agShift := uint(f.sb.AGBlkLog) + uint(f.sb.InoPBLog)
	ag := ino >> agShift
	agino := ino & (1<<agShift - 1)
	agbno := agino >> f.sb.InoPBLog
	idx := agino & (1<<f.sb.InoPBLog - 1)
	if ag >= uint64(f.sb.AGCount) || agbno >= uint64(f.agfs[ag].length) {
		return 0, false
	}
	return f.agOff(uint32(ag)) + int64(agbno)*f.sb.BlockSize + int64(idx)*f.sb.InodeSize, true
}

// inodeCache keeps the last block of inodes read, so that a walk reading
// the inodes of one chunk in turn reads each block once. It belongs to one
// walk or lookup: FS itself holds no mutable state.
type inodeCache struct {
	off int64
	buf []byte
}

// inode reads inode ino (through c, which may be nil).
func (f *FS) inode(ino uint64, c *inodeCache) (*inode, error) {
	off, ok := f.inodeOff(ino)
	if !ok {
		return nil, model.Errorf(f.name, -1, "xfs: inode %d outside the filesystem", ino)
	}
	var raw []byte
	if c != nil {
		blk := off - off%f.sb.BlockSize
		if c.buf == nil || c.off != blk {
			if c.buf == nil {
				c.buf = make([]byte, f.sb.BlockSize)
			}
			c.off = -1
			if err := f.read(c.buf, blk); err != nil {
				return nil, fmt.Errorf("xfs: inode %d: %w", ino, err)
			}
			c.off = blk
		}
		raw = make([]byte, f.sb.InodeSize)
		copy(raw, c.buf[off-blk:])
	} else {
		raw = make([]byte, f.sb.InodeSize)
		if err := f.read(raw, off); err != nil {
			return nil, fmt.Errorf("xfs: inode %d: %w", ino, err)
		}
	}
	return f.parseInode(ino, off, raw)
}

func (f *FS) parseInode(ino uint64, off int64, raw []byte) (*inode, error) {
	bad := func(format string, args ...any) error {
		return model.Errorf(f.name, off, "xfs: inode %d: "+format, append([]any{ino}, args...)...)
	}
	if string(raw[:2]) != inodeMagic {
		return nil, bad("bad magic %q", raw[:2])
	}
	version := raw[0x04]
	in := &inode{
		ino:      ino,
		off:      off,
		mode:     be.Uint16(raw[0x02:]),
		format:   raw[0x05],
		size:     int64(be.Uint64(raw[0x38:])),
		nextents: uint64(be.Uint32(raw[0x4C:])),
		flags:    be.Uint16(raw[0x5A:]),
	}
	core := coreSizeV2
	switch {
	case version == 3:
		core = coreSizeV3
		if got := be.Uint64(raw[0x98:]); got != ino {
			return nil, bad("records inode number %d", got)
		}
		if f.sb.Incompat&incompatNRExt64 != 0 && be.Uint64(raw[0x78:])&(1<<4) != 0 { // XFS_DIFLAG2_NREXT64
			in.nextents = be.Uint64(raw[0x18:])
		}
	case version == 1 || version == 2:
		if f.sb.Version == 5 {
			return nil, bad("version %d on a v5 filesystem", version)
		}
	default:
		return nil, bad("version %d", version)
	}
	if in.size < 0 {
		return nil, bad("size %d", in.size)
	}
	forkLen := len(raw) - core
	if fo := int(raw[0x52]) * 8; fo != 0 {
		if fo > forkLen {
			return nil, bad("attribute fork offset %d", fo)
		}
		forkLen = fo
	}
	in.fork = raw[core : core+forkLen]
	if in.format > fmtBtree {
		return nil, bad("data fork format %d", in.format)
	}
	return in, nil
}

// extent maps n filesystem blocks from file block fileOff to filesystem
// block fsb. Unwritten extents are preallocated: the guest reads zeros.
type extent struct {
	fileOff   uint64
	fsb       uint64
	n         uint64
	unwritten bool
}

// unpackExtent decodes a 128-bit bmbt record: the unwritten flag, 54 bits
// of file offset, 52 bits of block number and 21 bits of length.
func unpackExtent(b []byte) extent {
	l0, l1 := be.Uint64(b), be.Uint64(b[8:])
	return extent{
		unwritten: l0>>63 != 0,
		fileOff:   (l0 & (1<<63 - 1)) >> 9,
		fsb:       (l0&(1<<9-1))<<43 | l1>>21,
		n:         l1 & (1<<21 - 1),
	}
}

// extentWalker collects one inode's extents under budgets.
type extentWalker struct {
	f      *FS
	in     *inode
	out    []extent
	blocks uint64 // B+tree blocks read
	mapped uint64 // filesystem blocks mapped
	walk   *bmbtBudget
}

// bmbtBudget bounds the extent B+tree blocks that one walk reads over all
// its inodes. In a real filesystem each belongs to one inode, and a walk
// reads a directory's twice (for its entries, then for its runs), so
// twice the block count covers any real walk. Inodes that share one
// hostile tree stop here, instead of each costing the per-inode cap.
type bmbtBudget struct{ left, total uint64 }

func (f *FS) newBmbtBudget() *bmbtBudget {
	return &bmbtBudget{left: 2 * f.sb.DBlocks, total: 2 * f.sb.DBlocks}
}

// extents returns the data fork's extents in file order. Local and device
// forks have none.
func (f *FS) extents(in *inode) ([]extent, error) { return f.extentsWithin(in, nil) }

// extentsWithin is extents, reading B+tree blocks within walk's budget
// (nil: only the per-inode cap).
func (f *FS) extentsWithin(in *inode, walk *bmbtBudget) ([]extent, error) {
	w := extentWalker{f: f, in: in, walk: walk}
	switch in.format {
	case fmtExtents:
		if in.nextents > uint64(len(in.fork)/extentLen) {
			return nil, model.Errorf(f.name, in.off, "xfs: inode %d: %d extents do not fit its %d-byte fork", in.ino, in.nextents, len(in.fork))
		}
		for i := uint64(0); i < in.nextents; i++ {
			if err := w.add(unpackExtent(in.fork[i*extentLen:])); err != nil {
				return nil, err
			}
		}
	case fmtBtree:
		if err := w.root(); err != nil {
			return nil, err
		}
	}
	return w.out, nil
}

func (w *extentWalker) add(e extent) error {
	f := w.f
	if e.n == 0 {
		return nil
	}
	if e.fileOff+e.n > uint64(math.MaxInt64/f.sb.BlockSize) {
		return model.Errorf(f.name, w.in.off, "xfs: inode %d maps file block %d", w.in.ino, e.fileOff)
	}
	if _, ok := f.fsbOff(e.fsb, e.n); !ok {
		return model.Errorf(f.name, w.in.off, "xfs: inode %d maps blocks %d+%d outside the filesystem", w.in.ino, e.fsb, e.n)
	}
	if n := len(w.out); n > 0 && e.fileOff < w.out[n-1].fileOff+w.out[n-1].n {
		return model.Errorf(f.name, w.in.off, "xfs: inode %d: extents out of order at file block %d", w.in.ino, e.fileOff)
	}
	// No real file maps more blocks than the filesystem has; a hostile
	// tree that reuses the same blocks stops here.
	w.mapped += e.n
	if w.mapped > f.sb.DBlocks {
		return model.Errorf(f.name, w.in.off, "xfs: inode %d maps more blocks than the filesystem has", w.in.ino)
	}
	if len(w.out) >= maxExtentsPerInode {
		return model.Errorf(f.name, w.in.off, "xfs: inode %d has more than %d extents", w.in.ino, maxExtentsPerInode)
	}
	w.out = append(w.out, e)
	return nil
}

// root walks a B+tree-format fork: the root node (bmdr) in the inode holds
// level, record count, keys and block pointers.
func (w *extentWalker) root() error {
	f, in := w.f, w.in
	b := in.fork
	if len(b) < 4 {
		return model.Errorf(f.name, in.off, "xfs: inode %d: B+tree fork of %d bytes", in.ino, len(b))
	}
	level, numrecs := int(be.Uint16(b)), int(be.Uint16(b[2:]))
	maxrecs := (len(b) - 4) / 16
	if level < 1 || level > maxBmbtLevels || numrecs > maxrecs {
		return model.Errorf(f.name, in.off, "xfs: inode %d: B+tree root of level %d with %d records", in.ino, level, numrecs)
	}
	for i := 0; i < numrecs; i++ {
		ptr := be.Uint64(b[4+maxrecs*8+i*8:])
		if err := w.node(ptr, level-1); err != nil {
			return err
		}
	}
	return nil
}

// bmbtHeader is the long-form B+tree block header size: v4 BMAP, v5 BMA3.
func (f *FS) bmbtHeader() int {
	if f.crc() {
		return 72
	}
	return 24
}

// node reads the extent B+tree block at fsb, which must be at level.
func (w *extentWalker) node(fsb uint64, level int) error {
	f, in := w.f, w.in
	off, ok := f.fsbOff(fsb, 1)
	if !ok {
		return model.Errorf(f.name, in.off, "xfs: inode %d: B+tree block %d outside the filesystem", in.ino, fsb)
	}
	// B+tree blocks are blocks too: no more of them than the filesystem has.
	w.blocks++
	if w.blocks > min(maxBmbtBlocks, f.sb.DBlocks) {
		return model.Errorf(f.name, off, "xfs: inode %d needs more than %d B+tree blocks", in.ino, min(maxBmbtBlocks, f.sb.DBlocks))
	}
	if w.walk != nil {
		if w.walk.left == 0 {
			return model.Errorf(f.name, off, "xfs: inode %d: the walk has read %d extent B+tree blocks, twice the filesystem's blocks: not read (B+tree blocks shared between inodes)", in.ino, w.walk.total)
		}
		w.walk.left--
	}
	b := make([]byte, f.sb.BlockSize)
	if err := f.read(b, off); err != nil {
		return fmt.Errorf("xfs: inode %d: extent B+tree: %w", in.ino, err)
	}
	magic := "BMAP"
	if f.crc() {
		magic = "BMA3"
	}
	hdr := f.bmbtHeader()
	if string(b[:4]) != magic {
		return model.Errorf(f.name, off, "xfs: inode %d: bad extent B+tree magic %q", in.ino, b[:4])
	}
	gotLevel, numrecs := int(be.Uint16(b[4:])), int(be.Uint16(b[6:]))
	if gotLevel != level {
		return model.Errorf(f.name, off, "xfs: inode %d: extent B+tree block of level %d where %d was expected", in.ino, gotLevel, level)
	}
	if level == 0 {
		if numrecs > (len(b)-hdr)/extentLen {
			return model.Errorf(f.name, off, "xfs: inode %d: %d extents do not fit a B+tree leaf", in.ino, numrecs)
		}
		for i := 0; i < numrecs; i++ {
			if err := w.add(unpackExtent(b[hdr+i*extentLen:])); err != nil {
				return err
			}
		}
		return nil
	}
	maxrecs := (len(b) - hdr) / 16
	if numrecs > maxrecs {
		return model.Errorf(f.name, off, "xfs: inode %d: %d keys do not fit a B+tree node", in.ino, numrecs)
	}
	for i := 0; i < numrecs; i++ {
		if err := w.node(be.Uint64(b[hdr+maxrecs*8+i*8:]), level-1); err != nil {
			return err
		}
	}
	return nil
}

// runs converts extents to fsys runs (byte offsets from the filesystem's
// first byte).
func (f *FS) runs(exts []extent, buf []fsys.Run) []fsys.Run {
	bs := f.sb.BlockSize
	for _, e := range exts {
		off, _ := f.fsbOff(e.fsb, e.n) // checked when the extent was added
		buf = append(buf, fsys.Run{Off: off, Len: int64(e.n) * bs, FileOff: int64(e.fileOff) * bs, Unwritten: e.unwritten})
	}
	return buf
}
