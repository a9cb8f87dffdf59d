// Package ext4 is a small read-only reader for the parts of ext2/ext3/ext4
// that go-diskfs does not expose: block bitmaps (is a block allocated?),
// extent trees and classic indirect blocks (where does an inode's data live?),
// inline data, and a bounded directory walk of its own.
//
// Every structure comes from an untrusted image: sizes and counts are checked
// against the superblock and the partition size before anything is allocated,
// trees have depth and node budgets, and directory walks refuse cycles.
// Nothing is ever written: the reader only calls ReadAt.
package ext4

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
)

// ErrNotExt is returned when the bytes hold no ext2/3/4 superblock.
var ErrNotExt = errors.New("ext4: no ext2/3/4 superblock")

const (
	superblockOffset = 1024
	superblockSize   = 1024
	extMagic         = 0xEF53

	rootIno = 2

	// Feature bits (e2fsprogs lib/ext2fs/ext2_fs.h).
	compatSparseSuper2 = 0x200

	incompatFiletype   = 0x2
	incompatJournalDev = 0x8
	incompatMetaBG     = 0x10
	incompatExtents    = 0x40
	incompat64Bit      = 0x80
	incompatFlexBG     = 0x200
	incompatInlineData = 0x8000
	incompatEncrypt    = 0x10000
	incompatCasefold   = 0x20000

	roCompatSparseSuper  = 0x1
	roCompatGdtCsum      = 0x10
	roCompatBigalloc     = 0x200
	roCompatMetadataCsum = 0x400

	// Group descriptor flags.
	bgBlockUninit = 0x2

	// Inode flags.
	inodeFlagExtents = 0x80000
	inodeFlagInline  = 0x10000000

	// Bounds for hostile input.
	maxGroups        = 1 << 22 // 4M groups: a 512 TiB filesystem with 4 KiB blocks
	bitmapCacheLimit = 512     // block bitmaps kept in memory (at most 32 MiB with 64 KiB blocks)
)

// Superblock holds the superblock fields the reader uses.
type Superblock struct {
	InodesCount     uint32
	BlocksCount     uint64
	FirstDataBlock  uint32
	BlockSize       int64
	BlocksPerGroup  uint32
	InodesPerGroup  uint32
	InodeSize       uint16
	FeatureCompat   uint32
	FeatureIncompat uint32
	FeatureRoCompat uint32
	ReservedGDT     uint16
	DescSize        uint16
	FirstMetaBG     uint32
	LogGroupsPerFlx uint8
	BackupBGs       [2]uint32
	VolumeName      string
}

// group is one parsed group descriptor.
type group struct {
	blockBitmap uint64
	inodeBitmap uint64
	inodeTable  uint64
	flags       uint16
}

// FS is an opened ext2/3/4 filesystem. It is safe for concurrent use.
type FS struct {
	r      io.ReaderAt
	size   int64
	name   string // for error messages
	sb     Superblock
	groups []group
	// metaRanges are the block bitmap, inode bitmap and inode table of every
	// group, sorted, so that a BLOCK_UNINIT group can still report the
	// metadata other groups placed in it (flex_bg).
	metaRanges []blockRange

	mu      sync.Mutex
	bitmaps map[uint32][]byte
}

type blockRange struct{ start, end uint64 } // [start, end)

// Open reads and checks the superblock and group descriptors of the ext
// filesystem held in r[0:size).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	return OpenNamed(r, size, "ext4")
}

// OpenNamed is Open with a name (a host file or partition) used in errors.
func OpenNamed(r io.ReaderAt, size int64, name string) (*FS, error) {
	if size < superblockOffset+superblockSize {
		return nil, fmt.Errorf("%s: %w: too small (%d bytes)", name, ErrNotExt, size)
	}
	b := make([]byte, superblockSize)
	if _, err := r.ReadAt(b, superblockOffset); err != nil && !errors.Is(err, io.EOF) {
		return nil, model.Wrapf(err, name, superblockOffset, "ext4: read superblock")
	}
	sb, err := parseSuperblock(b, size, name)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, name: name, sb: sb, bitmaps: map[uint32][]byte{}}
	if err := f.readGroups(); err != nil {
		return nil, err
	}
	return f, nil
}

// Probe reports whether b (at least 1084 bytes from the start of a
// partition) looks like an ext2/3/4 superblock.
func Probe(b []byte) bool {
	return len(b) >= superblockOffset+0x3A && binary.LittleEndian.Uint16(b[superblockOffset+0x38:]) == extMagic
}

