// Package btrfs is a small read-only reader of single-device btrfs for
// package guestfs: the paths of files and directories of every subvolume
// with the device bytes that hold their data (inline extents inside tree
// leaves included), and whether a device byte is allocated (an extent of
// the extent tree, a superblock copy) or free.
//
// There is no btrfs reader in Go that exposes block locations (go-diskfs has
// none), so this is our own, on io.ReaderAt, after the on-disk format of
// the kernel's fs/btrfs/ctree.h and btrfs-progs' kernel-shared/.
//
// Every structure comes from an untrusted image: tree blocks are checked
// (their own address, filesystem id, level, item count, crc32c when the
// filesystem uses it), trees are at most maxLevel deep, no tree block is
// read twice in one traversal (no cycles), and the chunk, extent, subvolume
// and entry counts are capped before anything grows.
package btrfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// ErrNotBtrfs is returned when the bytes hold no btrfs superblock.
var ErrNotBtrfs = errors.New("btrfs: no btrfs superblock")

const (
	superOffset  = 0x10000 // the primary superblock
	superSize    = 4096
	magicOffset  = 0x40
	magic        = "_BHRfS_M"
	headerSize   = 101 // struct btrfs_header
	itemSize     = 25  // struct btrfs_item: key, offset, size
	keyPtrSize   = 33  // struct btrfs_key_ptr: key, blockptr, generation
	keySize      = 17  // struct btrfs_disk_key
	maxLevel     = 7   // BTRFS_MAX_LEVEL is 8: levels 0..7
	sysArrayOff  = 0x32b
	sysArrayMax  = 2048
	devItemOff   = 0xc9
	fsidOff      = 0x20
	metaUUIDOff  = 0x23b
	incompatOff  = 0xbc
	csumTypeOff  = 0xc4
	csumCRC32C   = 0
	incompatMUID = 1 << 10 // METADATA_UUID: tree blocks carry metadata_uuid
	incompatLZO  = 1 << 3
	incompatZSTD = 1 << 4

	// Reserved tree and inode numbers.
	rootTreeID    = 1
	extentTreeID  = 2
	fsTreeID      = 5
	rootTreeDir   = 6 // the root tree's directory, holding "default"
	firstChunkObj = 256
)

// Item types (key.type).
const (
	typeInodeItem    = 1
	typeDirItem      = 84
	typeDirIndex     = 96
	typeExtentData   = 108
	typeRootItem     = 132
	typeRootRef      = 156
	typeExtentItem   = 168
	typeMetadataItem = 169
	typeChunkItem    = 228
)

// Bounds on what a hostile image can make us hold or do.
const (
	minNodeSize   = 4096
	maxNodeSize   = 64 << 10
	maxChunks     = 1 << 20
	maxAllocRuns  = 8 << 20 // merged allocated extents: 16 bytes each
	maxSubvolumes = 4096
	maxDirDepth   = 4096
	maxEntries    = 4 << 20
	maxFileRuns   = 1 << 20 // one file's runs (a run per extent and copy)
	maxSymlinks   = 40
	cacheBytes    = 32 << 20
)

// superblock mirrors beyond the primary (btrfs_sb_offset(1), (2)).
var superMirrors = []int64{64 << 20, 256 << 30}

// Probe reports whether head (the first 64 KiB + 256 bytes of a partition,
// or fewer) holds the btrfs magic of the primary superblock.
func Probe(head []byte) bool {
	o := superOffset + magicOffset
	return len(head) >= o+len(magic) && string(head[o:o+len(magic)]) == magic
}

// Driver is the fsys driver of btrfs.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "btrfs",
		Probe: Probe,
		Open: func(ctx context.Context, r io.ReaderAt, size int64, name string) (fsys.FS, []string, error) {
			f, err := Open(ctx, r, size, name)
			if err != nil {
				return nil, nil, err
			}
			return f, f.notes, nil
		},
	}
}

// key is a btrfs key: (objectid, type, offset), compared in that order.
type key struct {
	obj uint64
	typ uint8
	off uint64
}

func (a key) less(b key) bool {
	if a.obj != b.obj {
		return a.obj < b.obj
	}
	if a.typ != b.typ {
		return a.typ < b.typ
	}
	return a.off < b.off
}

func readKey(b []byte) key {
	return key{obj: le.Uint64(b), typ: b[8], off: le.Uint64(b[9:])}
}

var (
	le     = binary.LittleEndian
	crcTab = crc32.MakeTable(crc32.Castagnoli)
)

// FS is an opened btrfs filesystem. It is safe for concurrent use.
type FS struct {
	r        io.ReaderAt
	size     int64
	name     string // partition name, for errors
	nodeSize uint32
	sector   uint32
	fsid     [16]byte // what tree blocks carry (metadata_uuid when set)
	csum     bool     // tree blocks carry a crc32c we check
	devid    uint64
	chunks   chunkMap
	alloc    []extentRange // allocated logical ranges, sorted, merged
	// allocKnown is false when the extent tree could not be read: then
	// bytes inside chunks are StateUnknown.
	allocKnown bool
	rootTree   treeRoot
	notes      []string
	cache      nodeCache
	// root is where the reader resolves absolute paths (readerRoot),
	// found at the first Open or ReadDir.
	rootOnce sync.Once
	root     node
	rootErr  error
}

type treeRoot struct {
	bytenr uint64
	level  uint8
}

