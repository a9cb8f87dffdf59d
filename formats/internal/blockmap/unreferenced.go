package blockmap

import (
	"context"
	"io"
	"iter"
	"slices"
	"sort"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/zeros"
)

// Range is a half-open host byte range [Off, Off+Len).
type Range struct{ Off, Len int64 }

func (r Range) End() int64 { return r.Off + r.Len }

// Unreferenced is the host file seen as a guest space (guest offset == host
// offset) that shows only bytes no metadata references: stale blocks, blocks
// left behind by a cleared table entry, slack between structures. Referenced
// bytes and holes read as zeros; extents list non-zero sectors only.
type Unreferenced struct {
	R    io.ReaderAt
	File string
	Len  int64   // host file size
	Free []Range // sorted, disjoint
}

// sectorSize is the granularity at which all-zero runs are dropped.
const sectorSize = 512

// NewUnreferenced builds the space from the host file's data regions (from
// SEEK_DATA, or one range for the whole file) minus the referenced ranges.
func NewUnreferenced(r io.ReaderAt, file string, size int64, data model.ExtentList, used []Range) *Unreferenced {
	used = slices.Clone(used)
	slices.SortFunc(used, func(a, b Range) int {
		switch {
		case a.Off < b.Off:
			return -1
		case a.Off > b.Off:
			return 1
		}
		return 0
	})
	var free []Range
	ui := 0
	for _, e := range data {
		lo, hi := e.FileOffset, min(e.FileOffset+e.FileLength, size)
		for lo < hi {
			for ui < len(used) && used[ui].End() <= lo {
				ui++
			}
			if ui == len(used) || used[ui].Off >= hi {
				free = append(free, Range{lo, hi - lo})
				break
			}
			if used[ui].Off > lo {
				free = append(free, Range{lo, used[ui].Off - lo})
			}
			// Skip every used range that starts before the current point.
			end := used[ui].End()
			for j := ui + 1; j < len(used) && used[j].Off <= end; j++ {
				end = max(end, used[j].End())
			}
			lo = end
		}
	}
	return &Unreferenced{R: r, File: file, Len: size, Free: free}
}

func (u *Unreferenced) Size() int64 { return u.Len }

func (u *Unreferenced) ReadAt(p []byte, off int64) (int, error) {
	want, err := model.ClampRead(p, off, u.Len)
	if err != nil {
		return 0, err
	}
	clear(p[:want])
	end := off + int64(want)
	i := sort.Search(len(u.Free), func(i int) bool { return u.Free[i].End() > off })
	for ; i < len(u.Free) && u.Free[i].Off < end; i++ {
		lo, hi := max(off, u.Free[i].Off), min(end, u.Free[i].End())
		n, err := u.R.ReadAt(p[lo-off:hi-off], lo)
		if n < int(hi-lo) && err != nil && err != io.EOF {
			return int(lo - off), model.Wrapf(err, u.File, lo+int64(n), "read unreferenced bytes")
		}
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// Extents reads the free ranges and yields their non-zero sectors.
func (u *Unreferenced) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		var m merger
		m.yield = yield
		buf := make([]byte, 1<<20)
		for _, r := range u.Free {
			for pos := r.Off; pos < r.End(); {
				if err := ctx.Err(); err != nil {
					yield(model.Extent{}, err)
					return
				}
				n := min(int64(len(buf)), r.End()-pos)
				chunk := buf[:n]
				got, err := u.R.ReadAt(chunk, pos)
				if got < len(chunk) && err != nil && err != io.EOF {
					yield(model.Extent{}, model.Wrapf(err, u.File, pos+int64(got), "read unreferenced bytes"))
					return
				}
				chunk = chunk[:got]
				// Walk sector-aligned pieces so that runs start on sectors.
				for i := 0; i < len(chunk); {
					s := pos + int64(i)
					step := int(min(int64(len(chunk)-i), sectorSize-s%sectorSize))
					if !zeros.All(chunk[i : i+step]) {
						if !m.add(model.Extent{Offset: s, Length: int64(step), Source: model.SourceData, File: u.File, FileOffset: s, FileLength: int64(step)}) {
							return
						}
					}
					i += step
				}
				if got == 0 {
					break
				}
				pos += int64(got)
			}
		}
		m.flush()
	}
}
