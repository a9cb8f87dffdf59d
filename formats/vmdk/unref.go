package vmdk

import (
	"context"
	"encoding/binary"
	"io"
	"iter"
	"sort"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/zeros"
)

// unrefIndex finds the host bytes of a sparse extent file that nothing
// references: stale grains, slack after compressed grains, leftovers in
// preallocated metadata. It is built once, on first use.
type unrefIndex struct {
	sp    *sparse
	once  sync.Once
	ext   model.ExtentList // non-zero unreferenced host ranges
	stale []staleGrain
	err   error
}

type staleGrain struct {
	marker, data, clen int64
}

type rng struct{ off, end int64 }

func (u *unrefIndex) get() (*unrefIndex, error) {
	u.once.Do(func() { u.err = u.build(context.Background()) })
	return u, u.err
}

// referenced lists the host ranges the extent's metadata references.
func (u *unrefIndex) referenced(ctx context.Context) ([]rng, error) {
	sp := u.sp
	var refs []rng
	add := func(off, n int64) {
		if n <= 0 {
			return
		}
		if k := len(refs); k > 0 && refs[k-1].end == off {
			refs[k-1].end = off + n
			return
		}
		refs = append(refs, rng{off, off + n})
	}
	es := sp.entrySize()
	tables := sp.gd
	switch sp.kind {
	case kindHosted:
		add(0, sectorSize)
		add(sp.descOff, sp.descLen)
		add(sp.gdOffset, int64(len(sp.gd))*es)
		if sp.rgd != nil {
			add(sp.rgdOffset, int64(len(sp.rgd))*es)
		}
		if sp.gdAtEnd {
			add(sp.fileSize-1536, 1536)
		}
		if sp.markers {
			for m, err := range WalkMarkers(sp.r, sp.file, int64(sp.header.Overhead)*sectorSize, sp.fileSize, sp.grainSize) {
				if err != nil {
					break // the tables below still say what is referenced
				}
				if m.Type != MarkerGrain {
					add(m.Offset, m.End()-m.Offset)
				}
			}
		}
	case kindCOWD:
		add(0, cowdHeaderSize)
		add(sp.gdOffset, int64(len(sp.gd))*es)
	case kindSE:
		h := sp.se
		add(0, sectorSize)
		for _, r := range [][2]uint64{{h.VolatileHeaderOffset, h.VolatileHeaderSize}, {h.JournalHeaderOffset, h.JournalHeaderSize},
			{h.JournalOffset, h.JournalSize}, {h.GrainDirOffset, h.GrainDirSize}, {h.FreeBitmapOffset, h.FreeBitmapSize},
			{h.BackmapOffset, h.BackmapSize}} {
			if r[0] < uint64(sp.fileSize) && r[1] < uint64(sp.fileSize) {
				add(int64(r[0])*sectorSize, int64(r[1])*sectorSize)
			}
		}
	}
	// Grains only the redundant tables reference are invisible to the
	// current view (which follows the primary), so they count as
	// unreferenced; the redundant tables themselves are metadata.
	for _, gt := range sp.rgd {
		if gt != 0 {
			add(gt, sp.gtBytes)
		}
	}
	seen := map[int64]bool{}
	for _, gt := range tables {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if gt == 0 || seen[gt] {
			continue
		}
		seen[gt] = true
		add(gt, sp.gtBytes)
		t, err := sp.loadGT(gt)
		if err != nil {
			return nil, err
		}
		for _, e := range t {
			if e < 0 {
				continue
			}
			switch {
			case sp.compressed && sp.markers:
				if data, clen, err := sp.compressedSpan(e); err == nil {
					add(e, data+clen-e)
				} else {
					add(e, sectorSize)
				}
			default:
				add(e, sp.grainSize)
			}
		}
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].off < refs[j].off })
	merged := refs[:0]
	for _, r := range refs {
		if k := len(merged); k > 0 && r.off <= merged[k-1].end {
			merged[k-1].end = max(merged[k-1].end, r.end)
			continue
		}
		merged = append(merged, r)
	}
	return merged, nil
}

func (u *unrefIndex) build(ctx context.Context) error {
	sp := u.sp
	refs, err := u.referenced(ctx)
	if err != nil {
		return err
	}
	var gaps []rng
	pos := int64(0)
	for _, r := range refs {
		if r.off > pos {
			gaps = append(gaps, rng{pos, min(r.off, sp.fileSize)})
		}
		pos = max(pos, r.end)
		if pos >= sp.fileSize {
			break
		}
	}
	if pos < sp.fileSize {
		gaps = append(gaps, rng{pos, sp.fileSize})
	}
	buf := make([]byte, 1<<20)
	addExt := func(off, end int64) {
		if k := len(u.ext); k > 0 && u.ext[k-1].End() == off {
			u.ext[k-1].Length += end - off
			u.ext[k-1].FileLength += end - off
			return
		}
		u.ext = append(u.ext, model.Extent{Offset: off, Length: end - off, Source: model.SourceData, File: sp.file, FileOffset: off, FileLength: end - off})
	}
	for _, g := range gaps {
		for off := g.off; off < g.end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(int64(len(buf)), g.end-off)
			k, err := sp.r.ReadAt(buf[:n], off)
			if int64(k) < n && err != nil && err != io.EOF {
				return model.Wrapf(err, sp.file, off, "read unreferenced bytes")
			}
			chunk := buf[:k]
			// Non-zero bytes, in units that end on sector boundaries.
			for i := int64(0); i < int64(len(chunk)); {
				a := off + i
				b := min(roundUp(a+1, sectorSize), off+int64(len(chunk)))
				if !zeros.All(chunk[i : b-off]) {
					addExt(a, b)
				}
				i = b - off
			}
			if k == 0 {
				break
			}
			off += int64(k)
		}
	}
	if sp.compressed && sp.markers {
		u.findStaleGrains(ctx)
	}
	return nil
}

