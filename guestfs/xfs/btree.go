package xfs

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
)

// The per-AG B+trees (free space by block number, inodes) use short-form
// blocks: AG-relative 32-bit pointers.

const (
	// maxAGBtreeLevels bounds AG B+tree height (the kernel's limit is 9).
	maxAGBtreeLevels = 9
	// maxInodeRecords bounds the inode B+tree records kept for a walk (16
	// bytes each, 64 inodes each: 64 MiB for 256M inodes).
	maxInodeRecords = 4 << 20
)

// sbtree describes one kind of short-form B+tree.
type sbtree struct {
	name           string
	magicV4        string
	magicV5        string
	keyLen, recLen int
}

var (
	bnobt = sbtree{"free-space B+tree", "ABTB", "AB3B", 8, 8}
	inobt = sbtree{"inode B+tree", "IABT", "IAB3", 4, 16}
)

func (f *FS) sbtreeHeader() int {
	if f.crc() {
		return 56
	}
	return 16
}

// sbtreeBlock reads the block at agbno of AG ag, which must belong to tree
// t and be at level, and returns it with its record count.
func (f *FS) sbtreeBlock(t sbtree, ag, agbno uint32, level int) ([]byte, int, error) {
	if agbno >= f.agfs[ag].length {
		return nil, 0, model.Errorf(f.name, -1, "xfs: AG %d: %s block %d outside the AG", ag, t.name, agbno)
	}
	off := f.agOff(ag) + int64(agbno)*f.sb.BlockSize
	b := make([]byte, f.sb.BlockSize)
	if err := f.read(b, off); err != nil {
		return nil, 0, fmt.Errorf("xfs: AG %d: %s: %w", ag, t.name, err)
	}
	magic := t.magicV4
	if f.crc() {
		magic = t.magicV5
	}
	if string(b[:4]) != magic {
		return nil, 0, model.Errorf(f.name, off, "xfs: AG %d: bad %s magic %q", ag, t.name, b[:4])
	}
	gotLevel, numrecs := int(be.Uint16(b[4:])), int(be.Uint16(b[6:]))
	if gotLevel != level {
		return nil, 0, model.Errorf(f.name, off, "xfs: AG %d: %s block of level %d where %d was expected", ag, t.name, gotLevel, level)
	}
	per := t.recLen
	if level > 0 {
		per = t.keyLen + 4
	}
	if numrecs > (len(b)-f.sbtreeHeader())/per {
		return nil, 0, model.Errorf(f.name, off, "xfs: AG %d: %s block with %d records", ag, t.name, numrecs)
	}
	return b, numrecs, nil
}

// childPtr returns pointer i of a node block.
func (f *FS) childPtr(t sbtree, b []byte, i int) uint32 {
	hdr := f.sbtreeHeader()
	maxrecs := (len(b) - hdr) / (t.keyLen + 4)
	return be.Uint32(b[hdr+maxrecs*t.keyLen+4*i:])
}

// blockFree looks agbno up in AG ag's free-space B+tree by block number:
// one block read per level.
func (f *FS) blockFree(ag, agbno uint32) (bool, error) {
	a := f.agfs[ag]
	level := int(a.bnoLvl) - 1
	if level < 0 || level >= maxAGBtreeLevels {
		return false, model.Errorf(f.name, f.agOff(ag)+f.sb.SectSize, "xfs: AG %d: free-space B+tree of %d levels", ag, a.bnoLvl)
	}
	hdr := f.sbtreeHeader()
	ptr := a.bnoRoot
	for ; ; level-- {
		b, n, err := f.sbtreeBlock(bnobt, ag, ptr, level)
		if err != nil {
			return false, err
		}
		// The last key (or record) starting at or before agbno.
		per := 8
		if level > 0 {
			per = bnobt.keyLen
		}
		i := searchStart(b[hdr:], per, n, agbno)
		if i < 0 {
			return false, nil // before the first free extent
		}
		if level == 0 {
			rec := b[hdr+i*8:]
			start, count := be.Uint32(rec), be.Uint32(rec[4:])
			return agbno >= start && agbno-start < count, nil
		}
		ptr = f.childPtr(bnobt, b, i)
	}
}

