package qcow2

import (
	"container/list"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/imgaudit/imgaudit/formats/model"
)

// Entry bits (docs/interop/qcow2.txt, block/qcow2.h).
const (
	offsetMask     = 0x00fffffffffffe00 // L1E_OFFSET_MASK, L2E_OFFSET_MASK
	flagCopied     = 1 << 63
	flagCompressed = 1 << 62
	flagZero       = 1 << 0
	sectorSize     = 512
)

// runKind says how a run of guest bytes is stored in one layer.
type runKind uint8

const (
	runUnallocated runKind = iota // read the backing file, else zeros
	runZero                       // reads as zeros, shadows the backing file
	runData                       // stored as-is at host
	runCompressed                 // one compressed cluster
)

// run is a stretch of guest bytes with one storage kind.
type run struct {
	kind   runKind
	length int64
	host   int64 // runData: host offset of the first byte; runCompressed: stream start
	clen   int64 // runCompressed: stored length
	cstart int64 // runCompressed: L1-space offset of the cluster's first byte
}

// mapper turns L1-space offsets into runs, for one image file.
type mapper struct {
	name        string
	f           io.ReaderAt // the qcow2 file (metadata)
	fileSize    int64
	data        io.ReaderAt // where data clusters live: f or the external data file
	dataName    string
	hasDataFile bool
	clusterBits uint
	clusterSize int64
	l2Bits      uint
	l2Entries   int64
	extendedL2  bool
	scBits      uint // subcluster size bits (extended L2)
	compression uint8
	csizeShift  uint
	csizeMask   uint64
	coffMask    uint64

	l2     *l2Cache
	dec    *decompressor
	l1Used atomic.Int64 // bytes of L1 tables loaded, bounded by l1Budget
}

func newMapper(name string, f io.ReaderAt, fileSize int64, h *header) *mapper {
	m := &mapper{
		name:        name,
		f:           f,
		fileSize:    fileSize,
		data:        f,
		dataName:    name,
		clusterBits: uint(h.clusterBits),
		clusterSize: h.clusterSize(),
		l2Entries:   h.l2Entries(),
		extendedL2:  h.extendedL2(),
		compression: h.compression,
	}
	for int64(1)<<m.l2Bits < m.l2Entries {
		m.l2Bits++
	}
	if m.extendedL2 {
		m.scBits = m.clusterBits - 5
	}
	m.csizeShift = 62 - (m.clusterBits - 8)
	m.csizeMask = (1 << (m.clusterBits - 8)) - 1
	m.coffMask = (1 << m.csizeShift) - 1
	// Keep about 32 MiB of L2 tables, and at least 16 of them.
	m.l2 = newL2Cache(max(16, int((32<<20)/m.clusterSize)))
	m.dec = newDecompressor(h.compression, m.clusterSize)
	return m
}

// l1Budget bounds the L1 tables held in memory for one image: a hostile
// snapshot table could otherwise point thousands of snapshots at distinct
// 32 MiB L1 tables.
func (m *mapper) l1Budget() int64 { return max(256<<20, 2*m.fileSize) }

// readL1 loads an L1 table of n entries at host offset off.
func (m *mapper) readL1(off uint64, n uint32, what string) ([]uint64, error) {
	if n == 0 {
		return nil, nil
	}
	bytes := int64(n) * 8
	if bytes > maxL1Bytes {
		return nil, model.Errorf(m.name, int64(off), "%s L1 table of %d entries exceeds QEMU's limit", what, n)
	}
	if int64(off) < 0 || int64(off) >= maxOffset || off&uint64(m.clusterSize-1) != 0 || off == 0 {
		return nil, model.Errorf(m.name, int64(off), "%s L1 table offset 0x%x is invalid", what, off)
	}
	if int64(off)+bytes > m.fileSize {
		return nil, model.Errorf(m.name, int64(off), "%s L1 table runs past the end of the file", what)
	}
	if m.l1Used.Add(bytes) > m.l1Budget() {
		m.l1Used.Add(-bytes)
		return nil, model.Errorf(m.name, int64(off), "%s L1 table: too many L1 tables for a file of this size", what)
	}
	buf := make([]byte, bytes)
	if _, err := m.f.ReadAt(buf, int64(off)); err != nil {
		return nil, model.Wrapf(err, m.name, int64(off), "read %s L1 table", what)
	}
	l1 := make([]uint64, n)
	for i := range l1 {
		l1[i] = binary.BigEndian.Uint64(buf[8*i:])
	}
	return l1, nil
}

