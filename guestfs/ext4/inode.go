package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	extentMagic    = 0xF30A
	maxExtentDepth = 5
	// maxRunsPerInode bounds one inode's block map: a million extents is
	// far beyond any real file and keeps hostile trees from eating memory.
	maxRunsPerInode = 1 << 20
	// maxPointerBlocks bounds the indirect and extent index blocks read for
	// one inode (256 GiB of file with 4 KiB blocks and indirect blocks).
	maxPointerBlocks = 1 << 16
	// unwrittenLen is the ee_len offset marking an unwritten (preallocated)
	// extent.
	unwrittenLen = 32768
)

// Inode is the part of an on-disk inode the reader uses.
type Inode struct {
	Ino   uint32
	Mode  uint16 // i_mode: type and permission bits
	Size  uint64
	Flags uint32
	Links uint16
	block [60]byte // i_block: extent root, block pointers, inline data or fast symlink
	raw   []byte   // the whole on-disk inode, for in-inode xattrs
	off   int64    // byte offset of the on-disk inode
}

// Run maps Len file blocks starting at file block Logical to the
// filesystem blocks starting at Physical. Unwritten runs are preallocated:
// the guest reads zeros there, whatever the disk holds.
type Run struct {
	Logical   uint64
	Physical  uint64
	Len       uint64
	Unwritten bool
}

// IsDir reports a directory inode.
func (in *Inode) IsDir() bool { return in.Mode&0xF000 == 0x4000 }

// FileMode converts i_mode to an fs.FileMode.
func (in *Inode) FileMode() fs.FileMode { return fsys.UnixMode(in.Mode) }

// Inline reports an inode whose data lives in the inode itself.
func (in *Inode) Inline() bool { return in.Flags&inodeFlagInline != 0 }

// fastSymlink reports a symlink whose target is stored in i_block.
func (in *Inode) fastSymlink() bool {
	return in.Mode&0xF000 == 0xA000 && in.Size < 60 && in.Flags&(inodeFlagExtents|inodeFlagInline) == 0
}

// Inode reads inode ino.
func (f *FS) Inode(ino uint32) (*Inode, error) {
	if ino == 0 || ino > f.sb.InodesCount {
		return nil, model.Errorf(f.name, -1, "ext4: inode %d out of range (1..%d)", ino, f.sb.InodesCount)
	}
	g := (ino - 1) / f.sb.InodesPerGroup
	idx := (ino - 1) % f.sb.InodesPerGroup
	off := int64(f.groups[g].inodeTable)*f.sb.BlockSize + int64(idx)*int64(f.sb.InodeSize)
	raw := make([]byte, f.sb.InodeSize)
	if n, err := f.r.ReadAt(raw, off); n != len(raw) {
		return nil, model.Wrapf(err, f.name, off, "ext4: read inode %d", ino)
	}
	le := binary.LittleEndian
	in := &Inode{
		Ino:   ino,
		Mode:  le.Uint16(raw[0x0:]),
		Size:  uint64(le.Uint32(raw[0x4:])) | uint64(le.Uint32(raw[0x6C:]))<<32,
		Links: le.Uint16(raw[0x1A:]),
		Flags: le.Uint32(raw[0x20:]),
		raw:   raw,
		off:   off,
	}
	copy(in.block[:], raw[0x28:0x28+60])
	return in, nil
}

// InodeBlocks returns the block runs of inode ino, sorted by logical block.
// Inline-data inodes and fast symlinks have none.
func (f *FS) InodeBlocks(ino uint32) ([]Run, error) {
	in, err := f.Inode(ino)
	if err != nil {
		return nil, err
	}
	return f.Blocks(in)
}

// Blocks returns the block runs of an inode already read.
func (f *FS) Blocks(in *Inode) ([]Run, error) { return f.blocks(in, nil) }

// indexBudget bounds the index and indirect blocks that one walk reads
// over all its inodes. In a real filesystem each belongs to one inode, and
// a walk reads a directory's twice (for its entries, then for its runs),
// so twice the block count covers any real walk. Inodes that share one
// hostile tree stop here, instead of each costing the per-inode cap
// (20,000 empty files sharing a tree of depth 4 took 20 ms each).
type indexBudget struct{ left, total uint64 }

