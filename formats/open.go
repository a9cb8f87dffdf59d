package formats

import (
	"context"
	"fmt"
	"io"
	"os"
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
	open  model.OpenFunc
}

// readers lists the formats in probe order. Formats with a magic at offset 0
// come first; raw is the fallback.
func readers() []reader {
	return []reader{
		{"qcow2", qcow2.Probe, qcow2.Open},
		{"vma", vma.Probe, vma.Open},
		{"vmdk", vmdk.Probe, vmdk.Open},
		{"ova", ova.Probe, ova.Open},
		{"vhdx", vhdx.Probe, vhdx.Open},
		{"libvirt-save", libvirtsave.Probe, libvirtsave.Open},
		{"qemu-migration", qemustream.Probe, qemustream.Open},
		{"elf-core", elfcore.Probe, elfcore.Open},
		{"kdump", kdump.Probe, kdump.Open},
		{"lime", lime.Probe, lime.Open},
		{"vmware-state", vmware.Probe, vmware.Open},
		{"vbox-sav", vboxsav.Probe, vboxsav.Open},
		{"vdi", vdi.Probe, vdi.Open},
		// VHD last before raw: a fixed VHD is only recognised by its footer.
		{"vpc", vhd.Probe, vhd.Open},
		{"raw", func([]byte, io.ReaderAt, int64) bool { return true }, raw.Open},
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
	r, err := detect(f, path)
	if err != nil {
		return "", err
	}
	return r.name, nil
}

func detect(f *os.File, path string) (reader, error) {
	st, err := f.Stat()
	if err != nil {
		return reader{}, err
	}
	size := st.Size()
	head := make([]byte, headLen)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return reader{}, model.Wrapf(err, path, 0, "read header")
	}
	head = head[:n]
	for _, r := range readers() {
		if r.name == "raw" && vma.ProbeName(path, head) {
			// A compressed Proxmox backup (.vma.zst, .vma.gz) is recognised
			// by its compression magic and its name together.
			return reader{"vma", nil, vma.Open}, nil
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
	if opts.Depth > model.MaxChainDepth {
		return nil, model.Errorf(path, -1, "backing chain deeper than %d", model.MaxChainDepth)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(real); err == nil {
		real = abs
	}
	if slices.Contains(opts.Chain, real) {
		return nil, model.Errorf(path, -1, "backing chain has a cycle: %s is its own ancestor", path)
	}
	f, err := hostfile.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	r, err := detect(f, path)
	f.Close()
	if err != nil {
		return nil, err
	}
	if opts.Format == "raw" {
		// A parent that declares its backing file raw is obeyed even when the
		// bytes look like another format, as QEMU does: a guest can write any
		// magic into a raw disk.
		r = readers()[len(readers())-1]
	}
	if r.name == "raw" && strings.EqualFold(filepath.Ext(path), ".vmem") {
		// VMware guest memory has no magic bytes; its name is all there is.
		r = reader{"vmware-vmem", nil, vmware.Open}
	}
	if opts.Open == nil {
		opts.Open = Open
	}
	opts.Opener = hostfile.For(opts, path)
	opts.Chain = append(slices.Clone(opts.Chain), real)
	im, err := r.open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
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
