package qcow2

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

// bitset is one bit per host cluster.
type bitset []uint64

func newBitset(n int64) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i int64)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) get(i int64) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) setRange(a, z int64) {
	for i := a; i < z; i++ {
		b.set(i)
	}
}

// span is a half-open host byte range.
type span struct{ start, end int64 }

// hostUse records which bytes of one host file some table references.
type hostUse struct {
	name     string
	f        io.ReaderAt
	size     int64
	cs       int64
	bits     uint
	n        int64  // clusters in the file
	touched  bitset // cluster holds some referenced byte
	full     bitset // cluster is referenced as a whole
	partial  []span // referenced ranges that do not cover whole clusters
	pastEOF  int64  // references to bytes past the end of the file
	zeroHeld bitset // host clusters kept behind zero-flag entries
	// compressed lists the live compressed clusters' referenced ranges
	// (sector-rounded, as L2 entries give them), and codec their codec:
	// the slack between them is where freed streams lie.
	compressed []span
	codec      string
}

func newHostUse(name string, f io.ReaderAt, size int64, clusterBits uint) *hostUse {
	cs := int64(1) << clusterBits
	n := (size + cs - 1) / cs
	return &hostUse{name: name, f: f, size: size, cs: cs, bits: clusterBits, n: n,
		touched: newBitset(n), full: newBitset(n), zeroHeld: newBitset(n)}
}

// mark records [off, off+length) as referenced.
func (u *hostUse) mark(off, length int64) {
	if length <= 0 || off < 0 {
		return
	}
	end := off + length
	if end > u.size {
		u.pastEOF++
		end = u.size
	}
	if off >= end {
		return
	}
	first, last := off>>u.bits, (end-1)>>u.bits
	wholeFrom, wholeTo := (off+u.cs-1)>>u.bits, end>>u.bits // clusters fully inside
	if end == u.size {
		wholeTo = last + 1 // the file's last, short cluster
	}
	u.touched.setRange(first, last+1)
	u.full.setRange(wholeFrom, wholeTo)
	if first < wholeFrom || last >= wholeTo {
		if n := len(u.partial); n > 0 && u.partial[n-1].end == off {
			u.partial[n-1].end = end
		} else {
			u.partial = append(u.partial, span{off, end})
		}
	}
}

func (u *hostUse) markZeroHeld(off int64) {
	if off >= 0 && off < u.size {
		u.zeroHeld.set(off >> u.bits)
	}
}

// usage is the result of walking every table of an image.
type usage struct {
	qcow *hostUse
	data *hostUse // external data file, or nil
	errs []error
}

