// Package lime reads LiME memory captures: a sequence of ranges, each a
// 32-byte header {u32 magic 0x4C694D45 "EMiL", u32 version 1, u64 start,
// u64 end (inclusive), 8 reserved} followed by end-start+1 bytes.
package lime

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory/memdisk"
	"github.com/imgaudit/imgaudit/formats/model"
)

const (
	Magic      = 0x4C694D45
	headerSize = 32
	maxRanges  = 1 << 20
	maxAddr    = int64(1) << 52
)

// Probe reports whether head starts with a LiME range header.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	return len(head) >= 8 && binary.LittleEndian.Uint32(head) == Magic && binary.LittleEndian.Uint32(head[4:]) == 1
}

// NewDisk indexes the ranges of a LiME file. A range cut at the end of
// the file is noted, and cut names the first (View.Incomplete: the
// capture was not read in full).
func NewDisk(ctx context.Context, name string, r io.ReaderAt, size int64) (d *memdisk.Disk, notes []string, cut error, err error) {
	var pieces []memdisk.Piece
	var end int64
	var h [headerSize]byte
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, err
		}
		if len(pieces) >= maxRanges {
			return nil, nil, nil, model.Errorf(name, off, "more than %d LiME ranges", maxRanges)
		}
		if size-off < headerSize {
			notes = append(notes, fmt.Sprintf("%d trailing bytes after the last range", size-off))
			break
		}
		if _, err := r.ReadAt(h[:], off); err != nil {
			return nil, nil, nil, model.Wrapf(err, name, off, "read LiME header")
		}
		le := binary.LittleEndian
		if le.Uint32(h[:]) != Magic {
			return nil, nil, nil, model.Errorf(name, off, "bad LiME range magic 0x%08x", le.Uint32(h[:]))
		}
		if v := le.Uint32(h[4:]); v != 1 {
			return nil, nil, nil, model.Wrapf(model.ErrUnsupported, name, off+4, "LiME version %d", v)
		}
		start, last := le.Uint64(h[8:]), le.Uint64(h[16:])
		if last < start || last >= uint64(maxAddr) {
			return nil, nil, nil, model.Errorf(name, off+8, "LiME range 0x%x-0x%x", start, last)
		}
		n := int64(last-start) + 1
		data := off + headerSize
		if int64(start) < end {
			return nil, nil, nil, model.Errorf(name, off+8, "LiME range at 0x%x overlaps or is out of order", start)
		}
		if n > size-data {
			notes = append(notes, fmt.Sprintf("range at physical 0x%x cut at the end of the file (truncated capture)", start))
			cut = model.Errorf(name, size, "truncated capture: the range at physical 0x%x (%d bytes at file offset 0x%x) is cut at the end of the file, %d bytes missing", start, n, data, n-(size-data))
			n = size - data
		}
		if n > 0 {
			pieces = memdisk.SplitRun(pieces, int64(start), data, n)
			end = int64(start) + n
		}
		off = data + n
	}
	d, err = memdisk.New(name, r, end, pieces, nil, nil)
	return d, notes, cut, err
}

// Open opens a LiME file as an Image with one memory view.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "lime", path, opts, New)
}

// New reads the LiME file that r holds, size bytes, named name.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, _ model.Options) (*model.Image, error) {
	path := name
	d, notes, cut, err := NewDisk(ctx, path, r, size)
	if err != nil {
		return nil, err
	}
	im := &model.Image{Path: path, Format: "lime", VirtualSize: d.Size()}
	im.Views = []model.View{{ID: model.ViewID(path, model.KindMemory, ""), Kind: model.KindMemory, Name: "memory", Disk: d,
		Notes: append([]string{"offsets are physical addresses"}, notes...), Incomplete: cut}}
	return im, nil
}