func (f *FS) newIndexBudget() *indexBudget {
	return &indexBudget{left: 2 * f.sb.BlocksCount, total: 2 * f.sb.BlocksCount}
}

// blocks is Blocks, reading index blocks within walk's budget (nil: only
// the per-inode cap).
func (f *FS) blocks(in *Inode, walk *indexBudget) ([]Run, error) {
	if in.Inline() || in.fastSymlink() {
		return nil, nil
	}
	switch in.Mode & 0xF000 {
	case 0x8000, 0x4000, 0xA000:
	default:
		return nil, nil // devices, fifos, sockets: i_block holds no blocks
	}
	w := blockWalker{f: f, ino: in.Ino, walk: walk}
	if in.Flags&inodeFlagExtents != 0 {
		if err := w.extentNode(in.block[:], -1, 0); err != nil {
			return nil, err
		}
	} else {
		if err := w.indirect(in); err != nil {
			return nil, err
		}
	}
	return w.runs, nil
}

type blockWalker struct {
	f        *FS
	ino      uint32
	runs     []Run
	pointers uint64 // index/indirect blocks read so far
	mapped   uint64 // data blocks mapped so far
	walk     *indexBudget
}

func (w *blockWalker) add(r Run) error {
	if r.Len == 0 {
		return nil
	}
	if r.Physical >= w.f.sb.BlocksCount || w.f.sb.BlocksCount-r.Physical < r.Len {
		return model.Errorf(w.f.name, -1, "ext4: inode %d maps blocks %d+%d past the end", w.ino, r.Physical, r.Len)
	}
	// No real file maps more blocks than the filesystem has; a hostile tree
	// that reuses the same blocks stops here.
	w.mapped += r.Len
	if w.mapped > w.f.sb.BlocksCount {
		return model.Errorf(w.f.name, -1, "ext4: inode %d maps more blocks than the filesystem has", w.ino)
	}
	if n := len(w.runs); n > 0 {
		last := &w.runs[n-1]
		if last.Logical+last.Len == r.Logical && last.Physical+last.Len == r.Physical && last.Unwritten == r.Unwritten {
			last.Len += r.Len
			return nil
		}
	}
	if len(w.runs) >= maxRunsPerInode {
		return model.Errorf(w.f.name, -1, "ext4: inode %d has more than %d block runs", w.ino, maxRunsPerInode)
	}
	w.runs = append(w.runs, r)
	return nil
}

func (w *blockWalker) readPointerBlock(blk uint64) ([]byte, error) {
	// Index blocks are blocks too: no more of them than the filesystem has.
	w.pointers++
	if w.pointers > min(maxPointerBlocks, w.f.sb.BlocksCount) {
		return nil, model.Errorf(w.f.name, -1, "ext4: inode %d needs more than %d index blocks", w.ino, min(maxPointerBlocks, w.f.sb.BlocksCount))
	}
	if w.walk != nil {
		if w.walk.left == 0 {
			return nil, model.Errorf(w.f.name, -1, "ext4: inode %d: the walk has read %d index blocks, twice the filesystem's blocks: not read (index blocks shared between inodes)", w.ino, w.walk.total)
		}
		w.walk.left--
	}
	b := make([]byte, w.f.sb.BlockSize)
	if err := w.f.readBlock(blk, b); err != nil {
		return nil, fmt.Errorf("ext4: inode %d: %w", w.ino, err)
	}
	return b, nil
}

// extentNode walks one extent tree node. wantDepth is the depth the parent
// index promised (-1 at the root), so that a child can never claim to be
// higher than its parent and loop.
func (w *blockWalker) extentNode(b []byte, wantDepth int, nodeBlk uint64) error {
	le := binary.LittleEndian
	where := func() int64 {
		if nodeBlk == 0 {
			return -1
		}
		return int64(nodeBlk) * w.f.sb.BlockSize
	}
	if len(b) < 12 || le.Uint16(b[0:]) != extentMagic {
		return model.Errorf(w.f.name, where(), "ext4: inode %d: bad extent header", w.ino)
	}
	entries := int(le.Uint16(b[2:]))
	depth := int(le.Uint16(b[6:]))
	if entries > (len(b)-12)/12 {
		return model.Errorf(w.f.name, where(), "ext4: inode %d: %d extent entries do not fit a %d-byte node", w.ino, entries, len(b))
	}
	if depth > maxExtentDepth || (wantDepth >= 0 && depth != wantDepth) {
		return model.Errorf(w.f.name, where(), "ext4: inode %d: extent depth %d", w.ino, depth)
	}
	for i := 0; i < entries; i++ {
		e := b[12+12*i:]
		if depth == 0 {
			l := uint64(le.Uint16(e[4:]))
			unwritten := false
			if l > unwrittenLen {
				l -= unwrittenLen
				unwritten = true
			}
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if err := w.add(Run{Logical: uint64(le.Uint32(e[0:])), Physical: phys, Len: l, Unwritten: unwritten}); err != nil {
				return err
			}
			continue
		}
		child := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		cb, err := w.readPointerBlock(child)
		if err != nil {
			return err
		}
		if err := w.extentNode(cb, depth-1, child); err != nil {
			return err
		}
	}
	return nil
}