// walkTables marks every byte that the header, refcount structures, L1/L2
// tables, snapshot table and bitmaps reference.
func (o *opened) walkTables(ctx context.Context) *usage {
	m := o.m
	u := &usage{qcow: newHostUse(o.path, o.f, o.fileSize, m.clusterBits)}
	data := u.qcow
	if o.dataFile != nil {
		u.data = newHostUse(o.dataPath, o.dataFile, o.dataSize, m.clusterBits)
		data = u.data
	}
	q := u.qcow
	h := o.h
	fail := func(err error) { u.errs = append(u.errs, err) }
	q.codec = map[uint8]string{compressionZlib: "deflate", compressionZstd: "zstd"}[h.compression]

	q.mark(0, max(h.extensionsEnd, int64(h.headerLen)))
	if h.backingOff != 0 {
		q.mark(int64(h.backingOff), int64(h.backingSize))
	}
	q.mark(int64(h.rtOff), int64(h.rtClusters)*m.clusterSize)
	for _, b := range o.refBlocks {
		if b != 0 {
			q.mark(int64(b), m.clusterSize)
		}
	}
	if h.hasLuks {
		q.mark(int64(h.luksOff), int64(h.luksLen))
	}
	if h.nbSnapshots > 0 {
		q.mark(int64(h.snapshotsOff), o.snapTableLen)
	}

	// A data cluster is referenced only where a view reads it: an L2
	// entry past the disk's size (or, in a snapshot, past its VM state)
	// maps a cluster that no view reads, which is unreferenced (an audit
	// planted a key at 3 MiB of a 4 MiB image and lowered its size to
	// 2 MiB: read by no view). The views read a prefix of each L2 table
	// (the disk starts at 0, a snapshot's VM state at an L1 boundary), so
	// marked keeps, per table, how many leading entries are marked: a
	// table that several L1 entries name is walked again only for more.
	cover := h.l1Coverage()
	marked := map[uint64]int64{}
	walkL1 := func(l1 []uint64, l1Off uint64, what string, size, vmOff, vmEnd int64) {
		q.mark(int64(l1Off), int64(len(l1))*8)
		var c cursor
		for l1i, e := range l1 {
			if ctx.Err() != nil {
				return
			}
			l2off := e & offsetMask
			if l2off == 0 {
				continue
			}
			reach := func(end int64) int64 {
				start := int64(l1i) * cover
				if start >= end {
					return 0
				}
				return min(m.l2Entries, (end-start+m.clusterSize-1)/m.clusterSize)
			}
			k := reach(size)
			if start := int64(l1i) * cover; vmEnd > vmOff && start >= vmOff {
				k = reach(vmEnd)
			}
			done, seen := marked[l2off]
			if seen && k <= done {
				continue
			}
			tbl, err := m.table(&c, l2off)
			if err != nil {
				if !seen {
					fail(fmt.Errorf("%s: %w", what, err))
				}
				continue
			}
			if !seen {
				q.mark(int64(l2off), m.clusterSize)
			}
			marked[l2off] = max(done, k)
			o.walkL2(tbl, int64(l2off), q, data, done, k)
		}
	}
	if l1, err := o.activeL1(); err != nil {
		fail(err)
	} else {
		walkL1(l1, h.l1Off, "active", int64(h.size), 0, 0)
	}
	for i := range o.snaps {
		s := &o.snaps[i]
		l1, err := s.l1()
		if err != nil {
			fail(err)
			continue
		}
		size := int64(h.size)
		if s.hasDiskSize {
			size = int64(s.diskSize)
		}
		vmOff := ceilDiv(size, cover) * cover
		vmEnd := vmOff
		if s.vmStateSize > 0 && vmOff >= 0 && int64(s.vmStateSize) >= 0 && vmOff <= 1<<62-int64(s.vmStateSize) {
			vmEnd = vmOff + int64(s.vmStateSize)
		}
		walkL1(l1, s.l1Off, "snapshot "+strconv.Quote(s.name), size, vmOff, vmEnd)
	}
	o.walkBitmaps(q, fail)
	if err := ctx.Err(); err != nil {
		fail(err)
	}
	return u
}

// walkL2 marks the data clusters that entries [from, to) of one L2
// table reference.
func (o *opened) walkL2(tbl []byte, tblOff int64, q, data *hostUse, from, to int64) {
	m := o.m
	scs := m.clusterSize >> 5
	for i := from; i < to; i++ {
		e, bm := m.entry(tbl, i)
		if e&flagCompressed != 0 {
			coff, clen := m.compressed(e)
			q.mark(coff, clen)
			if coff >= 0 && clen > 0 && coff < q.size {
				q.compressed = append(q.compressed, span{coff, coff + clen})
			}
			continue
		}
		off := int64(e & offsetMask)
		allocated := off != 0 || (m.hasDataFile && e&flagCopied != 0)
		if !allocated || off&(m.clusterSize-1) != 0 {
			continue
		}
		if !m.extendedL2 {
			if e&flagZero != 0 {
				data.markZeroHeld(off)
			} else {
				data.mark(off, m.clusterSize)
			}
			continue
		}
		alloc := uint32(bm)
		if alloc == 0 {
			data.markZeroHeld(off)
			continue
		}
		for sc := int64(0); sc < 32; {
			if alloc>>sc&1 == 0 {
				sc++
				continue
			}
			end := sc
			for end < 32 && alloc>>end&1 != 0 {
				end++
			}
			data.mark(off+sc*scs, (end-sc)*scs)
			sc = end
		}
	}
}

