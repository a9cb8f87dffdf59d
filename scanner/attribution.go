package scanner

import (
	"context"

	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/report"
)

// fsInfo places guest offsets of one disk view in its partitions and files.
// It is built lazily: only views with findings pay for reading filesystem
// metadata.
type fsInfo struct {
	m   *guestfs.Map
	err error
}

func (v *viewState) filesystem(ctx context.Context) *fsInfo {
	v.fsOnce.Do(func() {
		m, err := guestfs.Analyze(ctx, v.view.Disk)
		v.fs = &fsInfo{m: m, err: err}
		if err != nil {
			v.notes = append(v.notes, "filesystem attribution failed: "+err.Error())
		}
	})
	return v.fs
}

// locate places a guest offset: its partition, path (and the file's
// other names), state (never ""). Excluded, when set, says why a finding
// there is not a secret (a LUKS key-slot area): the finding's location is
// dropped.
func (f *fsInfo) locate(off int64) guestfs.Location {
	if f == nil || f.m == nil {
		return guestfs.Location{State: report.StateUnknown}
	}
	l := f.m.Locate(off)
	if l.State == "" {
		l.State = report.StateUnknown
	}
	return l
}

func (f *fsInfo) partitions(view string) []report.Partition {
	if f == nil || f.m == nil {
		return nil
	}
	var out []report.Partition
	for _, p := range f.m.Partitions() {
		out = append(out, report.Partition{View: view, Name: p.Name, Start: p.Start, Size: p.Size, FS: p.FS, Attributed: p.Attributed, Note: p.Note})
	}
	return out
}

func (f *fsInfo) unattributed(view string) []string {
	if f == nil || f.m == nil {
		return nil
	}
	var out []string
	for _, n := range f.m.Unattributed() {
		out = append(out, view+": "+n)
	}
	return out
}
