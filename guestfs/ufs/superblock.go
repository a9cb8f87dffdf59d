package ufs

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/imgaudit/imgaudit/formats/model"
)

var le = binary.LittleEndian

const (
	magicUFS2 = 0x19540119
	magicUFS1 = 0x00011954

	// sbSize is the part of struct fs (1376 bytes) the reader parses.
	sbSize = 1376

	// Offsets in struct fs (sys/ufs/ffs/fs.h), checked against makefs images.
	sbOffSblkno        = 8
	sbOffCblkno        = 12
	sbOffIblkno        = 16
	sbOffDblkno        = 20
	sbOffNcg           = 44
	sbOffBsize         = 48
	sbOffFsize         = 52
	sbOffFrag          = 56
	sbOffNindir        = 116
	sbOffInopb         = 120
	sbOffCgsize        = 160
	sbOffIpg           = 184
	sbOffFpg           = 188
	sbOffSblockloc     = 1000
	sbOffCstotal       = 1008 // struct csum_total: ndir, nbfree, nifree, nffree (int64)
	sbOffSize          = 1080
	sbOffSnapinum      = 1116 // uint32[20]
	sbOffMaxSymlinkLen = 1320
	sbOffMagic         = 1372

	maxSnapshots = 20 // FSMAXSNAP

	inodeSize = 256 // sizeof(struct ufs2_dinode)
	// maxInlineSymlink is UFS2's fs_maxsymlinklen: di_db and di_ib, 15
	// eight-byte addresses, hold a target shorter than that.
	maxInlineSymlink = 120

	// Bounds for hostile input: FreeBSD's newfs makes a few thousand
	// cylinder groups on the largest disks.
	maxCGs = 1 << 18
)

// sbLocations are where FreeBSD looks for a superblock (SBLOCKSEARCH):
// UFS2's usual place, UFS1's (and makefs's UFS2), the start of a
// partition without a boot area, and the "piggy" location.
var sbLocations = [...]int64{65536, 8192, 0, 262144}

// superblock holds the fields of struct fs the reader uses. Block and
// fragment addresses are in fragments (fs_fsize bytes).
type superblock struct {
	loc        int64 // byte offset where it was found
	cblkno     int64 // a group's header, fragments from the group's start
	iblkno     int64 // a group's inodes
	dblkno     int64 // a group's first data fragment
	ncg        int64
	bsize      int64
	fsize      int64
	frag       int64
	nindir     int64
	cgsize     int64
	ipg        int64
	fpg        int64
	size       int64 // fragments in the filesystem
	nbfree     int64 // fs_cstotal: free blocks
	nffree     int64 // fs_cstotal: free fragments outside free blocks
	symlinkMax int64
	snapshots  []uint32 // inode numbers of snapshot files
}

// magicAt reads the 32-bit magic of a superblock at off in head, in both
// byte orders.
func magicAt(head []byte, off int64) (little, big uint32, ok bool) {
	end := off + sbOffMagic + 4
	if end > int64(len(head)) {
		return 0, 0, false
	}
	b := head[off+sbOffMagic : end]
	return le.Uint32(b), binary.BigEndian.Uint32(b), true
}

// Probe reports whether head (a device's first bytes) holds a UFS2
// superblock, in either byte order, at one of the places FreeBSD looks
// (those that head reaches), that says it is where it was found: four
// bytes of magic alone could be anything in another filesystem's data. A
// big-endian one is recognised so that Open can say it is not read.
func Probe(head []byte) bool {
	for _, loc := range sbLocations {
		l, b, ok := magicAt(head, loc)
		switch {
		case !ok:
		case l == magicUFS2 && int64(le.Uint64(head[loc+sbOffSblockloc:])) == loc:
			return true
		case b == magicUFS2 && int64(binary.BigEndian.Uint64(head[loc+sbOffSblockloc:])) == loc:
			return true
		}
	}
	return false
}

// IsUFS1 reports whether head holds a UFS1 superblock (and no UFS2 one):
// recognised, so that the partition is named, but not read.
func IsUFS1(head []byte) bool {
	if Probe(head) {
		return false
	}
	for _, loc := range sbLocations {
		if l, b, ok := magicAt(head, loc); ok && (l == magicUFS1 || b == magicUFS1) {
			return true
		}
	}
	return false
}

// findSuperblock reads the superblock locations in FreeBSD's order and
// parses the first UFS2 superblock that says it is where it was found (a
// stale copy elsewhere says otherwise).
func findSuperblock(read func([]byte, int64) error, size int64, name string) (superblock, error) {
	b := make([]byte, sbSize)
	var firstErr error
	for _, loc := range sbLocations {
		if loc+sbSize > size {
			continue
		}
		if err := read(b, loc); err != nil {
			return superblock{}, err
		}
		magic := le.Uint32(b[sbOffMagic:])
		switch {
		case magic == magicUFS2:
			sb, err := parseSuperblock(b, loc, size, name)
			if err == nil {
				return sb, nil
			}
			if firstErr == nil {
				firstErr = err
			}
		case binary.BigEndian.Uint32(b[sbOffMagic:]) == magicUFS2:
			return superblock{}, model.Wrapf(model.ErrUnsupported, name, loc+sbOffMagic, "ufs2: big-endian UFS2 is not read")
		case magic == magicUFS1 || binary.BigEndian.Uint32(b[sbOffMagic:]) == magicUFS1:
			if firstErr == nil {
				firstErr = model.Wrapf(model.ErrUnsupported, name, loc+sbOffMagic, "ufs2: UFS1 is not read")
			}
		}
	}
	if firstErr != nil {
		return superblock{}, firstErr
	}
	return superblock{}, fmt.Errorf("%s: %w", name, ErrNotUFS2)
}