func parseSuperblock(b []byte, size int64, name string) (Superblock, error) {
	le := binary.LittleEndian
	if le.Uint16(b[0x38:]) != extMagic {
		return Superblock{}, fmt.Errorf("%s: %w", name, ErrNotExt)
	}
	bad := func(format string, args ...any) (Superblock, error) {
		return Superblock{}, model.Errorf(name, superblockOffset, "ext4: bad superblock: "+format, args...)
	}
	sb := Superblock{
		InodesCount:     le.Uint32(b[0x0:]),
		BlocksCount:     uint64(le.Uint32(b[0x4:])),
		FirstDataBlock:  le.Uint32(b[0x14:]),
		BlocksPerGroup:  le.Uint32(b[0x20:]),
		InodesPerGroup:  le.Uint32(b[0x28:]),
		InodeSize:       128,
		FeatureCompat:   le.Uint32(b[0x5C:]),
		FeatureIncompat: le.Uint32(b[0x60:]),
		FeatureRoCompat: le.Uint32(b[0x64:]),
		ReservedGDT:     le.Uint16(b[0xCE:]),
		DescSize:        32,
		FirstMetaBG:     le.Uint32(b[0x104:]),
		LogGroupsPerFlx: b[0x174],
		BackupBGs:       [2]uint32{le.Uint32(b[0x24C:]), le.Uint32(b[0x250:])},
	}
	sb.VolumeName = cString(b[0x78:0x88])
	logBS := le.Uint32(b[0x18:])
	if logBS > 6 {
		return bad("block size 2^(10+%d)", logBS)
	}
	sb.BlockSize = 1024 << logBS
	if le.Uint32(b[0x4C:]) >= 1 { // dynamic revision: variable inode size
		sb.InodeSize = le.Uint16(b[0x58:])
	}
	if sb.FeatureIncompat&incompat64Bit != 0 {
		sb.BlocksCount |= uint64(le.Uint32(b[0x150:])) << 32
		sb.DescSize = le.Uint16(b[0xFE:])
		if sb.DescSize < 64 || sb.DescSize > 1024 || sb.DescSize&(sb.DescSize-1) != 0 {
			return bad("group descriptor size %d", sb.DescSize)
		}
	}
	if sb.FeatureRoCompat&roCompatBigalloc != 0 {
		return Superblock{}, model.Wrapf(model.ErrUnsupported, name, superblockOffset, "ext4: bigalloc")
	}
	if sb.FeatureIncompat&incompatJournalDev != 0 {
		return Superblock{}, model.Wrapf(model.ErrUnsupported, name, superblockOffset, "ext4: external journal device")
	}
	bs := uint64(sb.BlockSize)
	switch {
	case sb.InodeSize < 128 || uint64(sb.InodeSize) > bs || sb.InodeSize&(sb.InodeSize-1) != 0:
		return bad("inode size %d", sb.InodeSize)
	case sb.BlocksPerGroup == 0 || uint64(sb.BlocksPerGroup) > 8*bs:
		return bad("%d blocks per group", sb.BlocksPerGroup)
	case sb.InodesPerGroup == 0 || uint64(sb.InodesPerGroup) > 8*bs:
		return bad("%d inodes per group", sb.InodesPerGroup)
	case (sb.BlockSize == 1024) != (sb.FirstDataBlock == 1) && sb.FirstDataBlock != 0:
		return bad("first data block %d", sb.FirstDataBlock)
	case sb.BlocksCount <= uint64(sb.FirstDataBlock):
		return bad("%d blocks", sb.BlocksCount)
	case sb.BlocksCount > uint64(size)/bs:
		// A filesystem larger than its partition is either truncated or
		// hostile; refusing it keeps every later bound meaningful.
		return bad("%d blocks of %d bytes exceed the %d-byte partition", sb.BlocksCount, bs, size)
	}
	groups := sb.groupCount()
	if groups > maxGroups {
		return bad("%d block groups", groups)
	}
	if uint64(sb.InodesCount) > groups*uint64(sb.InodesPerGroup) || sb.InodesCount < rootIno {
		return bad("%d inodes for %d groups of %d", sb.InodesCount, groups, sb.InodesPerGroup)
	}
	return sb, nil
}

