package qemustream

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Open opens a file holding a bare migration stream (see New).
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "qemustream", path, opts, New)
}

// New reads a file holding a bare migration stream (`migrate "exec:cat >
// F"`), which r holds, size bytes, named name, as an Image of memory views
// (see Views).
func New(ctx context.Context, r io.ReaderAt, size int64, name string, _ model.Options) (*model.Image, error) {
	s, err := Parse(ctx, name, r, size)
	if err != nil {
		return nil, err
	}
	im := &model.Image{Path: name, Format: "qemu-migration", VirtualSize: s.Physical.Size(), Attrs: s.Attrs()}
	im.Views = s.Views(name, "")
	return im, nil
}

// Views turns a stream into memory views of the image at base:
//   - ViewID(base, memory, name): guest-physical RAM (final page versions);
//   - name+"/superseded" (or "superseded"): older page versions, back to back;
//     the view's Attrs do not list them, Stream.SupersededRefs does;
//   - name+"/block:<id>" (or "block:<id>"): other RAM blocks with data
//     (BIOS, option ROMs, video RAM), by RAMBlock offset.
func (s *Stream) Views(base, name string) []model.View {
	sub := func(n string) string {
		if name == "" {
			return n
		}
		return name + "/" + n
	}
	notes := append([]string{"offsets are guest-physical addresses"}, s.Notes...)
	views := []model.View{{ID: model.ViewID(base, model.KindMemory, name), Kind: model.KindMemory, Name: name,
		Disk: s.Physical, Notes: notes, Attrs: s.Attrs(), Incomplete: s.Cut}}
	if len(s.SupersededRefs) > 0 {
		views = append(views, model.View{ID: model.ViewID(base, model.KindMemory, sub("superseded")), Kind: model.KindMemory,
			Name: sub("superseded"), Disk: s.Superseded,
			Notes: []string{fmt.Sprintf("older versions of %d pages, %d bytes each, laid out back to back; offsets are not guest-physical", len(s.SupersededRefs), s.PageSize)}})
	}
	if s.Tail != nil {
		views = append(views, model.View{ID: model.ViewID(base, model.KindMemory, sub("device-state")), Kind: model.KindMemory,
			Name: sub("device-state"), Disk: s.Tail,
			Notes: []string{fmt.Sprintf("the stream from offset %d, where parsing stopped at a device section, to its end (device state, and any RAM sent after it), scanned as it is; offsets are the stream's, from there", s.Tail.Base)}})
	}
	for _, r := range s.Regions {
		if len(r.Disk.Pieces) == 0 {
			continue
		}
		views = append(views, model.View{ID: model.ViewID(base, model.KindMemory, sub("block:"+r.Block)), Kind: model.KindMemory,
			Name: sub("block:" + r.Block), Disk: r.Disk,
			Notes: []string{"RAM block " + r.Block + " by block offset; its guest-physical place is not recorded in the stream"}})
	}
	return views
}

// SupersededPage says which page version lies at an offset of the
// Superseded disk.
func (s *Stream) SupersededPage(off int64) (PageRef, bool) {
	i := off / s.PageSize
	if off < 0 || i >= int64(len(s.SupersededRefs)) {
		return PageRef{}, false
	}
	return s.SupersededRefs[i], true
}

// DiskLocator maps offsets of a Disk (a qcow2 snapshot's vmstate) to the
// host bytes behind them, from the Disk's extents, so that pages stored
// verbatim keep their host location.
func DiskLocator(ctx context.Context, d model.Disk) (func(off, n int64) (string, int64, bool), error) {
	loc, _, err := StateLocator(ctx, d)
	return loc, err
}

// StateLocator is DiskLocator for a saved VM state that must not repeat
// itself: a migration stream is written once, front to back, so no two
// of its ranges can be stored in the same host bytes. A hostile qcow2 can
// point every cluster of a "1 TiB" state at one cluster of page records,
// which would parse as the same pages sent millions of times (5.8 GB of
// index after 60 s). StateLocator stops at the first range stored in host
// bytes an earlier range already used and returns that offset as cut (-1
// when there is none), with an error that says where: the caller parses
// only the stream before it. Memory stays bounded by the host bytes the
// state really has.
func StateLocator(ctx context.Context, d model.Disk) (loc func(off, n int64) (string, int64, bool), cut int64, err error) {
	var ext []model.Extent
	used := map[string]*hostRanges{}
	cut = -1
	for e, ierr := range d.Extents(ctx) {
		if ierr != nil {
			return nil, -1, ierr
		}
		if e.Source == model.SourceZero || e.Length <= 0 {
			continue
		}
		if e.Source == model.SourceData && e.FileOffset >= 0 {
			hr := used[e.File]
			if hr == nil {
				hr = &hostRanges{}
				used[e.File] = hr
			}
			if at, ok := hr.overlap(e.FileOffset, e.FileOffset+e.Length); ok {
				cut = e.Offset
				err = model.Errorf(e.File, e.FileOffset, "saved VM state cut at its offset %d: its bytes there are stored in host bytes that its offset %d already uses (aliased clusters); a migration stream never repeats itself", e.Offset, at)
				break
			}
			hr.add(e.FileOffset, e.FileOffset+e.Length, e.Offset)
		}
		ext = append(ext, e)
	}
	sort.Slice(ext, func(i, j int) bool { return ext[i].Offset < ext[j].Offset })
	return func(off, n int64) (string, int64, bool) {
		i := sort.Search(len(ext), func(i int) bool { return ext[i].End() > off })
		if i == len(ext) {
			return "", 0, false
		}
		e := ext[i]
		if e.Source != model.SourceData || e.Offset > off || off+n > e.End() || e.FileOffset < 0 {
			return "", 0, false
		}
		return e.File, e.FileOffset + (off - e.Offset), true
	}, cut, err
}

// hostRanges is a set of disjoint host ranges, each with the stream offset
// that used it, sorted by start.
type hostRanges struct{ r []hostRange }

type hostRange struct{ start, end, by int64 }

// overlap reports the stream offset of a range overlapping [start, end).
func (h *hostRanges) overlap(start, end int64) (int64, bool) {
	i := sort.Search(len(h.r), func(i int) bool { return h.r[i].end > start })
	if i < len(h.r) && h.r[i].start < end {
		return h.r[i].by + max(0, start-h.r[i].start), true
	}
	return 0, false
}

func (h *hostRanges) add(start, end, by int64) {
	i := sort.Search(len(h.r), func(i int) bool { return h.r[i].start > start })
	h.r = slices.Insert(h.r, i, hostRange{start, end, by})
}
