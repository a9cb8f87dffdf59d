package vmdk

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
)

// Caps after QEMU's block/vmdk.c (vmdk_add_extent, vmdk_open_vmdk4).
const (
	maxGrainSectors    = 0x200000         // 1 GiB grains are "unrealistic"
	maxCompressedGrain = 16 << 20         // one inflated grain is held in memory
	maxGDEntries       = 32 * 1024 * 1024 // "L1 size too big"
	maxGTEntries       = 4096             // hosted <= 512, COWD and seSparse 4096
	gtCacheTables      = 256
	grainCacheEntries  = 32
)

type sparseKind int

const (
	kindHosted sparseKind = iota // KDMV
	kindCOWD                     // COWD (vmfsSparse)
	kindSE                       // seSparse
)

func (k sparseKind) String() string {
	switch k {
	case kindHosted:
		return "hosted sparse"
	case kindCOWD:
		return "COWD sparse"
	}
	return "seSparse"
}

// Decoded grain table entry values; other values are host byte offsets.
const (
	gteUnalloc = -1 // read the parent, or zeros
	gteZero    = -2 // reads as zeros, hides the parent
)

// sparse is one sparse extent file: its grain directory and how to read
// grains. It is safe for concurrent use.
type sparse struct {
	kind       sparseKind
	file       string // host name, for extents and errors
	r          io.ReaderAt
	fileSize   int64
	capacity   int64 // guest bytes covered
	grainSize  int64 // bytes
	gtEntries  int64
	gtBytes    int64
	gdOffset   int64 // host byte offsets, for errors and the unreferenced map
	rgdOffset  int64
	gd         []int64 // host byte offset of each grain table, 0 = none
	rgd        []int64 // redundant directory (hosted), nil when absent
	compressed bool
	markers    bool
	zeroGrain  bool
	gdAtEnd    bool
	seGrains   int64 // seSparse: host byte offset of the grains area
	header     SparseHeader
	descOff    int64 // embedded descriptor (hosted), bytes
	descLen    int64
	se         SESparseHeader

	gtCache    tableCache
	grainCache tableCache
	inflaters  sync.Pool
}

// tableCache is a small bounded cache of decoded tables or grains keyed by
// host offset. Loads happen outside the lock; a duplicate load is harmless.
type tableCache struct {
	mu    sync.Mutex
	m     map[int64][]int64
	g     map[int64][]byte
	order []int64
}

func (c *tableCache) getTable(off int64) ([]int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[off]
	return t, ok
}

func (c *tableCache) putTable(off int64, t []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64][]int64{}
	}
	if _, ok := c.m[off]; ok {
		return
	}
	if len(c.order) >= gtCacheTables {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[off] = t
	c.order = append(c.order, off)
}

func (c *tableCache) getGrain(off int64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.g[off]
	return g, ok
}

func (c *tableCache) putGrain(off int64, g []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.g == nil {
		c.g = map[int64][]byte{}
	}
	if _, ok := c.g[off]; ok {
		return
	}
	if len(c.order) >= grainCacheEntries {
		delete(c.g, c.order[0])
		c.order = c.order[1:]
	}
	c.g[off] = g
	c.order = append(c.order, off)
}

func (s *sparse) entrySize() int64 {
	if s.kind == kindSE {
		return 8
	}
	return 4
}