func (sb *Superblock) groupCount() uint64 {
	return (sb.BlocksCount - uint64(sb.FirstDataBlock) + uint64(sb.BlocksPerGroup) - 1) / uint64(sb.BlocksPerGroup)
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Superblock returns the parsed superblock.
func (f *FS) Superblock() Superblock { return f.sb }

// BlockSize is the filesystem block size in bytes.
func (f *FS) BlockSize() int64 { return f.sb.BlockSize }

// BlocksCount is the number of blocks in the filesystem.
func (f *FS) BlocksCount() uint64 { return f.sb.BlocksCount }

// Kind names the flavour: "ext4" with extents, flex_bg or 64bit, "ext3"
// with a journal, else "ext2".
func (f *FS) Kind() string {
	if f.sb.FeatureIncompat&(incompatExtents|incompat64Bit|incompatFlexBG) != 0 {
		return "ext4"
	}
	if f.sb.FeatureCompat&0x4 != 0 {
		return "ext3"
	}
	return "ext2"
}

// UsesMetaBG reports the meta_bg feature (group descriptors spread over the
// filesystem), which go-diskfs does not read.
func (f *FS) UsesMetaBG() bool { return f.sb.FeatureIncompat&incompatMetaBG != 0 }

// HasInlineData reports the inline_data feature.
func (f *FS) HasInlineData() bool { return f.sb.FeatureIncompat&incompatInlineData != 0 }

// HasExtents reports the extents feature.
func (f *FS) HasExtents() bool { return f.sb.FeatureIncompat&incompatExtents != 0 }

// Encrypted reports fscrypt or casefold directories, whose names go-diskfs
// cannot read.
func (f *FS) Encrypted() bool {
	return f.sb.FeatureIncompat&(incompatEncrypt|incompatCasefold) != 0
}

func (f *FS) descPerBlock() uint64 { return uint64(f.sb.BlockSize) / uint64(f.sb.DescSize) }

func (f *FS) groupFirstBlock(g uint64) uint64 {
	return uint64(f.sb.FirstDataBlock) + g*uint64(f.sb.BlocksPerGroup)
}

// hasSuper reports whether group g holds a superblock backup (and, without
// meta_bg, a copy of the group descriptor table).
func (f *FS) hasSuper(g uint64) bool {
	if g == 0 {
		return true
	}
	if f.sb.FeatureCompat&compatSparseSuper2 != 0 {
		return g == uint64(f.sb.BackupBGs[0]) || g == uint64(f.sb.BackupBGs[1])
	}
	if f.sb.FeatureRoCompat&roCompatSparseSuper == 0 || g == 1 {
		return true
	}
	for _, base := range []uint64{3, 5, 7} {
		p := base
		for p < g {
			p *= base
		}
		if p == g {
			return true
		}
	}
	return false
}

// descBlock returns the block holding the group descriptor of group g.
func (f *FS) descBlock(g uint64) uint64 {
	dpb := f.descPerBlock()
	mg := g / dpb
	first := uint64(f.sb.FirstDataBlock) + 1
	if f.sb.FeatureIncompat&incompatMetaBG == 0 || mg < uint64(f.sb.FirstMetaBG) {
		return first + mg
	}
	// meta_bg: the descriptors of a meta group live in the first block of
	// the meta group's first group, after its superblock backup if any.
	start := mg * dpb
	blk := f.groupFirstBlock(start)
	if f.hasSuper(start) {
		blk++
	}
	return blk
}

func (f *FS) readGroups() error {
	n := f.sb.groupCount()
	f.groups = make([]group, n)
	bs := f.sb.BlockSize
	buf := make([]byte, bs)
	cur := ^uint64(0)
	le := binary.LittleEndian
	dpb := f.descPerBlock()
	for g := uint64(0); g < n; g++ {
		blk := f.descBlock(g)
		if blk >= f.sb.BlocksCount {
			return model.Errorf(f.name, int64(blk)*bs, "ext4: group %d descriptor block %d past the end", g, blk)
		}
		if blk != cur {
			if err := f.readBlock(blk, buf); err != nil {
				return fmt.Errorf("ext4: group descriptors: %w", err)
			}
			cur = blk
		}
		off := (g % dpb) * uint64(f.sb.DescSize)
		d := buf[off : off+uint64(f.sb.DescSize)]
		gd := group{
			blockBitmap: uint64(le.Uint32(d[0x0:])),
			inodeBitmap: uint64(le.Uint32(d[0x4:])),
			inodeTable:  uint64(le.Uint32(d[0x8:])),
			flags:       le.Uint16(d[0x12:]),
		}
		if f.sb.DescSize >= 64 {
			gd.blockBitmap |= uint64(le.Uint32(d[0x20:])) << 32
			gd.inodeBitmap |= uint64(le.Uint32(d[0x24:])) << 32
			gd.inodeTable |= uint64(le.Uint32(d[0x28:])) << 32
		}
		itBlocks := f.inodeTableBlocks()
		if gd.blockBitmap >= f.sb.BlocksCount || gd.inodeBitmap >= f.sb.BlocksCount ||
			gd.inodeTable >= f.sb.BlocksCount || f.sb.BlocksCount-gd.inodeTable < itBlocks {
			return model.Errorf(f.name, int64(blk)*bs+int64(off), "ext4: group %d descriptor points past the end", g)
		}
		f.groups[g] = gd
		f.metaRanges = append(f.metaRanges,
			blockRange{gd.blockBitmap, gd.blockBitmap + 1},
			blockRange{gd.inodeBitmap, gd.inodeBitmap + 1},
			blockRange{gd.inodeTable, gd.inodeTable + itBlocks})
	}
	sortRanges(f.metaRanges)
	return nil
}

func (f *FS) inodeTableBlocks() uint64 {
	return (uint64(f.sb.InodesPerGroup)*uint64(f.sb.InodeSize) + uint64(f.sb.BlockSize) - 1) / uint64(f.sb.BlockSize)
}

func sortRanges(rs []blockRange) {
	slices.SortFunc(rs, func(a, b blockRange) int { return cmp.Compare(a.start, b.start) })
}

// readBlock reads block blk into buf (len(buf) == block size).
func (f *FS) readBlock(blk uint64, buf []byte) error {
	if blk >= f.sb.BlocksCount {
		return model.Errorf(f.name, -1, "ext4: block %d past the end (%d blocks)", blk, f.sb.BlocksCount)
	}
	off := int64(blk) * f.sb.BlockSize
	n, err := f.r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return model.Wrapf(err, f.name, off, "ext4: read block %d", blk)
}

// BlockAllocated reports whether block blk is in use according to the
// block bitmap. For groups flagged BLOCK_UNINIT (whose bitmap was never
// written) only the group's metadata counts as allocated, as the kernel does.
func (f *FS) BlockAllocated(blk uint64) (bool, error) {
	if blk >= f.sb.BlocksCount {
		return false, model.Errorf(f.name, -1, "ext4: block %d past the end (%d blocks)", blk, f.sb.BlocksCount)
	}
	if blk < uint64(f.sb.FirstDataBlock) {
		return true, nil // boot block of a 1 KiB-block filesystem
	}
	g := (blk - uint64(f.sb.FirstDataBlock)) / uint64(f.sb.BlocksPerGroup)
	idx := (blk - uint64(f.sb.FirstDataBlock)) % uint64(f.sb.BlocksPerGroup)
	gd := f.groups[g]
	csum := f.sb.FeatureRoCompat&(roCompatGdtCsum|roCompatMetadataCsum) != 0
	if csum && gd.flags&bgBlockUninit != 0 {
		return f.isGroupMetadata(g, blk), nil
	}
	bm, err := f.bitmap(uint32(g))
	if err != nil {
		return false, err
	}
	return bm[idx/8]&(1<<(idx%8)) != 0, nil
}

// isGroupMetadata reports whether blk (in group g) is a superblock or
// descriptor copy, reserved GDT block, bitmap or inode table.
func (f *FS) isGroupMetadata(g, blk uint64) bool {
	if inRanges(f.metaRanges, blk) {
		return true
	}
	first := f.groupFirstBlock(g)
	var n uint64 // blocks of superblock + descriptors at the start of g
	dpb := f.descPerBlock()
	if f.sb.FeatureIncompat&incompatMetaBG != 0 && g/dpb >= uint64(f.sb.FirstMetaBG) {
		if f.hasSuper(g) {
			n++
		}
		if i := g % dpb; i == 0 || i == 1 || i == dpb-1 {
			n++
		}
	} else if f.hasSuper(g) {
		gdt := (f.sb.groupCount() + dpb - 1) / dpb
		if f.sb.FeatureIncompat&incompatMetaBG != 0 {
			gdt = uint64(f.sb.FirstMetaBG)
		}
		n = 1 + gdt + uint64(f.sb.ReservedGDT)
	}
	return blk >= first && blk-first < n
}

func inRanges(rs []blockRange, blk uint64) bool {
	lo, hi := 0, len(rs)
	for lo < hi {
		m := (lo + hi) / 2
		if rs[m].start <= blk {
			lo = m + 1
		} else {
			hi = m
		}
	}
	// rs[lo-1] is the last range starting at or before blk; ranges may
	// overlap on hostile input, so look back a little.
	for i := lo - 1; i >= 0 && i >= lo-4; i-- {
		if blk >= rs[i].start && blk < rs[i].end {
			return true
		}
	}
	return false
}

func (f *FS) bitmap(g uint32) ([]byte, error) {
	f.mu.Lock()
	bm, ok := f.bitmaps[g]
	f.mu.Unlock()
	if ok {
		return bm, nil
	}
	bm = make([]byte, f.sb.BlockSize)
	if err := f.readBlock(f.groups[g].blockBitmap, bm); err != nil {
		return nil, fmt.Errorf("ext4: block bitmap of group %d: %w", g, err)
	}
	f.mu.Lock()
	if len(f.bitmaps) >= bitmapCacheLimit {
		clear(f.bitmaps) // simple bound; findings cluster, so refills are rare
	}
	f.bitmaps[g] = bm
	f.mu.Unlock()
	return bm, nil
}
