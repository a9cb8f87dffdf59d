package model

import (
	"context"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ClampRead starts a ReadAt of len(p) bytes at off in a space of size
// bytes: it returns how many of them lie inside the space, or
// os.ErrInvalid for a negative offset and io.EOF for one at or past the
// end. A reader that then returns fewer than len(p) bytes adds io.EOF.
func ClampRead(p []byte, off, size int64) (int, error) {
	if off < 0 {
		return 0, os.ErrInvalid
	}
	if off >= size {
		return 0, io.EOF
	}
	return int(min(int64(len(p)), size-off)), nil
}

// ExtentList is a Disk helper: a fixed, sorted list of extents.
type ExtentList []Extent

// Seq yields the list in order, stopping early on ctx cancellation.
func (l ExtentList) Seq(ctx context.Context) iter.Seq2[Extent, error] {
	return func(yield func(Extent, error) bool) {
		for _, e := range l {
			if err := ctx.Err(); err != nil {
				yield(Extent{}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

// CollectExtents drains a Disk's extent iterator.
func CollectExtents(ctx context.Context, d Disk) ([]Extent, error) {
	var out []Extent
	for e, err := range d.Extents(ctx) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// AllocatedBytes sums the lengths of non-zero extents.
func AllocatedBytes(ctx context.Context, d Disk) (int64, error) {
	var n int64
	for e, err := range d.Extents(ctx) {
		if err != nil {
			return n, err
		}
		if e.Source != SourceZero {
			n += e.Length
		}
	}
	return n, nil
}

// FileDisk is a Disk over a region of a host file whose bytes are the guest
// bytes one for one (a raw image, a flat extent, an external data file). Its
// extents are given by the caller, usually from SEEK_DATA/SEEK_HOLE.
type FileDisk struct {
	R      io.ReaderAt
	Name   string // host path, for extents
	Base   int64  // host offset of guest byte 0
	Len    int64  // guest size
	Allocd ExtentList
	// Map, when set, is the host file mapped read-only (from host offset
	// 0); Slice lends its bytes so that a scan need not copy them. A type
	// that embeds FileDisk and reads differently must leave it nil.
	Map []byte
}

// Slice lends the n guest bytes at off from Map without copying them
// (detectors.Slicer). It reports false where Map does not hold all of them,
// and the caller reads with ReadAt instead.
func (d *FileDisk) Slice(off int64, n int) ([]byte, bool) {
	if d.Map == nil || off < 0 || n < 0 || off > d.Len-int64(n) {
		return nil, false
	}
	s := d.Base + off
	if s < 0 || s > int64(len(d.Map))-int64(n) {
		return nil, false
	}
	return d.Map[s : s+int64(n) : s+int64(n)], true
}

func (d *FileDisk) Size() int64 { return d.Len }

func (d *FileDisk) ReadAt(p []byte, off int64) (int, error) {
	want, err := ClampRead(p, off, d.Len)
	if err != nil {
		return 0, err
	}
	n, err := d.R.ReadAt(p[:want], d.Base+off)
	if n < want && (err == nil || err == io.EOF) {
		// A short host file reads as zeros past its end, as QEMU does.
		clear(p[n:want])
		n, err = want, nil
	}
	if err == nil && want < len(p) {
		err = io.EOF
	}
	return n, err
}

func (d *FileDisk) Extents(ctx context.Context) iter.Seq2[Extent, error] { return d.Allocd.Seq(ctx) }

// AdoptBacking turns the views of an opened backing image into views of the
// image above it. The backing's current view becomes a "backing" view with ID
// "<top>#backing:<name>"; its other views keep their kind and get IDs like
// "<top>#backing:<name>#snapshot:x". Deeper backing views, already adopted by
// the backing image itself, are re-prefixed the same way, so IDs stay stable
// and unique along the chain.
func AdoptBacking(topBase string, b *Image) []View {
	name := filepath.Base(b.Path)
	var out []View
	for _, v := range b.Views {
		nv := v
		nv.Notes = slices.Clone(v.Notes)
		rest := v.ID
		if i := strings.Index(rest, "#"); i >= 0 {
			rest = rest[i+1:]
		} else {
			rest = ""
		}
		switch {
		case v.Kind == KindCurrent:
			nv.Kind = KindBacking
			nv.Name = name
			nv.ID = topBase + "#backing:" + name
		case strings.HasPrefix(rest, "backing:"):
			// Already a backing view of the backing image: keep its chain.
			nv.ID = topBase + "#" + rest
		default:
			nv.ID = topBase + "#backing:" + name + "#" + rest
		}
		out = append(out, nv)
	}
	return out
}

// ViewID builds the ID of a view of the image at path.
func ViewID(path string, kind Kind, name string) string {
	base := filepath.Base(path)
	if name == "" {
		return base + "#" + string(kind)
	}
	return base + "#" + string(kind) + ":" + name
}
