package vmdk

import (
	"context"
	"io"
	"iter"
	"sort"

	"github.com/imgaudit/imgaudit/formats/model"
)

type extKind int

const (
	extFlat extKind = iota
	extZero
	extNoAccess
	extSparse
)

// extent is one line of the extent description, opened.
type extent struct {
	start, length int64 // guest bytes
	kind          extKind
	file          string
	r             io.ReaderAt
	fileSize      int64
	flatBase      int64            // flat: host offset of the extent's first byte
	flatData      model.ExtentList // flat: host data regions (SEEK_DATA), nil = whole file
	sp            *sparse
}

// disk is the current view of a VMDK: its extents in guest order, with
// unallocated grains falling through to the parent.
type disk struct {
	size   int64
	exts   []*extent
	parent model.Disk // nil: unallocated grains read as zeros
}

func (d *disk) Size() int64 { return d.size }

func (d *disk) find(off int64) int {
	return sort.Search(len(d.exts), func(i int) bool { return d.exts[i].start+d.exts[i].length > off })
}

// ReadAt reads guest bytes. It is safe for concurrent use.
func (d *disk) ReadAt(p []byte, off int64) (int, error) {
	want, err := model.ClampRead(p, off, d.size)
	if err != nil {
		return 0, err
	}
	q := p[:want]
	for i := d.find(off); len(q) > 0 && i < len(d.exts); i++ {
		e := d.exts[i]
		rel := off - e.start
		n := min(int64(len(q)), e.length-rel)
		if err := d.readExtent(e, q[:n], rel, off); err != nil {
			return want - len(q), err
		}
		q = q[n:]
		off += n
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

func (d *disk) readExtent(e *extent, p []byte, rel, guest int64) error {
	switch e.kind {
	case extFlat:
		if err := readPadded(e.r, p, e.flatBase+rel, e.fileSize); err != nil {
			return model.Wrapf(err, e.file, e.flatBase+rel, "read flat extent")
		}
		return nil
	case extZero, extNoAccess:
		clear(p)
		return nil
	}
	return e.sp.readAt(p, rel, func(q []byte, r int64) error {
		return d.readParent(q, e.start+r)
	})
}

func (d *disk) readParent(p []byte, off int64) error {
	if d.parent == nil || off >= d.parent.Size() {
		clear(p)
		return nil
	}
	n, err := d.parent.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF || err == nil {
		clear(p[n:])
		return nil
	}
	return err
}

// Extents yields the allocated extents in guest order: this file's grains
// and, where a grain is unallocated, the parent's extents clipped to it.
func (d *disk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		var par *clipper
		if d.parent != nil {
			next, stop := iter.Pull2(d.parent.Extents(ctx))
			defer stop()
			par = &clipper{next: next}
		}
		for _, e := range d.exts {
			switch e.kind {
			case extNoAccess:
				continue
			case extZero:
				if !yield(model.Extent{Offset: e.start, Length: e.length, Source: model.SourceZero, FileOffset: -1}, nil) {
					return
				}
				continue
			case extFlat:
				for x := range flatExtents(e) {
					if !yield(x, nil) {
						return
					}
				}
				continue
			}
			for g, err := range e.sp.segments(ctx) {
				if err != nil {
					yield(model.Extent{}, err)
					return
				}
				off := e.start + g.off
				switch {
				case g.host == gteUnalloc:
					if par != nil && !par.clip(off, off+g.n, yield) {
						return
					}
				case g.host == gteZero:
					if !yield(model.Extent{Offset: off, Length: g.n, Source: model.SourceZero, FileOffset: -1}, nil) {
						return
					}
				case g.clen > 0:
					if !yield(model.Extent{Offset: off, Length: g.n, Source: model.SourceCompressed, File: e.file, FileOffset: g.host, FileLength: g.clen}, nil) {
						return
					}
				default:
					if !yield(model.Extent{Offset: off, Length: g.n, Source: model.SourceData, File: e.file, FileOffset: g.host, FileLength: g.n}, nil) {
						return
					}
				}
			}
		}
	}
}

// flatExtents lists the host data regions of a flat extent in guest terms.
func flatExtents(e *extent) iter.Seq[model.Extent] {
	return func(yield func(model.Extent) bool) {
		lo, hi := e.flatBase, min(e.flatBase+e.length, e.fileSize)
		regions := e.flatData
		if regions == nil {
			regions = model.ExtentList{{Offset: 0, Length: e.fileSize}}
		}
		for _, r := range regions {
			a, b := max(r.Offset, lo), min(r.End(), hi)
			if a >= b {
				continue
			}
			if !yield(model.Extent{Offset: e.start + a - e.flatBase, Length: b - a, Source: model.SourceData, File: e.file, FileOffset: a, FileLength: b - a}) {
				return
			}
		}
	}
}

// clipper walks a parent's extents once, in order, yielding the parts that
// fall into successive unallocated ranges of the child.
type clipper struct {
	next func() (model.Extent, error, bool)
	cur  model.Extent
	have bool
	done bool
}

func (c *clipper) clip(a, b int64, yield func(model.Extent, error) bool) bool {
	for {
		if !c.have {
			if c.done {
				return true
			}
			x, err, ok := c.next()
			if !ok {
				c.done = true
				return true
			}
			if err != nil {
				c.done = true
				return yield(model.Extent{}, err)
			}
			c.cur, c.have = x, true
		}
		x := c.cur
		if x.End() <= a {
			c.have = false
			continue
		}
		if x.Offset >= b {
			return true
		}
		lo, hi := max(x.Offset, a), min(x.End(), b)
		y := x
		y.Offset, y.Length = lo, hi-lo
		if lo != x.Offset || hi != x.End() {
			switch x.Source {
			case model.SourceData:
				if x.FileOffset >= 0 {
					y.FileOffset = x.FileOffset + (lo - x.Offset)
				}
				y.FileLength = hi - lo
			case model.SourceCompressed:
				// Part of a compressed stream is no longer "the stream".
				y.Source = model.SourceDerived
			}
		}
		if !yield(y, nil) {
			return false
		}
		if x.End() > b {
			return true // the rest may serve the next range
		}
		c.have = false
	}
}