// readDir reads a grain directory of n entries at host offset off, bounded
// by the file size so that a hostile header cannot make us allocate more
// than the file holds.
func (s *sparse) readDir(off int64, n int64, what string) ([]int64, error) {
	es := s.entrySize()
	if n < 0 || n > maxGDEntries {
		return nil, model.Errorf(s.file, off, "%s has %d entries, more than %d", what, n, maxGDEntries)
	}
	if off < 0 || off > s.fileSize || n*es > s.fileSize-off {
		return nil, model.Errorf(s.file, off, "%s (%d entries) lies beyond the end of the file (%d bytes)", what, n, s.fileSize)
	}
	buf := make([]byte, n*es)
	if _, err := s.r.ReadAt(buf, off); err != nil {
		return nil, model.Wrapf(err, s.file, off, "read %s", what)
	}
	out := make([]int64, n)
	for i := range out {
		var v uint64
		if es == 8 {
			v = binary.LittleEndian.Uint64(buf[i*8:])
		} else {
			v = uint64(binary.LittleEndian.Uint32(buf[i*4:]))
		}
		if v == 0 {
			continue
		}
		switch s.kind {
		case kindSE:
			// Top 32 bits 0x10000000 mark an allocated table; the low 32 bits
			// index the grain tables area (QEMU get_cluster_offset).
			if v&0xffffffff00000000 != 0x1000000000000000 {
				return nil, model.Errorf(s.file, off+int64(i)*es, "%s entry %d has invalid value %#x", what, i, v)
			}
			out[i] = int64(s.se.GrainTablesOffset)*sectorSize + int64(v&0xffffffff)*s.gtBytes
		default:
			out[i] = int64(v) * sectorSize
		}
	}
	return out, nil
}

// loadGT reads and decodes the grain table at host offset off.
func (s *sparse) loadGT(off int64) ([]int64, error) {
	if off < 0 || off > s.fileSize || s.gtBytes > s.fileSize-off {
		return nil, model.Errorf(s.file, off, "grain table lies beyond the end of the file (%d bytes)", s.fileSize)
	}
	buf := make([]byte, s.gtBytes)
	if _, err := s.r.ReadAt(buf, off); err != nil {
		return nil, model.Wrapf(err, s.file, off, "read grain table")
	}
	out := make([]int64, s.gtEntries)
	es := s.entrySize()
	for i := range out {
		pos := off + int64(i)*es
		if es == 8 {
			v := binary.LittleEndian.Uint64(buf[i*8:])
			switch v >> 60 {
			case 0:
				if v != 0 {
					return nil, model.Errorf(s.file, pos, "invalid seSparse grain table entry %#x", v)
				}
				out[i] = gteUnalloc
			case 1, 2: // unmapped (SCSI UNMAP) or zero
				out[i] = gteZero
			case 3:
				idx := int64((v&0x0fff000000000000)>>48 | (v&0x0000ffffffffffff)<<12)
				if idx < 0 || idx > (s.fileSize/s.grainSize)+1 {
					return nil, model.Errorf(s.file, pos, "seSparse grain index %d beyond the file", idx)
				}
				out[i] = s.seGrains + idx*s.grainSize
			default:
				return nil, model.Errorf(s.file, pos, "invalid seSparse grain table entry %#x", v)
			}
			continue
		}
		v := int64(binary.LittleEndian.Uint32(buf[i*4:]))
		switch {
		case v == 0:
			out[i] = gteUnalloc
		case v == 1 && s.zeroGrain:
			out[i] = gteZero
		default:
			out[i] = v * sectorSize
		}
	}
	return out, nil
}

func (s *sparse) cachedGT(off int64) ([]int64, error) {
	if t, ok := s.gtCache.getTable(off); ok {
		return t, nil
	}
	t, err := s.loadGT(off)
	if err != nil {
		return nil, err
	}
	s.gtCache.putTable(off, t)
	return t, nil
}

// lookup maps grain index gi to a decoded grain table entry.
func (s *sparse) lookup(gi int64) (int64, error) {
	if gi >= (s.capacity+s.grainSize-1)/s.grainSize {
		return gteUnalloc, nil // past the header's capacity (descriptor says more)
	}
	di := gi / s.gtEntries
	if di >= int64(len(s.gd)) {
		return 0, model.Errorf(s.file, s.gdOffset, "grain %d is beyond the grain directory (%d entries)", gi, len(s.gd))
	}
	if s.gd[di] == 0 {
		return gteUnalloc, nil
	}
	t, err := s.cachedGT(s.gd[di])
	if err != nil {
		return 0, err
	}
	return t[gi%s.gtEntries], nil
}

