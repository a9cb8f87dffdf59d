package blockmap

import (
	"fmt"
	"io"
	"math/bits"
	"path/filepath"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

// Bounds of a RunBuilder: a bitmap of at most MaxBitmapBits host units
// (16 MiB); past it (a large, sparse file), at most maxSortedUnits unit
// indexes held to sort (32 MiB); at most MaxRuns runs listed (16 MiB). A
// table of 16 Mi entries listed one Range each took a scan of a 65 MiB
// Parallels image to 1.3 GB.
const (
	MaxBitmapBits  = 1 << 27
	maxSortedUnits = 4 << 20
	MaxRuns        = 1 << 20
)

// RunBuilder collects the host ranges a format's tables use (each a
// block of length bytes at a multiple of unit bytes: a cluster, or a
// sector where tables count sectors), for the unreferenced view, and
// merges them into runs in file order without a Range per block.
type RunBuilder struct {
	unit, length int64
	bm           []uint64 // a bit per host unit
	idx          []uint64 // unit indexes, where the file is too large for bm
	over         bool     // more than maxSortedUnits indexes
}

// NewRunBuilder returns a builder for a host file of size bytes.
func NewRunBuilder(size, unit, length int64) *RunBuilder {
	b := &RunBuilder{unit: unit, length: length}
	if n := (size + unit - 1) / unit; n <= MaxBitmapBits {
		b.bm = make([]uint64, (n+63)/64)
	}
	return b
}

// Mark records the block at unit index i, which lies inside the file.
func (b *RunBuilder) Mark(i uint64) {
	switch {
	case b.bm != nil:
		b.bm[i/64] |= 1 << (i % 64)
	case len(b.idx) < maxSortedUnits:
		b.idx = append(b.idx, i)
	default:
		b.over = true
	}
}

// Runs returns the file's first start bytes (its header and tables) and
// the marked blocks, merged into runs in file order; an error when they
// are too many to list.
func (b *RunBuilder) Runs(start int64) ([]Range, error) {
	if b.over {
		return nil, fmt.Errorf("over %d blocks in a file too large for a bitmap of them", maxSortedUnits)
	}
	used := []Range{{Off: 0, Len: start}}
	add := func(i uint64) error {
		off := int64(i) * b.unit
		last := &used[len(used)-1]
		if off <= last.End() {
			last.Len = max(last.Len, off+b.length-last.Off)
			return nil
		}
		if len(used) >= MaxRuns {
			return fmt.Errorf("blocks in over %d separate runs", MaxRuns)
		}
		used = append(used, Range{Off: off, Len: b.length})
		return nil
	}
	for w, word := range b.bm {
		for word != 0 {
			if err := add(uint64(w)*64 + uint64(bits.TrailingZeros64(word))); err != nil {
				return nil, err
			}
			word &= word - 1
		}
	}
	slices.Sort(b.idx)
	for _, i := range b.idx {
		if err := add(i); err != nil {
			return nil, err
		}
	}
	return used, nil
}

// AddUnreferenced appends to im the view of the host bytes of f (size
// bytes, at path) outside used, when it holds any: the bytes no table
// references. what says which structures used covers, for the view's note.
func AddUnreferenced(im *model.Image, f io.ReaderAt, path string, size int64, used []Range, what string) error {
	data, err := raw.Extents(f, path, size)
	if err != nil {
		return err
	}
	u := NewUnreferenced(f, path, size, data, used)
	if len(u.Free) == 0 {
		return nil
	}
	im.Views = append(im.Views, model.View{
		ID: model.ViewID(path, model.KindUnreferenced, ""), Kind: model.KindUnreferenced, Name: filepath.Base(path), Disk: u,
		Notes: []string{"host bytes outside " + what + "; guest offset = host offset; only non-zero sectors are listed"},
	})
	return nil
}
