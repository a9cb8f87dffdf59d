package btrfs

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// extentRange is an allocated logical range [start, end).
type extentRange struct{ start, end uint64 }

// readExtentTree collects the allocated logical ranges: every EXTENT_ITEM
// (data, and metadata without skinny metadata) and METADATA_ITEM (one tree
// block) of the extent tree, merged. Logical bytes of a chunk that no item
// covers are free.
func (f *FS) readExtentTree(ctx context.Context) error {
	root, _, err := f.findRoot(ctx, extentTreeID)
	if err != nil {
		return err
	}
	var rs []extentRange
	sorted := true
	lo, hi := key{}, key{obj: ^uint64(0), typ: 255, off: ^uint64(0)}
	err = f.iterate(ctx, root, lo, hi, nil, func(it item) error {
		var r extentRange
		switch it.k.typ {
		case typeExtentItem:
			r = extentRange{it.k.obj, it.k.obj + it.k.off}
		case typeMetadataItem:
			r = extentRange{it.k.obj, it.k.obj + uint64(f.nodeSize)}
		default:
			return nil
		}
		if r.end <= r.start {
			return nil
		}
		if n := len(rs); n > 0 {
			last := &rs[n-1]
			if r.start < last.start {
				sorted = false
			} else if r.start <= last.end {
				last.end = max(last.end, r.end)
				return nil
			}
		}
		if len(rs) >= maxAllocRuns {
			return fmt.Errorf("more than %d extents: too many to index", maxAllocRuns)
		}
		rs = append(rs, r)
		return nil
	})
	if err != nil {
		return err
	}
	if !sorted {
		slices.SortFunc(rs, func(a, b extentRange) int { return cmp.Compare(a.start, b.start) })
		out := rs[:0]
		for _, r := range rs {
			if n := len(out); n > 0 && r.start <= out[n-1].end {
				out[n-1].end = max(out[n-1].end, r.end)
				continue
			}
			out = append(out, r)
		}
		rs = out
	}
	f.alloc = slices.Clip(rs)
	f.allocKnown = true
	return nil
}

func (f *FS) allocated(logical uint64) bool {
	i, _ := slices.BinarySearchFunc(f.alloc, logical+1, func(r extentRange, t uint64) int { return cmp.Compare(r.start, t) })
	return i > 0 && logical < f.alloc[i-1].end
}

// State says whether a device byte that no walked run covers is allocated
// (a superblock copy, or inside a chunk and covered by an extent item) or
// free (inside a chunk without an extent, or in device space no chunk
// uses). Bytes of striped chunks, or of any chunk when the extent tree was
// unreadable, are unknown.
func (f *FS) State(off int64) string {
	if off < 0 || off >= f.size {
		return fsys.StateUnknown
	}
	for _, s := range append([]int64{superOffset}, superMirrors...) {
		if off >= s && off < s+superSize {
			return fsys.StateAllocated
		}
	}
	p, c := f.chunks.atPhys(uint64(off))
	if c == nil {
		return fsys.StateFree // unallocated device space
	}
	if !c.mapped || !f.allocKnown {
		return fsys.StateUnknown
	}
	if f.allocated(c.logical + (uint64(off) - p.start)) {
		return fsys.StateAllocated
	}
	return fsys.StateFree
}