// searchStart returns the index of the last of n entries (per bytes each,
// a big-endian start block first) whose start is <= x, or -1.
func searchStart(b []byte, per, n int, x uint32) int {
	lo, hi := 0, n
	for lo < hi {
		m := (lo + hi) / 2
		if be.Uint32(b[m*per:]) <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// inodeChunk is one inode B+tree record: 64 inodes from agino start, with
// a bit set in free for each free inode (and each hole of a sparse chunk).
type inodeChunk struct {
	ag    uint32
	start uint32
	free  uint64
}

// inodeMap says which inodes the inode B+trees record as allocated.
type inodeMap struct {
	chunks    []inodeChunk // sorted by (ag, start)
	unchecked []bool       // per AG: its tree could not be read
}

// readInodeMap reads every AG's inode B+tree. An AG whose tree cannot be
// read is left out, with a note: its inodes are then not checked.
func (f *FS) readInodeMap() (*inodeMap, []string) {
	m := &inodeMap{unchecked: make([]bool, f.sb.AGCount)}
	var notes []string
	b := make([]byte, 0x20)
	for ag := uint32(0); ag < f.sb.AGCount; ag++ {
		off := f.agOff(ag) + 2*f.sb.SectSize
		err := f.read(b, off)
		if err == nil && string(b[:4]) != agiMagic {
			err = model.Errorf(f.name, off, "xfs: AG %d: bad AGI magic %q", ag, b[:4])
		}
		if err == nil {
			root, levels := be.Uint32(b[0x14:]), be.Uint32(b[0x18:])
			if levels == 0 || levels > maxAGBtreeLevels {
				err = model.Errorf(f.name, off, "xfs: AG %d: inode B+tree of %d levels", ag, levels)
			} else {
				budget := uint64(f.agfs[ag].length)
				err = f.inodeTree(m, ag, root, int(levels)-1, &budget)
			}
		}
		if err != nil {
			if len(notes) < 3 {
				notes = append(notes, fmt.Sprintf("inodes of AG %d not checked against the inode B+tree: %v", ag, err))
			}
			m.chunks = slices.DeleteFunc(m.chunks, func(c inodeChunk) bool { return c.ag == ag })
			m.unchecked[ag] = true
		}
	}
	slices.SortFunc(m.chunks, compareChunks)
	return m, notes
}

func (f *FS) inodeTree(m *inodeMap, ag, agbno uint32, level int, budget *uint64) error {
	if *budget == 0 {
		return model.Errorf(f.name, -1, "xfs: AG %d: inode B+tree larger than its AG", ag)
	}
	*budget--
	b, n, err := f.sbtreeBlock(inobt, ag, agbno, level)
	if err != nil {
		return err
	}
	hdr := f.sbtreeHeader()
	if level == 0 {
		for i := 0; i < n; i++ {
			rec := b[hdr+i*16:]
			if len(m.chunks) >= maxInodeRecords {
				return model.Errorf(f.name, -1, "xfs: more than %d inode chunks", maxInodeRecords)
			}
			m.chunks = append(m.chunks, inodeChunk{ag: ag, start: be.Uint32(rec), free: be.Uint64(rec[8:])})
		}
		return nil
	}
	for i := 0; i < n; i++ {
		if err := f.inodeTree(m, ag, f.childPtr(inobt, b, i), level-1, budget); err != nil {
			return err
		}
	}
	return nil
}

// allocated reports whether inode ino is allocated according to the inode
// B+trees (true for AGs whose tree could not be read).
func (m *inodeMap) allocated(f *FS, ino uint64) bool {
	agShift := uint(f.sb.AGBlkLog) + uint(f.sb.InoPBLog)
	ag := ino >> agShift
	agino := uint32(ino & (1<<agShift - 1))
	if ag >= uint64(len(m.unchecked)) {
		return false
	}
	if m.unchecked[ag] {
		return true
	}
	// The last chunk starting at or before (ag, agino).
	i, _ := slices.BinarySearchFunc(m.chunks, inodeChunk{ag: uint32(ag), start: agino}, func(c, t inodeChunk) int {
		if c.ag != t.ag {
			return cmp.Compare(c.ag, t.ag)
		}
		if c.start <= t.start {
			return -1
		}
		return 1
	})
	if i == 0 {
		return false
	}
	c := m.chunks[i-1]
	if c.ag != uint32(ag) || agino-c.start >= 64 {
		return false
	}
	return c.free&(1<<(agino-c.start)) == 0
}

func compareChunks(a, b inodeChunk) int {
	if c := cmp.Compare(a.ag, b.ag); c != 0 {
		return c
	}
	return cmp.Compare(a.start, b.start)
}