// walkBitmaps marks the bitmap directory, the bitmap tables and their data
// clusters.
func (o *opened) walkBitmaps(q *hostUse, fail func(error)) {
	h, m := o.h, o.m
	if h.bitmaps == nil || h.bitmaps.count == 0 {
		return
	}
	bx := h.bitmaps
	if bx.count > maxBitmaps || bx.dirLen > maxBitmapDirectory || int64(bx.dirOff)+int64(bx.dirLen) > o.fileSize {
		fail(model.Errorf(o.path, int64(bx.dirOff), "bitmap directory (%d bitmaps, %d bytes) is invalid", bx.count, bx.dirLen))
		return
	}
	dir := make([]byte, bx.dirLen)
	if _, err := o.f.ReadAt(dir, int64(bx.dirOff)); err != nil {
		fail(model.Wrapf(err, o.path, int64(bx.dirOff), "read bitmap directory"))
		return
	}
	q.mark(int64(bx.dirOff), int64(bx.dirLen))
	be := binary.BigEndian
	for i, p := uint32(0), 0; i < bx.count; i++ {
		if p+24 > len(dir) {
			fail(model.Errorf(o.path, int64(bx.dirOff)+int64(p), "bitmap directory truncated"))
			return
		}
		tOff, tSize := int64(be.Uint64(dir[p:])), int64(be.Uint32(dir[p+8:]))
		nameLen, extra := int(be.Uint16(dir[p+14:])), int(be.Uint32(dir[p+16:]))
		p += (24 + extra + nameLen + 7) &^ 7
		if tOff <= 0 || tOff+tSize*8 > o.fileSize {
			fail(model.Errorf(o.path, tOff, "bitmap table of %d entries is invalid", tSize))
			continue
		}
		tbl := make([]byte, tSize*8)
		if _, err := o.f.ReadAt(tbl, tOff); err != nil {
			fail(model.Wrapf(err, o.path, tOff, "read bitmap table"))
			continue
		}
		q.mark(tOff, tSize*8)
		for j := int64(0); j < tSize; j++ {
			if d := int64(be.Uint64(tbl[8*j:]) & offsetMask); d != 0 {
				q.mark(d, m.clusterSize)
			}
		}
	}
}

// refcountStats compares the refcounts with what the tables reference.
type refcountStats struct {
	usedButZero    int64 // referenced by a table, refcount 0
	leaked         int64 // refcount > 0, referenced by nothing
	zeroHeld       int64 // host clusters held only by zero-flag entries
	beyondCoverage int64 // file clusters past the area the refcount table covers
	errs           []error
}

func (o *opened) compareRefcounts(u *hostUse) refcountStats {
	var st refcountStats
	m := o.m
	order := o.h.refcountOrder
	perBlock := m.clusterSize * 8 >> order
	covered := int64(len(o.refBlocks)) * perBlock
	block := make([]byte, m.clusterSize)
	for ci := int64(0); ci < u.n; ci++ {
		if ci >= covered {
			st.beyondCoverage = u.n - ci
			for ; ci < u.n; ci++ {
				if u.touched.get(ci) {
					st.usedButZero++
				}
			}
			break
		}
		bi := ci / perBlock
		if ci%perBlock == 0 {
			boff := int64(o.refBlocks[bi])
			clear(block)
			if boff != 0 {
				if boff+m.clusterSize > o.fileSize || boff&(m.clusterSize-1) != 0 {
					st.errs = append(st.errs, model.Errorf(o.path, boff, "refcount block %d is invalid", bi))
				} else if _, err := o.f.ReadAt(block, boff); err != nil {
					st.errs = append(st.errs, model.Wrapf(err, o.path, boff, "read refcount block"))
				}
			}
		}
		rc := refcount(block, ci%perBlock, order)
		switch t := u.touched.get(ci); {
		case t && rc == 0:
			st.usedButZero++
		case !t && rc > 0 && u.zeroHeld.get(ci):
			st.zeroHeld++
		case !t && rc > 0:
			st.leaked++
		}
	}
	return st
}

// refcount reads entry i of a refcount block with 1<<order bits per entry.
func refcount(b []byte, i int64, order uint32) uint64 {
	switch order {
	case 0:
		return uint64(b[i/8]>>(i%8)) & 1
	case 1:
		return uint64(b[i/4]>>(2*(i%4))) & 3
	case 2:
		return uint64(b[i/2]>>(4*(i%2))) & 15
	case 3:
		return uint64(b[i])
	case 4:
		return uint64(binary.BigEndian.Uint16(b[2*i:]))
	case 5:
		return uint64(binary.BigEndian.Uint32(b[4*i:]))
	}
	return binary.BigEndian.Uint64(b[8*i:])
}

// residueDisk is the unreferenced view of one host file: guest offsets are
// host offsets, and the extents are the non-zero bytes that no table
// references. They are found on first use.
type residueDisk struct {
	model.FileDisk
	use *hostUse

	mu   sync.Mutex
	done bool
	ext  model.ExtentList
}

// granule is the unit in which residue is tested for non-zero bytes.
const granule = 512

func (d *residueDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		ext, err := d.extents(ctx)
		if err != nil {
			yield(model.Extent{}, err)
			return
		}
		for e, err := range ext.Seq(ctx) {
			if !yield(e, err) {
				return
			}
		}
	}
}

func (d *residueDisk) extents(ctx context.Context) (model.ExtentList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return d.ext, nil
	}
	ext, err := findResidue(ctx, d.use)
	if err != nil {
		return nil, err
	}
	d.ext, d.done = ext, true
	return ext, nil
}

