// Package formats opens VM disk and memory images of any supported format,
// detected by content (Probe), and exposes them through one model (package
// model): an Image with named views, each a guest byte space (Disk) with
// allocated extents.
package formats

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Open opens the image at path read-only, detecting its format by magic
// bytes, and follows its backing chain unless opts.NoBacking is set. path
// must be a regular file. Every file the image names is resolved through
// opts.Opener (by default: regular files in path's own directory).
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "", path, opts, New)
}

// New reads the image that r holds, size bytes, detecting its format by
// magic bytes, and follows its backing chain unless opts.NoBacking is set:
// the io.ReaderAt form of Open, for an image inside an archive or a
// container layer (a section of it) or in a spool. name names the image
// in views, extents and errors, and its ending decides where the content
// cannot (.vmem, .vma.zst). Every file the image names is resolved
// through opts.Opener; none is when it is nil. r is not closed with the
// image.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	m, err := ProbeReader(r, size, name)
	if err != nil {
		return nil, err
	}
	if opts.Format == "raw" {
		// A parent that declares its backing file raw is obeyed even when the
		// bytes look like another format, as QEMU does: a guest can write any
		// magic into a raw disk.
		m = probeRaw(nil)
	}
	if m.Name == "raw" && vmemFormat.probe(nil, r, size, name, nil) > 0 {
		m = Match{Name: vmemFormat.name, Kind: vmemFormat.kind, Confidence: ByName, new: vmemFormat.new}
	}
	if opts.Open == nil {
		opts.Open = New
	}
	if opts.Opener == nil {
		opts.Opener = hostfile.Sealed{}
	}
	im, err := m.new(ctx, r, size, name, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name, err)
	}
	parseMemoryViews(ctx, im)
	return im, nil
}

// parseMemoryViews replaces the raw saved-VM-state views that disk readers
// produce (a qcow2 snapshot's vmstate) by guest-physical memory views. When
// the state cannot be parsed, the raw bytes stay as the view, with a note, so
// they are still scanned.
func parseMemoryViews(ctx context.Context, im *model.Image) {
	var out []model.View
	for _, v := range im.Views {
		if v.Kind != model.KindMemory || v.Disk == nil || !isVMState(v.Disk) {
			out = append(out, v)
			continue
		}
		base, _, _ := strings.Cut(v.ID, "#")
		views, err := memory.ViewsFromVMState(ctx, base, v.Name, v.Disk)
		if err != nil || len(views) == 0 {
			v.Notes = append(v.Notes, fmt.Sprintf("saved VM state not parsed, scanned as raw bytes: %v", err))
			out = append(out, v)
			continue
		}
		for i := range views {
			views[i].ID = v.ID + strings.TrimPrefix(views[i].ID, model.ViewID(base, model.KindMemory, v.Name))
			views[i].Created = v.Created
			views[i].Attrs = v.Attrs
			views[i].Notes = append(slices.Clone(v.Notes), views[i].Notes...)
			if views[i].Incomplete == nil {
				views[i].Incomplete = v.Incomplete
			}
		}
		out = append(out, views...)
	}
	im.Views = out
}

func isVMState(d model.Disk) bool {
	var magic [8]byte
	n, _ := d.ReadAt(magic[:], 0)
	return n == 8 && string(magic[:4]) == "QEVM"
}