// cursor remembers the last L2 table a caller used, so that walking one
// table costs one cache lookup. Each goroutine uses its own.
type cursor struct {
	off uint64
	tbl []byte
}

func (m *mapper) table(c *cursor, off uint64) ([]byte, error) {
	if c.tbl != nil && c.off == off {
		return c.tbl, nil
	}
	t, err := m.readL2(off)
	if err != nil {
		return nil, err
	}
	c.off, c.tbl = off, t
	return t, nil
}

// readL2 returns the L2 table at host offset off, through the cache.
func (m *mapper) readL2(off uint64) ([]byte, error) {
	if t := m.l2.get(off); t != nil {
		return t, nil
	}
	if off&uint64(m.clusterSize-1) != 0 {
		return nil, model.Errorf(m.name, int64(off), "L2 table offset 0x%x is not cluster aligned", off)
	}
	if int64(off)+m.clusterSize > m.fileSize {
		return nil, model.Errorf(m.name, int64(off), "L2 table at 0x%x runs past the end of the file", off)
	}
	t := make([]byte, m.clusterSize)
	if _, err := m.f.ReadAt(t, int64(off)); err != nil {
		return nil, model.Wrapf(err, m.name, int64(off), "read L2 table")
	}
	m.l2.put(off, t)
	return t, nil
}

// entry returns L2 entry i of a table and its subcluster bitmap.
func (m *mapper) entry(tbl []byte, i int64) (e, bitmap uint64) {
	if m.extendedL2 {
		return binary.BigEndian.Uint64(tbl[16*i:]), binary.BigEndian.Uint64(tbl[16*i+8:])
	}
	return binary.BigEndian.Uint64(tbl[8*i:]), 0
}

// compressed decodes a compressed L2 entry into stream offset and length.
func (m *mapper) compressed(e uint64) (coff, clen int64) {
	coff = int64(e & m.coffMask)
	nsect := int64((e>>m.csizeShift)&m.csizeMask) + 1
	return coff, nsect*sectorSize - coff&(sectorSize-1)
}

// classify describes the bytes of one L2 entry from offset inCl within the
// cluster: the run it starts and how far it goes inside the cluster.
func (m *mapper) classify(e, bitmap uint64, inCl int64, entryAt int64) (run, error) {
	cs := m.clusterSize
	if e&flagCompressed != 0 {
		if m.hasDataFile {
			return run{}, model.Errorf(m.name, entryAt, "compressed cluster in an image with an external data file")
		}
		coff, clen := m.compressed(e)
		return run{kind: runCompressed, length: cs - inCl, host: coff, clen: clen}, nil
	}
	off := int64(e & offsetMask)
	allocated := off != 0 || (m.hasDataFile && e&flagCopied != 0)
	if !m.extendedL2 {
		switch {
		case e&flagZero != 0:
			return run{kind: runZero, length: cs - inCl}, nil
		case !allocated:
			return run{kind: runUnallocated, length: cs - inCl}, nil
		}
		if off&(cs-1) != 0 {
			return run{}, model.Errorf(m.name, entryAt, "data cluster offset 0x%x is not cluster aligned", off)
		}
		return run{kind: runData, length: cs - inCl, host: off + inCl}, nil
	}
	// Extended L2: 32 subclusters, allocation bits 0-31, zero bits 32-63.
	sc := inCl >> m.scBits
	state := func(i int64) (runKind, error) {
		a, z := bitmap>>i&1 != 0, bitmap>>(32+i)&1 != 0
		switch {
		case a && z:
			return 0, model.Errorf(m.name, entryAt, "subcluster %d is both allocated and zero", i)
		case a:
			if !allocated {
				return 0, model.Errorf(m.name, entryAt, "allocated subcluster %d in a cluster with no host offset", i)
			}
			return runData, nil
		case z:
			return runZero, nil
		}
		return runUnallocated, nil
	}
	k, err := state(sc)
	if err != nil {
		return run{}, err
	}
	if k == runData && off&(cs-1) != 0 {
		return run{}, model.Errorf(m.name, entryAt, "data cluster offset 0x%x is not cluster aligned", off)
	}
	end := sc + 1
	for ; end < 32; end++ {
		k2, err := state(end)
		if err != nil || k2 != k {
			break
		}
	}
	r := run{kind: k, length: end<<m.scBits - inCl}
	if k == runData {
		r.host = off + inCl
	}
	return r, nil
}

