package qemustream

import (
	"context"
	"fmt"
	"sort"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Open opens a file holding a bare migration stream (`migrate "exec:cat >
// F"`) as an Image of memory views (see Views).
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	f, err := hostfile.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("qemustream: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("qemustream: %w", err)
	}
	s, err := Parse(ctx, path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	im := &model.Image{Path: path, Format: "qemu-migration", VirtualSize: s.Physical.Size(), Attrs: s.Attrs()}
	im.AddCloser(f)
	im.Views = s.Views(path, "")
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
		Disk: s.Physical, Notes: notes, Attrs: s.Attrs()}}
	if len(s.SupersededRefs) > 0 {
		views = append(views, model.View{ID: model.ViewID(base, model.KindMemory, sub("superseded")), Kind: model.KindMemory,
			Name: sub("superseded"), Disk: s.Superseded,
			Notes: []string{fmt.Sprintf("older versions of %d pages, %d bytes each, laid out back to back; offsets are not guest-physical", len(s.SupersededRefs), s.PageSize)}})
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
	ext, err := model.CollectExtents(ctx, d)
	if err != nil {
		return nil, err
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
	}, nil
}
