package formats

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/memory/kdump"
	"github.com/imgaudit/imgaudit/formats/memory/libvirtsave"
	"github.com/imgaudit/imgaudit/formats/memory/lime"
	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/memory/vboxsav"
	"github.com/imgaudit/imgaudit/formats/memory/vmware"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/formats/vdi"
	"github.com/imgaudit/imgaudit/formats/vhd"
	"github.com/imgaudit/imgaudit/formats/vhdx"
	"github.com/imgaudit/imgaudit/formats/vma"
	"github.com/imgaudit/imgaudit/formats/vmdk"
)

// A reader recognises a format by its magic bytes and opens it.
type reader struct {
	name  string
	probe func(head []byte, r io.ReaderAt, size int64) bool
	new   model.OpenFunc
}

// readers lists the formats in probe order. Formats with a magic at offset 0
// come first; raw is the fallback.
func readers() []reader {
	return []reader{
		{"qcow2", qcow2.Probe, qcow2.New},
		{"vma", vma.Probe, vma.New},
		{"vmdk", vmdk.Probe, vmdk.New},
		{"ova", ova.Probe, ova.New},
		{"vhdx", vhdx.Probe, vhdx.New},
		{"libvirt-save", libvirtsave.Probe, libvirtsave.New},
		{"qemu-migration", qemustream.Probe, qemustream.New},
		{"elf-core", elfcore.Probe, elfcore.New},
		{"kdump", kdump.Probe, kdump.New},
		{"lime", lime.Probe, lime.New},
		{"vmware-state", vmware.Probe, vmware.New},
		{"vbox-sav", vboxsav.Probe, vboxsav.New},
		{"vdi", vdi.Probe, vdi.New},
		// VHD last before raw: a fixed VHD is only recognised by its footer.
		{"vpc", vhd.Probe, vhd.New},
		{"raw", func([]byte, io.ReaderAt, int64) bool { return true }, raw.New},
	}
}

// headLen is how much of the file probes see up front.
const headLen = 4096

// Detect returns the name of the format of the file at path, by content.
func Detect(path string) (string, error) {
	f, err := hostfile.OpenRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	r, err := detect(f, st.Size(), path)
	if err != nil {
		return "", err
	}
	return r.name, nil
}

func detect(f io.ReaderAt, size int64, path string) (reader, error) {
	head := make([]byte, min(size, headLen))
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return reader{}, model.Wrapf(err, path, 0, "read header")
	}
	head = head[:n]
	for _, r := range readers() {
		if r.name == "raw" && vma.ProbeName(path, head) {
			// A compressed Proxmox backup (.vma.zst, .vma.gz) is recognised
			// by its compression magic and its name together.
			return reader{"vma", nil, vma.New}, nil
		}
		if r.probe(head, f, size) {
			return r, nil
		}
	}
	return reader{}, model.Wrapf(model.ErrUnknownFormat, path, 0, "no reader recognises this file")
}

// Open opens the image at path read-only, detecting its format by magic
// bytes, and follows its backing chain unless opts.NoBacking is set. path
// must be a regular file. Every file the image names is resolved through
// opts.Opener (by default: regular files in path's own directory).
func Open(ctx context.Context, path string, opts Options) (*Image, error) {
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
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts Options) (*Image, error) {
	rd, err := detect(r, size, name)
	if err != nil {
		return nil, err
	}
	if opts.Format == "raw" {
		// A parent that declares its backing file raw is obeyed even when the
		// bytes look like another format, as QEMU does: a guest can write any
		// magic into a raw disk.
		rd = readers()[len(readers())-1]
	}
	if rd.name == "raw" && strings.EqualFold(filepath.Ext(name), ".vmem") {
		// VMware guest memory has no magic bytes; its name is all there is.
		rd = reader{"vmware-vmem", nil, vmware.New}
	}
	if opts.Open == nil {
		opts.Open = New
	}
	if opts.Opener == nil {
		opts.Opener = hostfile.Sealed{}
	}
	im, err := rd.new(ctx, r, size, name, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rd.name, err)
	}
	parseMemoryViews(ctx, im)
	return im, nil
}

// parseMemoryViews replaces the raw saved-VM-state views that disk readers
// produce (a qcow2 snapshot's vmstate) by guest-physical memory views. When
// the state cannot be parsed, the raw bytes stay as the view, with a note, so
// they are still scanned.
func parseMemoryViews(ctx context.Context, im *Image) {
	var out []View
	for _, v := range im.Views {
		if v.Kind != KindMemory || v.Disk == nil || !isVMState(v.Disk) {
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
			views[i].ID = v.ID + strings.TrimPrefix(views[i].ID, model.ViewID(base, KindMemory, v.Name))
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

func isVMState(d Disk) bool {
	var magic [8]byte
	n, _ := d.ReadAt(magic[:], 0)
	return n == 8 && string(magic[:4]) == "QEVM"
}