// readAt reads guest bytes [off, off+len(p)) of this extent (extent-relative
// offsets); unallocated grains are filled by fill.
func (s *sparse) readAt(p []byte, off int64, fill func(p []byte, off int64) error) error {
	for len(p) > 0 {
		gi := off / s.grainSize
		in := off % s.grainSize
		n := min(int64(len(p)), s.grainSize-in)
		e, err := s.lookup(gi)
		if err != nil {
			return err
		}
		q := p[:n]
		switch {
		case e == gteUnalloc:
			if err := fill(q, off); err != nil {
				return err
			}
		case e == gteZero:
			clear(q)
		case s.compressed:
			g, err := s.grain(e)
			if err != nil {
				return err
			}
			copy(q, g[in:in+n])
		default:
			if err := readPadded(s.r, q, e+in, s.fileSize); err != nil {
				return model.Wrapf(err, s.file, e+in, "read grain %d", gi)
			}
		}
		p = p[n:]
		off += n
	}
	return nil
}

// readPadded reads at off, returning zeros past the end of the file, as
// QEMU's file driver does for a short image.
func readPadded(r io.ReaderAt, p []byte, off, size int64) error {
	if off >= size {
		clear(p)
		return nil
	}
	want := min(int64(len(p)), size-off)
	n, err := r.ReadAt(p[:want], off)
	if int64(n) == want {
		err = nil
	}
	if err != nil {
		return err
	}
	clear(p[want:])
	return nil
}

// seg is a run of an extent's guest space with one kind of backing.
type seg struct {
	off, n int64 // extent-relative guest range
	host   int64 // gteUnalloc, gteZero, or host byte offset
	clen   int64 // compressed: stored length; host points at the data
}

// segments yields the extent's grains in order, merging runs that are
// contiguous both in the guest and on the host.
func (s *sparse) segments(ctx context.Context) iter.Seq2[seg, error] {
	return func(yield func(seg, error) bool) {
		var cur seg
		have := false
		emit := func(g seg) bool {
			if have {
				if g.clen == 0 && cur.clen == 0 && cur.off+cur.n == g.off &&
					((g.host < 0 && g.host == cur.host) || (g.host >= 0 && cur.host >= 0 && cur.host+cur.n == g.host)) {
					cur.n += g.n
					return true
				}
				if !yield(cur, nil) {
					return false
				}
			}
			cur, have = g, true
			return true
		}
		span := s.gtEntries * s.grainSize
		for di, gtOff := range s.gd {
			if err := ctx.Err(); err != nil {
				yield(seg{}, err)
				return
			}
			base := int64(di) * span
			if base >= s.capacity {
				break
			}
			if gtOff == 0 {
				if !emit(seg{off: base, n: min(span, s.capacity-base), host: gteUnalloc}) {
					return
				}
				continue
			}
			t, err := s.loadGT(gtOff)
			if err != nil {
				yield(seg{}, err)
				return
			}
			for i, e := range t {
				off := base + int64(i)*s.grainSize
				if off >= s.capacity {
					break
				}
				g := seg{off: off, n: min(s.grainSize, s.capacity-off), host: e}
				if e >= 0 && s.compressed {
					data, clen, err := s.compressedSpan(e)
					if err != nil {
						yield(seg{}, err)
						return
					}
					g.host, g.clen = data, clen
				}
				if !emit(g) {
					return
				}
			}
		}
		if have {
			yield(cur, nil)
		}
	}
}

// compressedSpan returns where the deflate stream of the compressed grain
// whose table entry is host starts, and its stored length.
func (s *sparse) compressedSpan(host int64) (int64, int64, error) {
	if !s.markers {
		return host, min(2*s.grainSize, max(0, s.fileSize-host)), nil
	}
	var m [12]byte
	if _, err := s.r.ReadAt(m[:], host); err != nil {
		return 0, 0, model.Wrapf(err, s.file, host, "read grain marker")
	}
	size := int64(binary.LittleEndian.Uint32(m[8:]))
	if size == 0 || size > 2*s.grainSize || host+12+size > s.fileSize {
		return 0, 0, model.Errorf(s.file, host, "grain marker has invalid size %d", size)
	}
	return host + 12, size, nil
}

func (s *sparse) String() string {
	return fmt.Sprintf("%s extent %s", s.kind, s.file)
}