// lookup describes the bytes at L1-space offset pos through table l1: one
// run of at most limit bytes. Runs of the same kind (and, for data, of
// contiguous host bytes) are joined within one L2 table.
func (m *mapper) lookup(c *cursor, l1 []uint64, pos, limit int64) (run, error) {
	cs := m.clusterSize
	gci := pos >> m.clusterBits
	l1i := gci >> m.l2Bits
	cover := int64(1) << (m.clusterBits + m.l2Bits)
	if l1i >= int64(len(l1)) {
		return run{kind: runUnallocated, length: limit}, nil
	}
	l2off := l1[l1i] & offsetMask
	if l2off == 0 {
		return run{kind: runUnallocated, length: min(limit, (l1i+1)*cover-pos)}, nil
	}
	tbl, err := m.table(c, l2off)
	if err != nil {
		return run{}, err
	}
	idx := gci & (m.l2Entries - 1)
	inCl := pos & (cs - 1)
	e, bm := m.entry(tbl, idx)
	r, err := m.classify(e, bm, inCl, int64(l2off)+idx*(cs/m.l2Entries))
	if err != nil {
		return run{}, err
	}
	if r.kind == runCompressed {
		r.cstart = pos - inCl
		r.length = min(r.length, limit)
		return r, nil
	}
	for inCl+r.length == cs && r.length < limit && idx+1 < m.l2Entries {
		idx++
		e, bm := m.entry(tbl, idx)
		n, err := m.classify(e, bm, 0, int64(l2off)+idx*(cs/m.l2Entries))
		if err != nil || n.kind != r.kind || (r.kind == runData && n.host != r.host+r.length) {
			break
		}
		r.length += n.length
		inCl = 0
		if n.length < cs {
			break
		}
	}
	r.length = min(r.length, limit)
	return r, nil
}

// readData reads host bytes of data clusters; bytes past the end of the
// host file read as zeros, as in QEMU.
func (m *mapper) readData(p []byte, host int64) error {
	n, err := m.data.ReadAt(p, host)
	if n < len(p) {
		if err != nil && !errors.Is(err, io.EOF) {
			return model.Wrapf(err, m.dataName, host, "read data")
		}
		clear(p[n:])
	}
	return nil
}

// l2Cache is a bounded LRU of L2 tables keyed by host offset. Tables are
// never modified once cached, so callers may keep using one after eviction.
type l2Cache struct {
	mu  sync.Mutex
	cap int
	m   map[uint64]*list.Element
	lru *list.List
}

type l2Slot struct {
	off uint64
	tbl []byte
}

func newL2Cache(n int) *l2Cache {
	return &l2Cache{cap: n, m: make(map[uint64]*list.Element), lru: list.New()}
}

func (c *l2Cache) get(off uint64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[off]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*l2Slot).tbl
	}
	return nil
}

func (c *l2Cache) put(off uint64, tbl []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[off]; ok {
		return
	}
	c.m[off] = c.lru.PushFront(&l2Slot{off, tbl})
	for c.lru.Len() > c.cap {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.m, el.Value.(*l2Slot).off)
	}
}
