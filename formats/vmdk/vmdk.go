// Package vmdk reads VMware VMDK images read-only: hosted sparse (KDMV,
// including stream-optimized with zlib grains and the GD_AT_END footer
// form), flat, zero, VMFS, COWD (vmfsSparse) and seSparse extents, split
// into one or many files by a descriptor, and delta chains through
// parentFileNameHint. It follows VMware's Virtual Disk Format 1.1 and 5.0
// technical notes and QEMU's block/vmdk.c.
package vmdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

// Probe reports whether a file is a VMDK: a sparse extent magic (KDMV, COWD,
// seSparse) or a text descriptor.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return ProbeExtent(head) || probeDescriptor(head, size)
}

// ProbeExtent reports whether head starts with the magic of a sparse
// extent (KDMV, COWD, seSparse): a VMDK whose data is in the file itself,
// unlike a text descriptor, whose extents are other files.
func ProbeExtent(head []byte) bool {
	return bytes.HasPrefix(head, magicKDMV) || bytes.HasPrefix(head, magicCOWD) ||
		len(head) >= 8 && binary.LittleEndian.Uint64(head) == seSparseConstMagic
}

// probeDescriptor accepts small text files that start like a descriptor:
// "# Disk DescriptorFile", or (as QEMU's vmdk_probe) a first non-comment
// line "version=N", and that mention createType.
func probeDescriptor(head []byte, size int64) bool {
	if size > maxDescriptorSize || !bytes.Contains(head, []byte("createType")) {
		return false
	}
	if bytes.HasPrefix(head, []byte("# Disk DescriptorFile")) {
		return true
	}
	for line := range bytes.Lines(head) {
		l := bytes.TrimSpace(line)
		if len(l) == 0 || l[0] == '#' {
			continue
		}
		return bytes.HasPrefix(l, []byte("version="))
	}
	return false
}

// source is the file a VMDK is opened from.
type source struct {
	name string      // path, or member name inside an archive
	r    io.ReaderAt // the descriptor or sparse file
	size int64
	// names resolves and opens the extent and parent files the descriptor
	// names (opts.Opener).
	names model.Opener
}

// Open opens the VMDK at path (a descriptor or a sparse extent file) with
// its extents and, unless opts.NoBacking, its parent chain through opts.Open.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "vmdk", path, opts, New)
}

// New reads the VMDK that r holds, size bytes: a descriptor, a sparse
// extent, or a single-file VMDK (monolithicSparse, streamOptimized, a bare
// COWD or seSparse extent) such as a member of an OVA. name names it in
// views, extents and errors; the extent and parent files a descriptor
// names are resolved through opts.Opener (none when it is nil).
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	opts, err := hostfile.Enter(r, name, opts)
	if err != nil {
		return nil, err
	}
	im := &model.Image{Path: name, Format: "vmdk"}
	if err := openInto(ctx, im, source{name: name, r: r, size: size, names: opts.Opener}, opts); err != nil {
		im.Close()
		return nil, err
	}
	return im, nil
}