// findStaleGrains looks for grain markers at sector boundaries inside the
// non-zero unreferenced ranges: a plausible marker whose zlib stream
// inflates to at most one grain is a stale grain.
func (u *unrefIndex) findStaleGrains(ctx context.Context) {
	sp := u.sp
	scratch := make([]byte, sp.grainSize)
	for _, x := range u.ext {
		for off := roundUp(x.Offset, sectorSize); off+14 <= x.End(); off += sectorSize {
			if ctx.Err() != nil {
				return
			}
			var m [14]byte
			if _, err := sp.r.ReadAt(m[:], off); err != nil {
				break
			}
			lba := binary.LittleEndian.Uint64(m[:])
			size := int64(binary.LittleEndian.Uint32(m[8:]))
			if size < 2 || size > 2*sp.grainSize || off+12+size > sp.fileSize ||
				lba > uint64(sp.capacity/sectorSize) || m[12]&0x0f != 8 || (uint16(m[12])<<8|uint16(m[13]))%31 != 0 {
				continue
			}
			if sp.inflate(scratch, off+12, size) != nil {
				continue
			}
			u.stale = append(u.stale, staleGrain{marker: off, data: off + 12, clen: size})
			off = roundUp(off+12+size, sectorSize) - sectorSize
		}
	}
}

// unrefDisk is the unreferenced view: guest offset = host offset in the
// sparse extent file; bytes outside the listed ranges read as zeros.
type unrefDisk struct{ u *unrefIndex }

func (d *unrefDisk) Size() int64 { return d.u.sp.fileSize }

func (d *unrefDisk) ReadAt(p []byte, off int64) (int, error) {
	u, err := d.u.get()
	if err != nil {
		return 0, err
	}
	size := u.sp.fileSize
	n, err := model.ClampRead(p, off, size)
	if err != nil {
		return 0, err
	}
	want := int64(n)
	q := p[:want]
	clear(q)
	i := sort.Search(len(u.ext), func(i int) bool { return u.ext[i].End() > off })
	for ; i < len(u.ext) && u.ext[i].Offset < off+want; i++ {
		a, b := max(u.ext[i].Offset, off), min(u.ext[i].End(), off+want)
		if err := readPadded(u.sp.r, q[a-off:b-off], a, size); err != nil {
			return 0, model.Wrapf(err, u.sp.file, a, "read unreferenced bytes")
		}
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

func (d *unrefDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		u, err := d.u.get()
		if err != nil {
			yield(model.Extent{}, err)
			return
		}
		for e, err := range u.ext.Seq(ctx) {
			if !yield(e, err) {
				return
			}
		}
	}
}

// staleDisk lays the inflated stale grains end to end: stale grain i is at
// guest offset i*grainSize.
type staleDisk struct{ u *unrefIndex }

func (d *staleDisk) Size() int64 {
	u, err := d.u.get()
	if err != nil {
		return 0
	}
	return int64(len(u.stale)) * u.sp.grainSize
}

func (d *staleDisk) ReadAt(p []byte, off int64) (int, error) {
	u, err := d.u.get()
	if err != nil {
		return 0, err
	}
	gs := u.sp.grainSize
	size := int64(len(u.stale)) * gs
	n, err := model.ClampRead(p, off, size)
	if err != nil {
		return 0, err
	}
	want := int64(n)
	g := make([]byte, gs)
	for done := int64(0); done < want; {
		i, in := (off+done)/gs, (off+done)%gs
		s := u.stale[i]
		if err := u.sp.inflate(g, s.data, s.clen); err != nil {
			return int(done), err
		}
		done += int64(copy(p[done:want], g[in:]))
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

func (d *staleDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		u, err := d.u.get()
		if err != nil {
			yield(model.Extent{}, err)
			return
		}
		for i, s := range u.stale {
			if ctx.Err() != nil {
				yield(model.Extent{}, ctx.Err())
				return
			}
			if !yield(model.Extent{Offset: int64(i) * u.sp.grainSize, Length: u.sp.grainSize, Source: model.SourceCompressed,
				File: u.sp.file, FileOffset: s.data, FileLength: s.clen}, nil) {
				return
			}
		}
	}
}
