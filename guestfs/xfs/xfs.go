// Package xfs is a small read-only reader of XFS (v5, and v4) for package
// guestfs: the paths of files and directories from the directory tree
// (short-form, block, leaf, node and B+tree directories), checked against
// the inode B+trees; the byte runs of each file from its extent list (in
// the inode, or in a B+tree-format extent fork), unwritten extents flagged;
// and whether a block no file covers is free, from the free-space B+tree by
// block number (bnobt).
//
// github.com/masahiro331/go-xfs-filesystem (Trivy's reader) was considered
// and not used: it reads no free-space B+tree, so it cannot say whether a
// block is free; the extents it parses are in unexported fields; it reads
// through one shared Seek cursor, so it is not safe for concurrent use; and
// it allocates buffers from on-disk sizes without bounds (a hostile inode
// size is an allocation of that size).
//
// Every structure comes from an untrusted image: sizes and counts are
// checked against the superblock and the device size before anything is
// allocated, B+trees have level and block budgets and must descend one
// level at a time, and directory walks refuse cycles. Errors name the
// device and the byte offset. Nothing is ever written.
package xfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// ErrNotXFS is returned when the bytes hold no XFS superblock.
var ErrNotXFS = errors.New("xfs: no XFS superblock")

var be = binary.BigEndian

const (
	sbMagic  = "XFSB"
	agfMagic = "XAGF"
	agiMagic = "XAGI"

	// Superblock feature bits (xfs_format.h).
	versionNumMask  = 0x000f
	versionMoreBits = 0x8000
	features2FType  = 0x00000200
	incompatFType   = 0x1
	incompatNRExt64 = 0x20
	// incompatKnown: ftype, sparse inodes, meta UUID, bigtime, needsrepair,
	// nrext64, exchange-range, parent pointers, metadir, zoned, zone gaps.
	// None but ftype and nrext64 changes what this reader parses.
	incompatKnown = 0x7ff

	// Bounds for hostile input.
	maxAGs     = 1 << 17
	minAGBlock = 64 // mkfs refuses smaller allocation groups
)

// Superblock holds the superblock fields the reader uses.
type Superblock struct {
	BlockSize   int64
	DBlocks     uint64
	RootIno     uint64
	LogStart    uint64
	AGBlocks    uint32
	AGCount     uint32
	Version     int // 4 or 5
	SectSize    int64
	InodeSize   int64
	InoPBlock   int64
	BlockLog    uint8
	InoPBLog    uint8
	AGBlkLog    uint8
	DirBlkLog   uint8
	Features2   uint32
	Incompat    uint32
	RBlocks     uint64
	VolumeLabel string
}

// FS is an opened XFS filesystem. It is safe for concurrent use.
type FS struct {
	r    io.ReaderAt
	size int64
	name string // the device, for errors
	sb   Superblock
	agfs []agf
}

// agf is the part of an AG free-space header the reader uses.
type agf struct {
	length  uint32 // blocks in this AG
	bnoRoot uint32
	bnoLvl  uint32
	// freeList holds the blocks of the AG free list (AGFL), sorted: free
	// blocks set aside for B+tree growth, kept out of the free-space
	// B+trees but free all the same (xfs_db's freesp counts them).
	freeList []uint32
}

// Probe reports whether head (a device's first bytes) starts with an XFS
// superblock.
func Probe(head []byte) bool {
	return len(head) >= 4 && string(head[:4]) == sbMagic
}

// Driver is the fsys driver of XFS.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "xfs",
		Probe: Probe,
		Open: func(_ context.Context, r io.ReaderAt, size int64, name string) (fsys.FS, []string, error) {
			f, err := Open(r, size, name)
			if err != nil {
				return nil, nil, err
			}
			return f, f.notes(), nil
		},
	}
}

// Open reads and checks the superblock and the AG free-space headers of the
// XFS filesystem in r[0:size). name (a partition or volume) is for errors.
func Open(r io.ReaderAt, size int64, name string) (*FS, error) {
	b := make([]byte, 512)
	if err := fsys.ReadFull(r, b, 0); err != nil {
		return nil, model.Wrapf(err, name, 0, "xfs: read superblock")
	}
	sb, err := parseSuperblock(b, size, name)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, name: name, sb: sb}
	if err := f.readAGFs(); err != nil {
		return nil, err
	}
	return f, nil
}