func openInto(ctx context.Context, im *model.Image, src source, opts model.Options) error {
	head := make([]byte, min(src.size, maxDescriptorSize))
	if n, err := src.r.ReadAt(head, 0); err != nil && err != io.EOF {
		return model.Wrapf(err, src.name, 0, "read header")
	} else {
		head = head[:n]
	}
	if len(head) < 4 {
		return model.Errorf(src.name, 0, "file too small to be a VMDK")
	}
	d := &disk{}
	var notes []string
	var desc *Descriptor
	var descBase int64
	if ProbeExtent(head) {
		sp, text, n, err := openSparse(src.name, src.r, src.size)
		if err != nil {
			return err
		}
		notes = append(notes, n...)
		if sp != nil {
			descBase = sp.descOff
			d.exts = []*extent{{start: 0, length: sp.capacity, kind: extSparse, file: src.name, r: src.r, fileSize: src.size, sp: sp}}
			d.size = sp.capacity
		} else {
			descBase = 0
		}
		if text != nil {
			pd, err := ParseDescriptor(text)
			if err != nil {
				if sp == nil {
					return descError(err, src.name, descBase)
				}
				// The extent is usable without its descriptor.
				notes = append(notes, "embedded descriptor unreadable: "+err.Error())
				im.Errors = append(im.Errors, descError(err, src.name, descBase))
			} else {
				desc = pd
			}
		}
		if sp == nil { // descriptor wrapped in a sparse header: use its extents
			if desc == nil {
				return model.Errorf(src.name, 0, "sparse header with capacity 0 and no descriptor")
			}
			if err := openExtents(ctx, im, d, desc, src, descBase, &notes); err != nil {
				return err
			}
		}
	} else {
		if !probeDescriptor(head, src.size) && !bytes.Contains(head, []byte("createType")) {
			return model.Errorf(src.name, 0, "not a VMDK: no sparse magic and no descriptor")
		}
		pd, err := ParseDescriptor(head)
		if err != nil {
			return descError(err, src.name, 0)
		}
		desc = pd
		if err := openExtents(ctx, im, d, desc, src, 0, &notes); err != nil {
			return err
		}
	}
	im.VirtualSize = d.size
	im.Attrs = map[string]string{"extents": strconv.Itoa(len(d.exts))}
	if desc != nil {
		if desc.CreateType != "" {
			im.Attrs["create_type"] = desc.CreateType
		}
		if desc.HasCID {
			im.Attrs["cid"] = fmt.Sprintf("%08x", desc.CID)
		}
		if desc.HasParentCID {
			im.Attrs["parent_cid"] = fmt.Sprintf("%08x", desc.ParentCID)
		}
		if desc.ParentFileNameHint != "" {
			im.Attrs["parent_hint"] = desc.ParentFileNameHint
		}
	}
	var sparses []*sparse
	for _, e := range d.exts {
		if e.sp != nil {
			sparses = append(sparses, e.sp)
		}
	}
	if len(sparses) > 0 {
		sp := sparses[0]
		im.Attrs["grain_size"] = strconv.FormatInt(sp.grainSize, 10)
		im.Attrs["extent_format"] = sp.kind.String()
		if sp.kind == kindHosted {
			im.Attrs["version"] = strconv.Itoa(int(sp.header.Version))
			if sp.header.UncleanShutdown {
				notes = append(notes, "sparse header records an unclean shutdown")
			}
		}
		if sp.compressed {
			im.Attrs["compressed"] = "deflate"
		}
		if sp.gdAtEnd {
			im.Attrs["gd_at_end"] = "true"
		}
	}

	var backingViews []model.View
	if desc != nil && desc.ParentFileNameHint != "" && !opts.NoBacking {
		pv, vs, pnotes := openParent(ctx, im, desc, src, descBase, opts)
		d.parent = pv
		notes = append(notes, pnotes...)
		backingViews = vs
	} else if desc != nil && desc.ParentFileNameHint != "" {
		im.Backing = append(im.Backing, model.BackingLink{Name: desc.ParentFileNameHint, Format: "vmdk"})
		notes = append(notes, "parent not opened (NoBacking): unallocated grains read as zeros here")
	}

	im.Views = append(im.Views, model.View{
		ID: model.ViewID(src.name, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current",
		Disk: d, Notes: notes,
	})
	for _, sp := range sparses {
		// The ID names the extent file only when there are several (IDs
		// stay as they were); the name always does, so that a backing
		// file's unreferenced view does not read like the image's own.
		name := ""
		if len(sparses) > 1 {
			name = filepath.Base(sp.file)
		}
		u := &unrefIndex{sp: sp}
		im.Views = append(im.Views, model.View{
			ID: model.ViewID(src.name, model.KindUnreferenced, name), Kind: model.KindUnreferenced, Name: filepath.Base(sp.file),
			Disk:  &unrefDisk{u: u},
			Notes: []string{"host bytes of " + filepath.Base(sp.file) + " that no grain directory, grain table or header references (guest offset = file offset); all-zero sectors omitted"},
		})
		if sp.compressed && sp.markers {
			sname := "stale-grains"
			if name != "" {
				sname = name + ":stale-grains"
			}
			im.Views = append(im.Views, model.View{
				ID: model.ViewID(src.name, model.KindUnreferenced, sname), Kind: model.KindUnreferenced, Name: filepath.Base(sp.file) + ":stale-grains",
				Disk:  &staleDisk{u: u},
				Notes: []string{"compressed grains found in unreferenced space of " + filepath.Base(sp.file) + ", inflated; stale grain i is at guest offset i*grain_size"},
			})
		}
	}
	im.Views = append(im.Views, backingViews...)
	return nil
}

func descError(err error, file string, base int64) error {
	var de *DescriptorError
	if errors.As(err, &de) {
		return model.Errorf(file, base+int64(de.Pos), "descriptor: %s", de.Msg)
	}
	return model.Wrapf(err, file, base, "descriptor")
}

// unsupportedCreateTypes name raw devices, which are not image files.
var unsupportedCreateTypes = map[string]bool{
	"vmfsRaw": true, "vmfsRawDeviceMap": true, "vmfsPassthroughRawDeviceMap": true,
	"fullDevice": true, "partitionedDevice": true,
}

func openExtents(ctx context.Context, im *model.Image, d *disk, desc *Descriptor, src source, descBase int64, notes *[]string) error {
	if unsupportedCreateTypes[desc.CreateType] {
		return model.Wrapf(errUnsupported, src.name, descBase, "createType %q (a raw device)", desc.CreateType)
	}
	if len(desc.Extents) == 0 {
		return model.Errorf(src.name, descBase, "descriptor lists no extents")
	}
	opened := map[string]*extent{}
	for _, l := range desc.Extents {
		if err := ctx.Err(); err != nil {
			return err
		}
		pos := descBase + int64(l.Pos)
		e := &extent{start: d.size, length: l.Sectors * sectorSize}
		if d.size > (maxExtentSectors*sectorSize)-e.length {
			return model.Errorf(src.name, pos, "extents add up to an absurd size")
		}
		switch l.Type {
		case "VMFSRDM", "VMFSRAW":
			return model.Wrapf(errUnsupported, src.name, pos, "extent type %s (raw device)", l.Type)
		case "ZERO":
			e.kind = extZero
		}
		if l.Access == "NOACCESS" {
			e.kind = extNoAccess
			*notes = append(*notes, fmt.Sprintf("extent %q is NOACCESS: it reads as zeros", l.File))
		}
		if e.kind == extFlat || (e.kind != extZero && e.kind != extNoAccess) {
			f, p, err := src.names.Open(src.name, l.File)
			if err != nil {
				return model.Wrapf(err, src.name, pos, "extent %q", l.File)
			}
			im.AddCloser(f)
			if prev := opened[p]; prev != nil && prev.sp != nil && l.Type != "FLAT" && l.Type != "VMFS" {
				return model.Errorf(src.name, pos, "sparse extent file %q is listed twice", l.File)
			}
			st, err := f.Stat()
			if err != nil {
				return model.Wrapf(err, p, -1, "stat extent")
			}
			e.file, e.r, e.fileSize = p, f, st.Size()
			switch l.Type {
			case "FLAT", "VMFS":
				e.kind = extFlat
				e.flatBase = l.Offset * sectorSize
				if osf, ok := f.(*os.File); ok && st.Mode().IsRegular() {
					if e.flatData, err = raw.DataExtents(osf, p, st.Size()); err != nil {
						return err
					}
					if e.flatData == nil {
						e.flatData = model.ExtentList{}
					}
				}
			case "SPARSE", "VMFSSPARSE", "SESPARSE":
				sp, _, n, err := openSparse(p, f, st.Size())
				if err != nil {
					return err
				}
				if sp == nil {
					return model.Errorf(p, 0, "extent is a descriptor, not a sparse extent")
				}
				if (l.Type == "SESPARSE") != (sp.kind == kindSE) {
					return model.Errorf(p, 0, "descriptor says %s but the file is a %s extent", l.Type, sp.kind)
				}
				if sp.capacity != e.length {
					n = append(n, fmt.Sprintf("extent %q: descriptor says %d sectors, header says %d", l.File, l.Sectors, sp.capacity/sectorSize))
				}
				*notes = append(*notes, n...)
				e.kind = extSparse
				e.sp = sp
			}
			opened[p] = e
		}
		d.exts = append(d.exts, e)
		d.size += e.length
	}
	return nil
}

// openParent opens the parent named by parentFileNameHint through
// opts.Open, checks its CID, records the link and adopts its views.
func openParent(ctx context.Context, im *model.Image, desc *Descriptor, src source, descBase int64, opts model.Options) (model.Disk, []model.View, []string) {
	hint := desc.ParentFileNameHint
	link := model.BackingLink{Name: hint, Format: "vmdk"}
	fail := func(err error, note string) (model.Disk, []model.View, []string) {
		link.Err = err
		im.Backing = append(im.Backing, link)
		im.Errors = append(im.Errors, err)
		return nil, nil, []string{note}
	}
	hintAt := descBase + int64(desc.ParentHintPos)
	f, p, err := src.names.Open(src.name, hint)
	var extra []string
	if err != nil && !errors.Is(err, model.ErrSealed) {
		// VMware writes the absolute path of the host that made the delta
		// (often a Windows path); a copied chain keeps parents side by
		// side, so the base name is tried next to the delta, under the
		// same policy.
		parts := strings.FieldsFunc(hint, func(r rune) bool { return r == '/' || r == '\\' })
		if len(parts) > 0 && parts[len(parts)-1] != hint {
			if f2, alt, err2 := src.names.Open(src.name, parts[len(parts)-1]); err2 == nil {
				extra = append(extra, fmt.Sprintf("parent %q: %v; using %q from the same directory", hint, err, filepath.Base(alt)))
				f, p, err = f2, alt, nil
			}
		}
	}
	if err != nil {
		return fail(model.Wrapf(err, src.name, hintAt, "parent %q", hint),
			"parent not followed: unallocated grains read as zeros here")
	}
	if opts.Open == nil {
		f.Close()
		return fail(model.Errorf(src.name, hintAt, "parent %q not followed from here", hint),
			"parent not followed: unallocated grains read as zeros here")
	}
	link.Path = p
	pim, err := model.OpenLinked(ctx, opts, f, p, "vmdk")
	if err != nil {
		return fail(model.Wrapf(err, src.name, hintAt, "open parent %q", hint),
			"parent could not be opened: unallocated grains read as zeros here")
	}
	im.AddCloser(pim)
	link.Format = pim.Format
	im.Backing = append(im.Backing, link)
	im.Backing = append(im.Backing, pim.Backing...)
	for _, e := range pim.Errors {
		im.Errors = append(im.Errors, fmt.Errorf("parent %s: %w", filepath.Base(p), e))
	}
	notes := extra
	if pc, ok := pim.Attrs["cid"]; !ok || !desc.HasParentCID || pc != fmt.Sprintf("%08x", desc.ParentCID) {
		have := "none"
		if ok {
			have = pc
		}
		err := model.Errorf(src.name, descBase, "parentCID %08x does not match the CID (%s) of parent %s", desc.ParentCID, have, filepath.Base(p))
		im.Errors = append(im.Errors, err)
		notes = append(notes, "parentCID does not match the parent's CID: the parent changed after this delta was made, so its fall-through bytes may not be what the guest saw")
	}
	cur, ok := pim.Current()
	if !ok {
		// Unallocated grains then read as zeros, not as the parent's:
		// an error, as qcow2's reader makes it, so that the run is
		// incomplete.
		im.Errors = append(im.Errors, model.Errorf(src.name, hintAt, "parent %q has no current view: unallocated grains read as zeros here", hint))
		return nil, model.AdoptBacking(filepath.Base(src.name), pim), notes
	}
	return cur.Disk, model.AdoptBacking(filepath.Base(src.name), pim), notes
}