// indirect walks classic ext2/ext3 block pointers: 12 direct, then single,
// double and triple indirect blocks, never past the file's last block.
func (w *blockWalker) indirect(in *Inode) error {
	le := binary.LittleEndian
	bs := uint64(w.f.sb.BlockSize)
	limit := (in.Size + bs - 1) / bs // logical blocks that can hold data
	perBlock := bs / 4
	for i := uint64(0); i < 12 && i < limit; i++ {
		if p := uint64(le.Uint32(in.block[4*i:])); p != 0 {
			if err := w.add(Run{Logical: i, Physical: p, Len: 1}); err != nil {
				return err
			}
		}
	}
	logical := uint64(12)
	span := uint64(1)
	for level := 1; level <= 3; level++ {
		span *= perBlock // file blocks covered by one pointer at this level
		if logical >= limit {
			return nil
		}
		p := uint64(le.Uint32(in.block[4*(11+level):]))
		if p != 0 {
			if err := w.indirectBlock(p, level, logical, limit); err != nil {
				return err
			}
		}
		logical += span
	}
	return nil
}

func (w *blockWalker) indirectBlock(blk uint64, level int, logical, limit uint64) error {
	b, err := w.readPointerBlock(blk)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	perBlock := uint64(len(b) / 4)
	span := uint64(1) // file blocks per pointer in this block
	for l := 1; l < level; l++ {
		span *= perBlock
	}
	for i := uint64(0); i < perBlock; i++ {
		start := logical + i*span
		if start >= limit {
			break
		}
		p := uint64(le.Uint32(b[4*i:]))
		if p == 0 {
			continue
		}
		if level == 1 {
			if err := w.add(Run{Logical: start, Physical: p, Len: 1}); err != nil {
				return err
			}
			continue
		}
		if err := w.indirectBlock(p, level-1, start, limit); err != nil {
			return err
		}
	}
	return nil
}

// inlineData returns the bytes of an inline-data inode: the 60 bytes of
// i_block followed by the value of the in-inode "system.data" xattr.
func (f *FS) inlineData(in *Inode) []byte {
	out := append([]byte(nil), in.block[:]...)
	if v := inodeXattr(in.raw, 7, "data"); v != nil {
		out = append(out, v...)
	}
	return out
}

// inodeXattr finds an extended attribute stored in the inode body after
// i_extra_isize. Values in external blocks or EA inodes are not read.
func inodeXattr(raw []byte, index byte, name string) []byte {
	le := binary.LittleEndian
	if len(raw) <= 0x82 {
		return nil
	}
	start := 128 + int(le.Uint16(raw[0x80:]))
	if start+4 > len(raw) || le.Uint32(raw[start:]) != 0xEA020000 {
		return nil
	}
	area := raw[start+4:]
	for off := 0; off+16 <= len(area); {
		e := area[off:]
		nameLen := int(e[0])
		if nameLen == 0 && le.Uint32(e) == 0 {
			return nil // end of entries
		}
		if 16+nameLen > len(e) {
			return nil
		}
		vOff, vInum, vSize := int(le.Uint16(e[2:])), le.Uint32(e[4:]), int(le.Uint32(e[8:]))
		if e[1] == index && string(e[16:16+nameLen]) == name {
			if vInum != 0 || vOff > len(area) || vSize > len(area)-vOff {
				return nil
			}
			return area[vOff : vOff+vSize]
		}
		off += (16 + nameLen + 3) &^ 3
	}
	return nil
}