// Open reads the superblock, the chunk tree and the extent tree of the
// btrfs in r[0:size). name ("p1", "disk") names the partition in errors and
// notes. Notes say what is not supported (other devices, striped or parity
// profiles) or could not be read.
func Open(ctx context.Context, r io.ReaderAt, size int64, name string) (*FS, error) {
	sb, off, err := readSuper(r, size, name)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, size: size, name: name}
	f.nodeSize = le.Uint32(sb[0x94:])
	f.sector = le.Uint32(sb[0x90:])
	if f.nodeSize < minNodeSize || f.nodeSize > maxNodeSize || f.nodeSize&(f.nodeSize-1) != 0 ||
		f.sector < 512 || f.sector > f.nodeSize || f.sector&(f.sector-1) != 0 {
		return nil, model.Wrapf(errCorrupt, name, off, "btrfs: superblock: node size %d, sector size %d", f.nodeSize, f.sector)
	}
	copy(f.fsid[:], sb[fsidOff:])
	if le.Uint64(sb[incompatOff:])&incompatMUID != 0 {
		copy(f.fsid[:], sb[metaUUIDOff:])
	}
	f.csum = le.Uint16(sb[csumTypeOff:]) == csumCRC32C
	if c := compressionNames(le.Uint64(sb[incompatOff:])); c != "" {
		f.notes = append(f.notes, "compression in use ("+c+"): compressed extents are attributed to their files and hold compressed bytes, which only decoding reads")
	}
	f.devid = le.Uint64(sb[devItemOff:])
	if n := le.Uint64(sb[0x88:]); n > 1 {
		f.notes = append(f.notes, fmt.Sprintf("btrfs spans %d devices: only device %d (this one) is read; data on the others is not attributed", n, f.devid))
	}
	f.cache.init(cacheBytes / int(f.nodeSize))
	if err := f.chunks.bootstrap(sb, f.devid); err != nil {
		return nil, model.Wrapf(err, name, off+sysArrayOff, "btrfs: sys_chunk_array")
	}
	chunkRoot := treeRoot{le.Uint64(sb[0x58:]), sb[0xc7]}
	if err := f.readChunkTree(ctx, chunkRoot); err != nil {
		return nil, model.Wrapf(err, name, f.physOf(chunkRoot.bytenr, off+0x58), "btrfs: chunk tree at logical %d", chunkRoot.bytenr)
	}
	f.notes = append(f.notes, f.chunks.notes...)
	f.rootTree = treeRoot{le.Uint64(sb[0x50:]), sb[0xc6]}
	if _, err := f.readNode(f.rootTree.bytenr, int(f.rootTree.level)); err != nil {
		return nil, model.Wrapf(err, name, f.physOf(f.rootTree.bytenr, off+0x50), "btrfs: root tree at logical %d", f.rootTree.bytenr)
	}
	if err := f.readExtentTree(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f.notes = append(f.notes, fmt.Sprintf("extent tree unreadable (%v): free and allocated space inside chunks is unknown", err))
	}
	return f, nil
}

var errCorrupt = errors.New("corrupt")

// compressionNames names the compressions the incompat flags announce.
// zlib needs no flag: a filesystem may hold zlib extents without one.
func compressionNames(incompat uint64) string {
	var out []string
	if incompat&incompatLZO != 0 {
		out = append(out, "lzo")
	}
	if incompat&incompatZSTD != 0 {
		out = append(out, "zstd")
	}
	return strings.Join(out, ", ")
}

// readSuper returns the primary superblock, or the mirror with the
// highest generation when the primary is not valid.
func readSuper(r io.ReaderAt, size int64, name string) ([]byte, int64, error) {
	var best []byte
	var bestOff int64
	var firstErr error
	for i, off := range append([]int64{superOffset}, superMirrors...) {
		if off+superSize > size {
			break
		}
		b := make([]byte, superSize)
		if err := fsys.ReadFull(r, b, off); err != nil {
			if firstErr == nil {
				firstErr = model.Wrapf(err, name, off, "btrfs: read superblock")
			}
			continue
		}
		if string(b[magicOffset:magicOffset+8]) != magic || le.Uint64(b[0x30:]) != uint64(off) {
			continue
		}
		if le.Uint16(b[csumTypeOff:]) == csumCRC32C && crc32.Checksum(b[32:], crcTab) != le.Uint32(b) {
			continue
		}
		if i == 0 {
			return b, off, nil
		}
		if best == nil || le.Uint64(b[0x48:]) > le.Uint64(best[0x48:]) {
			best, bestOff = b, off
		}
	}
	if best != nil {
		return best, bestOff, nil
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return nil, 0, fmt.Errorf("%s: %w", name, ErrNotBtrfs)
}

// Kind is "btrfs".
func (f *FS) Kind() string { return "btrfs" }

// Notes say what Open could not map or read.
func (f *FS) Notes() []string { return f.notes }

// nodeCache keeps recently read tree blocks by logical address. When it is
// full it is emptied: the hot upper levels come back at the next read.
type nodeCache struct {
	mu    sync.Mutex
	max   int
	nodes map[uint64][]byte
}

func (c *nodeCache) init(max int) {
	c.max = max
	c.nodes = make(map[uint64][]byte)
}

func (c *nodeCache) get(addr uint64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[addr]
}

func (c *nodeCache) put(addr uint64, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.nodes) >= c.max {
		clear(c.nodes)
	}
	c.nodes[addr] = b
}

// physOf is the device offset of logical address addr's first copy, for
// errors; where no chunk maps it, ref (the offset of the pointer to it).
func (f *FS) physOf(addr uint64, ref int64) int64 {
	off := ref
	f.chunks.mapRange(addr, 1, false, func(p piece) { off = int64(p.phys) })
	return off
}