func parseSuperblock(b []byte, size int64, name string) (Superblock, error) {
	if string(b[:4]) != sbMagic {
		return Superblock{}, fmt.Errorf("%s: %w", name, ErrNotXFS)
	}
	bad := func(format string, args ...any) (Superblock, error) {
		return Superblock{}, model.Errorf(name, 0, "xfs: bad superblock: "+format, args...)
	}
	sb := Superblock{
		BlockSize: int64(be.Uint32(b[0x04:])),
		DBlocks:   be.Uint64(b[0x08:]),
		RBlocks:   be.Uint64(b[0x10:]),
		LogStart:  be.Uint64(b[0x30:]),
		RootIno:   be.Uint64(b[0x38:]),
		AGBlocks:  be.Uint32(b[0x54:]),
		AGCount:   be.Uint32(b[0x58:]),
		SectSize:  int64(be.Uint16(b[0x66:])),
		InodeSize: int64(be.Uint16(b[0x68:])),
		InoPBlock: int64(be.Uint16(b[0x6A:])),
		BlockLog:  b[0x78],
		InoPBLog:  b[0x7B],
		AGBlkLog:  b[0x7C],
		DirBlkLog: b[0xC0],
	}
	sb.VolumeLabel = cString(b[0x6C:0x78])
	version := be.Uint16(b[0x64:])
	sb.Version = int(version & versionNumMask)
	if version&versionMoreBits != 0 {
		sb.Features2 = be.Uint32(b[0xC8:])
	}
	switch sb.Version {
	case 4:
	case 5:
		sb.Incompat = be.Uint32(b[0xD8:])
	default:
		return bad("version %d", sb.Version)
	}
	bs := sb.BlockSize
	switch {
	case bs < 512 || bs > 65536 || bs&(bs-1) != 0 || int64(1)<<sb.BlockLog != bs:
		return bad("block size %d (log %d)", bs, sb.BlockLog)
	case sb.SectSize < 512 || sb.SectSize > 32768 || sb.SectSize&(sb.SectSize-1) != 0 || sb.SectSize > bs:
		return bad("sector size %d", sb.SectSize)
	case sb.InodeSize < 256 || sb.InodeSize > 2048 || sb.InodeSize&(sb.InodeSize-1) != 0 || sb.InodeSize > bs:
		return bad("inode size %d", sb.InodeSize)
	case sb.Version == 5 && sb.InodeSize < 512:
		return bad("inode size %d on a v5 filesystem", sb.InodeSize)
	case sb.InoPBlock != bs/sb.InodeSize || int64(1)<<sb.InoPBLog != sb.InoPBlock:
		return bad("%d inodes per block (log %d) for %d-byte inodes", sb.InoPBlock, sb.InoPBLog, sb.InodeSize)
	case sb.AGBlocks < minAGBlock:
		return bad("%d blocks per AG", sb.AGBlocks)
	case sb.AGBlkLog != uint8(bits.Len32(sb.AGBlocks-1)):
		return bad("AG block log %d for %d blocks", sb.AGBlkLog, sb.AGBlocks)
	case sb.AGCount == 0 || sb.AGCount > maxAGs:
		return bad("%d allocation groups", sb.AGCount)
	case sb.DBlocks == 0 || sb.DBlocks > uint64(sb.AGCount)*uint64(sb.AGBlocks) ||
		sb.DBlocks <= uint64(sb.AGCount-1)*uint64(sb.AGBlocks):
		return bad("%d blocks in %d AGs of %d", sb.DBlocks, sb.AGCount, sb.AGBlocks)
	case sb.DBlocks > uint64(size)/uint64(bs):
		// Larger than its device: truncated or hostile; refusing it keeps
		// every later bound meaningful.
		return bad("%d blocks of %d bytes exceed the %d-byte device", sb.DBlocks, bs, size)
	case int(sb.BlockLog)+int(sb.DirBlkLog) > 16:
		return bad("directory block log %d", sb.DirBlkLog)
	case int(sb.AGBlkLog)+int(sb.InoPBLog) > 32:
		return bad("inode number layout (%d+%d bits)", sb.AGBlkLog, sb.InoPBLog)
	}
	if sb.Incompat&^incompatKnown != 0 {
		return Superblock{}, model.Wrapf(model.ErrUnsupported, name, 0xD8, "xfs: incompatible features %#x", sb.Incompat)
	}
	return sb, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// readAGFs reads each AG's free-space header (the AGF, in the AG's second
// sector).
func (f *FS) readAGFs() error {
	f.agfs = make([]agf, f.sb.AGCount)
	b := make([]byte, 0x34)
	for ag := uint32(0); ag < f.sb.AGCount; ag++ {
		off := f.agOff(ag) + f.sb.SectSize
		if err := f.read(b, off); err != nil {
			return fmt.Errorf("xfs: AGF of AG %d: %w", ag, err)
		}
		if string(b[:4]) != agfMagic {
			return model.Errorf(f.name, off, "xfs: AG %d: bad AGF magic %q", ag, b[:4])
		}
		a := agf{length: be.Uint32(b[0x0C:]), bnoRoot: be.Uint32(b[0x10:]), bnoLvl: be.Uint32(b[0x1C:])}
		if a.length == 0 || a.length > f.sb.AGBlocks || uint64(ag)*uint64(f.sb.AGBlocks)+uint64(a.length) > f.sb.DBlocks {
			return model.Errorf(f.name, off, "xfs: AG %d: length %d", ag, a.length)
		}
		fl, err := f.readFreeList(ag, a.length, be.Uint32(b[0x28:]), be.Uint32(b[0x30:]))
		if err != nil {
			return err
		}
		a.freeList = fl
		f.agfs[ag] = a
	}
	return nil
}

// readFreeList reads the count blocks of AG ag's free list (the AGFL, in
// the AG's fourth sector: a circular array from index first).
func (f *FS) readFreeList(ag, length, first, count uint32) ([]uint32, error) {
	off := f.agOff(ag) + 3*f.sb.SectSize
	b := make([]byte, f.sb.SectSize)
	if err := f.read(b, off); err != nil {
		return nil, fmt.Errorf("xfs: AGFL of AG %d: %w", ag, err)
	}
	if f.crc() {
		if string(b[:4]) != "XAFL" {
			return nil, model.Errorf(f.name, off, "xfs: AG %d: bad AGFL magic %q", ag, b[:4])
		}
		b = b[36:]
	}
	slots := uint32(len(b) / 4)
	if count > slots || first >= slots {
		return nil, model.Errorf(f.name, off, "xfs: AG %d: free list of %d blocks from slot %d in %d slots", ag, count, first, slots)
	}
	out := make([]uint32, 0, count)
	for i := uint32(0); i < count; i++ {
		bno := be.Uint32(b[4*((first+i)%slots):])
		if bno >= length {
			return nil, model.Errorf(f.name, off, "xfs: AG %d: free list block %d outside the AG", ag, bno)
		}
		out = append(out, bno)
	}
	slices.Sort(out)
	return out, nil
}

// Superblock returns the parsed superblock.
func (f *FS) Superblock() Superblock { return f.sb }

// Kind is "xfs".
func (f *FS) Kind() string { return "xfs" }

// notes says what of this filesystem is not attributed.
func (f *FS) notes() []string {
	var out []string
	if f.sb.RBlocks > 0 {
		out = append(out, "xfs: the realtime device is not on this disk: files on it have no runs")
	}
	if f.sb.LogStart == 0 {
		out = append(out, "xfs: external log device")
	}
	return out
}

// hasFType reports a file type byte in directory entries.
func (f *FS) hasFType() bool {
	if f.sb.Version == 5 {
		return f.sb.Incompat&incompatFType != 0
	}
	return f.sb.Features2&features2FType != 0
}

func (f *FS) crc() bool { return f.sb.Version == 5 }

// agOff is the byte offset of AG ag.
func (f *FS) agOff(ag uint32) int64 {
	return int64(ag) * int64(f.sb.AGBlocks) * f.sb.BlockSize
}

// fsbOff converts a filesystem block number (AG number in the high bits,
// AG block in the low AGBlkLog bits) to a byte offset, checking that n
// blocks from there stay inside one AG of the filesystem.
func (f *FS) fsbOff(fsb, n uint64) (int64, bool) {
	ag := fsb >> f.sb.AGBlkLog
	agbno := fsb & (1<<f.sb.AGBlkLog - 1)
	if ag >= uint64(f.sb.AGCount) || n > uint64(f.agfs[ag].length) || agbno > uint64(f.agfs[ag].length)-n {
		return 0, false
	}
	return f.agOff(uint32(ag)) + int64(agbno)*f.sb.BlockSize, true
}

// read reads len(b) bytes at off, inside the filesystem.
func (f *FS) read(b []byte, off int64) error {
	if off < 0 || off > f.size-int64(len(b)) {
		return model.Errorf(f.name, off, "xfs: %d bytes past the end of the %d-byte device", len(b), f.size)
	}
	if err := fsys.ReadFull(f.r, b, off); err != nil {
		return model.Wrapf(err, f.name, off, "xfs: read %d bytes", len(b))
	}
	return nil
}

// State says whether a byte that no walked run covers is free (in the
// free-space B+tree of its AG or on its free list, or past the
// filesystem's end) or allocated (AG headers, inode chunks, B+tree blocks,
// the log).
func (f *FS) State(off int64) string {
	if off < 0 {
		return fsys.StateUnknown
	}
	blk := uint64(off / f.sb.BlockSize)
	if blk >= f.sb.DBlocks {
		return fsys.StateFree // inside the device, past the filesystem
	}
	ag := uint32(blk / uint64(f.sb.AGBlocks))
	agbno := uint32(blk % uint64(f.sb.AGBlocks))
	if agbno >= f.agfs[ag].length {
		return fsys.StateFree
	}
	if _, ok := slices.BinarySearch(f.agfs[ag].freeList, agbno); ok {
		return fsys.StateFree
	}
	free, err := f.blockFree(ag, agbno)
	switch {
	case err != nil:
		return fsys.StateUnknown
	case free:
		return fsys.StateFree
	}
	return fsys.StateAllocated
}

var (
	_ fsys.FS     = (*FS)(nil)
	_ fsys.Reader = (*FS)(nil)
)