// parseSuperblock decodes and checks struct fs found at byte offset loc of
// a device of size bytes.
func parseSuperblock(b []byte, loc, size int64, name string) (superblock, error) {
	i32 := func(off int) int64 { return int64(int32(le.Uint32(b[off:]))) }
	u32 := func(off int) int64 { return int64(le.Uint32(b[off:])) }
	i64 := func(off int) int64 { return int64(le.Uint64(b[off:])) }
	sb := superblock{
		loc:        loc,
		cblkno:     i32(sbOffCblkno),
		iblkno:     i32(sbOffIblkno),
		dblkno:     i32(sbOffDblkno),
		ncg:        u32(sbOffNcg),
		bsize:      i32(sbOffBsize),
		fsize:      i32(sbOffFsize),
		frag:       i32(sbOffFrag),
		nindir:     i32(sbOffNindir),
		cgsize:     i32(sbOffCgsize),
		ipg:        u32(sbOffIpg),
		fpg:        i32(sbOffFpg),
		size:       i64(sbOffSize),
		nbfree:     i64(sbOffCstotal + 8),
		nffree:     i64(sbOffCstotal + 24),
		symlinkMax: i32(sbOffMaxSymlinkLen),
	}
	bad := func(format string, args ...any) (superblock, error) {
		return superblock{}, model.Errorf(name, loc, "ufs2: bad superblock: "+format, args...)
	}
	inopb := u32(sbOffInopb)
	sblkno := i32(sbOffSblkno)
	switch {
	case i64(sbOffSblockloc) != loc:
		return bad("found at byte %d, says it is at %d", loc, i64(sbOffSblockloc))
	case sb.bsize < 4096 || sb.bsize > 65536 || bits.OnesCount64(uint64(sb.bsize)) != 1:
		return bad("block size %d", sb.bsize)
	case sb.frag < 1 || sb.frag > 8 || bits.OnesCount64(uint64(sb.frag)) != 1 || sb.fsize*sb.frag != sb.bsize || sb.fsize < 512:
		return bad("%d fragments of %d bytes in a %d-byte block", sb.frag, sb.fsize, sb.bsize)
	case sb.nindir != sb.bsize/8 || inopb != sb.bsize/inodeSize:
		return bad("%d addresses and %d inodes per block", sb.nindir, inopb)
	case sb.cgsize <= 0 || sb.cgsize > sb.bsize:
		return bad("cylinder group header of %d bytes", sb.cgsize)
	case sb.fpg <= 0 || sb.fpg%sb.frag != 0:
		return bad("%d fragments per cylinder group", sb.fpg)
	case sb.ipg <= 0 || sb.ipg%inopb != 0:
		return bad("%d inodes per cylinder group", sb.ipg)
	case sblkno < 0 || sb.cblkno < sblkno || sb.cblkno+(sb.cgsize+sb.fsize-1)/sb.fsize > sb.iblkno ||
		sb.iblkno+sb.ipg*inodeSize/sb.fsize > sb.dblkno || sb.dblkno > sb.fpg:
		return bad("cylinder group layout: header at %d, inodes at %d, data at %d of %d fragments", sb.cblkno, sb.iblkno, sb.dblkno, sb.fpg)
	case sb.ncg <= 0 || sb.ncg > maxCGs || sb.ncg*sb.ipg > 1<<32:
		return bad("%d cylinder groups of %d inodes", sb.ncg, sb.ipg)
	case sb.size <= (sb.ncg-1)*sb.fpg || sb.size > sb.ncg*sb.fpg:
		return bad("%d fragments in %d cylinder groups of %d", sb.size, sb.ncg, sb.fpg)
	case sb.size-(sb.ncg-1)*sb.fpg < sb.dblkno:
		return bad("last cylinder group of %d fragments cannot hold its inodes", sb.size-(sb.ncg-1)*sb.fpg)
	case sb.size > size/sb.fsize:
		// Larger than its device: truncated or hostile; refusing it keeps
		// every later bound meaningful.
		return bad("%d fragments of %d bytes exceed the %d-byte device", sb.size, sb.fsize, size)
	case sb.symlinkMax != maxInlineSymlink:
		return bad("inline symlink limit %d", sb.symlinkMax)
	}
	for i := range maxSnapshots {
		if ino := le.Uint32(b[sbOffSnapinum+4*i:]); ino != 0 {
			sb.snapshots = append(sb.snapshots, ino)
		}
	}
	return sb, nil
}

// inodes is the number of inodes the filesystem has.
func (sb *superblock) inodes() int64 { return sb.ncg * sb.ipg }

// cgStart is the first fragment of cylinder group g (UFS2 does not
// rotate its groups' headers as UFS1 did).
func (sb *superblock) cgStart(g int64) int64 { return g * sb.fpg }

// cgFrags is the number of fragments of cylinder group g: fs_fpg but for
// the last, which ends with the filesystem.
func (sb *superblock) cgFrags(g int64) int64 {
	return min(sb.fpg, sb.size-sb.cgStart(g))
}