// findResidue lists the non-zero bytes of u's file that nothing references,
// in granules, skipping holes.
func findResidue(ctx context.Context, u *hostUse) (model.ExtentList, error) {
	// Skip holes where the file can tell where they are.
	holes := model.ExtentList{{Offset: 0, Length: u.size}}
	if osf, ok := u.f.(*os.File); ok {
		var err error
		if holes, err = raw.DataExtents(osf, u.name, u.size); err != nil {
			return nil, err
		}
	}
	partial := slices.Clone(u.partial)
	slices.SortFunc(partial, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var out model.ExtentList
	var cur model.Extent
	emit := func(off, n int64) {
		if cur.Length > 0 && cur.End() == off {
			cur.Length += n
			cur.FileLength += n
			return
		}
		if cur.Length > 0 {
			out = append(out, cur)
		}
		cur = model.Extent{Offset: off, Length: n, Source: model.SourceData, File: u.name, FileOffset: off, FileLength: n}
	}
	buf := make([]byte, min(1<<20, max(u.size, granule)))
	zero := make([]byte, granule)
	scan := func(a, z int64) error {
		for a < z {
			n := min(z-a, int64(len(buf)))
			got, err := u.f.ReadAt(buf[:n], a)
			if int64(got) < n && err != nil && err != io.EOF {
				return model.Wrapf(err, u.name, a, "read unreferenced bytes")
			}
			b := buf[:got]
			for i := int64(0); i < int64(len(b)); {
				g := min(granule-(a+i)%granule, int64(len(b))-i)
				if !bytes.Equal(b[i:i+g], zero[:g]) {
					emit(a+i, g)
				}
				i += g
			}
			if int64(got) < n {
				return nil
			}
			a += n
		}
		return nil
	}
	// Walk the data regions of the file; inside them, the clusters not
	// wholly referenced, minus the partly referenced ranges.
	pi := 0
	for _, h := range holes {
		for a := h.Offset; a < h.End(); {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ci := a >> u.bits
			cend := min((ci+1)<<u.bits, h.End())
			if u.full.get(ci) {
				a = cend
				continue
			}
			// Find the free stretch from a: up to the next referenced byte.
			for pi < len(partial) && partial[pi].end <= a {
				pi++
			}
			if pi < len(partial) && partial[pi].start <= a {
				a = min(partial[pi].end, h.End())
				continue
			}
			z := cend
			// Extend over following clusters that are free too.
			for z < h.End() && !u.full.get(z>>u.bits) && z-a < int64(len(buf)) {
				z = min(z+u.cs, h.End())
			}
			if pi < len(partial) && partial[pi].start < z {
				z = partial[pi].start
			}
			if err := scan(a, z); err != nil {
				return nil, err
			}
			a = z
		}
	}
	if cur.Length > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// maxSlackStreams bounds the candidate windows one file gives (a window
// costs up to a sector of decode attempts).
const maxSlackStreams = 1 << 20

// SlackStreams lists where freed compressed clusters' streams may start.
// qemu packs compressed clusters byte by byte, in the order it writes
// them, and an L2 entry gives a cluster's start and the sector of its last
// byte. So when the next live stream (by host offset) starts past that
// sector, the bytes between are not all this stream's: a freed stream may
// begin anywhere in its last sector (where this one really ends) and end
// by the next live start. Where the next stream starts inside the last
// sector there is no room for a freed stream longer than that sector,
// and such a stream (one cluster compressed below 512 bytes) is not
// looked for.
func (d *residueDisk) SlackStreams(ctx context.Context) ([]model.SlackStream, error) {
	u := d.use
	if len(u.compressed) == 0 || u.codec == "" {
		return nil, nil
	}
	cs := slices.Clone(u.compressed)
	slices.SortFunc(cs, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	cs = slices.CompactFunc(cs, func(a, b span) bool { return a.start == b.start })
	var out []model.SlackStream
	for i, c := range cs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next := u.size
		if i+1 < len(cs) {
			next = cs[i+1].start
		}
		lastSector := (c.end - 1) &^ (sectorSize - 1)
		if next <= c.end {
			continue // the next stream starts inside this one's last sector
		}
		from := max(c.start+1, lastSector)
		out = append(out, model.SlackStream{From: from, To: c.end + 1, Limit: next, Codec: u.codec, Size: u.cs})
		if len(out) >= maxSlackStreams {
			break
		}
	}
	return out, nil
}
