// Package ufs is a small read-only reader of FreeBSD's UFS2 (FFS version
// 2, little-endian) for package guestfs: the paths of files and
// directories from the directory tree, the byte runs of each file from its
// inode's direct and indirect block addresses (holes left out), and
// whether a fragment no file covers is free, from the free-fragment bitmap
// of its cylinder group.
//
// Not read: UFS1 and big-endian UFS2 (refused with a clear error),
// snapshot files' data (their blocks are the filesystem's own, copied on
// write: listed without runs), the soft-updates journal (.sujournal is a
// plain file here), extended attributes, and deleted files.
//
// Every structure comes from an untrusted image: the superblock's sizes
// and layout are checked against each other and the device size, every
// block address against the filesystem, indirect blocks and mapped blocks
// have budgets, and directory walks refuse cycles. Errors name the device
// and the byte offset. Nothing is ever written.
package ufs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// ErrNotUFS2 is returned when the bytes hold no UFS superblock.
var ErrNotUFS2 = errors.New("ufs2: no UFS2 superblock")

const (
	cgMagic = 0x090255
	// cgHeaderSize is sizeof(struct cg), before its maps.
	cgHeaderSize = 168

	// Offsets in struct cg (sys/ufs/ffs/fs.h).
	cgOffMagic      = 4
	cgOffCgx        = 12
	cgOffNdblk      = 20
	cgOffIusedoff   = 92
	cgOffFreeoff    = 96
	cgOffInitediblk = 120
)

// FS is an opened UFS2 filesystem. It is safe for concurrent use: it
// holds no mutable state.
type FS struct {
	r    io.ReaderAt
	size int64
	name string // the device, for errors
	sb   superblock
	cgs  []cylinderGroup
}

// cylinderGroup is the part of a group's header the reader uses: where its
// maps are, and how many of its inodes were ever initialised.
type cylinderGroup struct {
	iusedOff   uint32 // inode-used bitmap, bytes from the header
	freeOff    uint32 // free-fragment bitmap, bytes from the header
	initedInos uint32 // inodes past this were never written (lazy init)
}

// Driver is the fsys driver of UFS2.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "ufs2",
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

// Open finds and checks the superblock and the cylinder group headers of
// the UFS2 filesystem in r[0:size). name (a partition or volume) is for
// errors.
func Open(r io.ReaderAt, size int64, name string) (*FS, error) {
	f := &FS{r: r, size: size, name: name}
	sb, err := findSuperblock(f.read, size, name)
	if err != nil {
		return nil, err
	}
	f.sb = sb
	if err := f.readCylinderGroups(); err != nil {
		return nil, err
	}
	return f, nil
}

// cgHeaderOff is the byte offset of cylinder group g's header.
func (f *FS) cgHeaderOff(g int64) int64 {
	return (f.sb.cgStart(g) + f.sb.cblkno) * f.sb.fsize
}

// readCylinderGroups reads and checks each group's header.
func (f *FS) readCylinderGroups() error {
	sb := &f.sb
	f.cgs = make([]cylinderGroup, sb.ncg)
	b := make([]byte, cgHeaderSize)
	inoMap := uint32((sb.ipg + 7) / 8)
	for g := range sb.ncg {
		off := f.cgHeaderOff(g)
		if err := f.read(b, off); err != nil {
			return fmt.Errorf("ufs2: cylinder group %d: %w", g, err)
		}
		bad := func(format string, args ...any) error {
			return model.Errorf(f.name, off, "ufs2: cylinder group %d: "+format, append([]any{g}, args...)...)
		}
		if m := le.Uint32(b[cgOffMagic:]); m != cgMagic {
			return bad("bad magic %#x", m)
		}
		if cgx := int64(le.Uint32(b[cgOffCgx:])); cgx != g {
			return bad("says it is group %d", cgx)
		}
		frags := sb.cgFrags(g)
		if n := int64(le.Uint32(b[cgOffNdblk:])); n != frags {
			return bad("%d fragments, the superblock gives it %d", n, frags)
		}
		cg := cylinderGroup{
			iusedOff:   le.Uint32(b[cgOffIusedoff:]),
			freeOff:    le.Uint32(b[cgOffFreeoff:]),
			initedInos: le.Uint32(b[cgOffInitediblk:]),
		}
		freeMap := uint32((frags + 7) / 8)
		cgsize := uint32(sb.cgsize)
		switch {
		case cg.iusedOff < cgHeaderSize || cg.iusedOff > cgsize || inoMap > cgsize-cg.iusedOff:
			return bad("inode map at %d", cg.iusedOff)
		case cg.freeOff < cgHeaderSize || cg.freeOff > cgsize || freeMap > cgsize-cg.freeOff:
			return bad("free-fragment map at %d", cg.freeOff)
		case int64(cg.initedInos) > sb.ipg:
			return bad("%d initialised inodes of %d", cg.initedInos, sb.ipg)
		}
		f.cgs[g] = cg
	}
	return nil
}

// Kind is "ufs2".
func (f *FS) Kind() string { return "ufs2" }

// notes says what of this filesystem is not attributed.
func (f *FS) notes() []string {
	if len(f.sb.snapshots) > 0 {
		return []string{fmt.Sprintf("ufs2: %d snapshot files: their data is not read", len(f.sb.snapshots))}
	}
	return nil
}

// read reads len(b) bytes at off, inside the device.
func (f *FS) read(b []byte, off int64) error {
	if off < 0 || off > f.size-int64(len(b)) {
		return model.Errorf(f.name, off, "ufs2: %d bytes past the end of the %d-byte device", len(b), f.size)
	}
	if err := fsys.ReadFull(f.r, b, off); err != nil {
		return model.Wrapf(err, f.name, off, "ufs2: read %d bytes", len(b))
	}
	return nil
}

// mapBit reads bit i of the map at byte mapOff of cylinder group g's
// header: one byte, so that State and inode checks hold no map in memory.
func (f *FS) mapBit(g int64, mapOff uint32, i int64) (bool, error) {
	var b [1]byte
	if err := f.read(b[:], f.cgHeaderOff(g)+int64(mapOff)+i/8); err != nil {
		return false, err
	}
	return b[0]&(1<<(i%8)) != 0, nil
}

// State says whether a byte that no walked run covers is free (its
// fragment's bit is set in its group's free-fragment map, or it lies past
// the filesystem's end) or allocated (boot area, superblocks, group
// headers, inodes, indirect blocks, directories, extended attributes).
func (f *FS) State(off int64) string {
	if off < 0 {
		return fsys.StateUnknown
	}
	frag := off / f.sb.fsize
	if frag >= f.sb.size {
		return fsys.StateFree // inside the device, past the filesystem
	}
	g := frag / f.sb.fpg
	free, err := f.mapBit(g, f.cgs[g].freeOff, frag%f.sb.fpg)
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
