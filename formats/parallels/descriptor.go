package parallels

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap"
	"github.com/imgaudit/imgaudit/formats/model"
)

// A Parallels disk (a .hdd bundle directory: Parallels Desktop, Virtuozzo)
// is a chain of images that DiskDescriptor.xml describes (QEMU's
// docs/interop/prl-xml.rst): each snapshot is an image whose unwritten
// clusters read from its parent's, and the top image is the one the guest
// writes. The images themselves name no parent; only the descriptor does.

const (
	descriptorName = "DiskDescriptor.xml"
	// maxDescriptor bounds the descriptor read into memory: one with a
	// thousand snapshots is about 200 KiB.
	maxDescriptor = 4 << 20
	zeroGUID      = "{00000000-0000-0000-0000-000000000000}"
)

// descriptor is what DiskDescriptor.xml says about the images.
type descriptor struct {
	XMLName  xml.Name `xml:"Parallels_disk_image"`
	Storages []struct {
		Images []struct {
			GUID string `xml:"GUID"`
			Type string `xml:"Type"`
			File string `xml:"File"`
		} `xml:"Image"`
	} `xml:"StorageData>Storage"`
	Shots []struct {
		GUID       string `xml:"GUID"`
		ParentGUID string `xml:"ParentGUID"`
	} `xml:"Snapshots>Shot"`
}

// readDescriptor reads the DiskDescriptor.xml beside the image at path,
// through the Opener, and returns it, its bytes and the path that names
// it; ok is false when there is none to read (a lone .hds, or an image
// inside an archive that holds no descriptor).
func readDescriptor(opts model.Options, path string) (d descriptor, b []byte, name string, ok bool, err error) {
	f, name, err := opts.Opener.Open(path, descriptorName)
	if err != nil {
		return d, nil, "", false, nil
	}
	defer f.Close()
	b, err = io.ReadAll(io.NewSectionReader(f, 0, maxDescriptor+1))
	if err != nil {
		return d, nil, name, true, model.Wrapf(err, name, 0, "parallels: read disk descriptor")
	}
	if len(b) > maxDescriptor {
		return d, nil, name, true, model.Errorf(name, maxDescriptor, "parallels: disk descriptor over %d bytes", maxDescriptor)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return d, nil, name, true, model.Wrapf(err, name, dec.InputOffset(), "parallels: parse disk descriptor")
	}
	return d, b, name, true, nil
}

// fileOffset is where the descriptor b writes file as an image's File,
// for errors about that name (-1 when it cannot be found).
func fileOffset(b []byte, file string) int64 {
	dec := xml.NewDecoder(bytes.NewReader(b))
	inFile := false
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return -1
		}
		switch t := tok.(type) {
		case xml.StartElement:
			inFile = t.Name.Local == "File"
		case xml.EndElement:
			inFile = false
		case xml.CharData:
			if inFile && strings.TrimSpace(string(t)) == file {
				return start
			}
		}
	}
}

// image is one image a descriptor lists.
type image struct{ file, typ string }

// parentOf returns the image whose GUID is the parent of the image named
// base (its file name as the descriptor writes it, and its type:
// "Compressed", an expanding image, or "Plain", a raw file), and the
// parent's GUID; a zero image when base is the root image or the
// descriptor does not list it.
func (d descriptor) parentOf(base string) (parent image, guid string, err error) {
	byGUID := map[string]image{}
	var own string
	for _, s := range d.Storages {
		for _, im := range s.Images {
			g := strings.ToLower(strings.TrimSpace(im.GUID))
			byGUID[g] = image{strings.TrimSpace(im.File), strings.TrimSpace(im.Type)}
			if filepath.Base(strings.TrimSpace(im.File)) == base {
				own = g
			}
		}
	}
	if own == "" {
		return image{}, "", nil
	}
	if len(d.Storages) > 1 {
		return image{}, "", fmt.Errorf("%d storages: split disks are not read", len(d.Storages))
	}
	for _, sh := range d.Shots {
		if strings.ToLower(strings.TrimSpace(sh.GUID)) != own {
			continue
		}
		p := strings.ToLower(strings.TrimSpace(sh.ParentGUID))
		if p == "" || p == zeroGUID {
			return image{}, "", nil
		}
		im, ok := byGUID[p]
		if !ok || im.file == "" {
			return image{}, p, fmt.Errorf("parent snapshot %s names no image", p)
		}
		return im, p, nil
	}
	return image{}, "", nil
}

// openParent wires the parent that the descriptor beside the image names
// under disk, as a backing link and views; a descriptor that cannot be
// read, or a parent that cannot be opened, is an error of the image (its
// current view then reads zeros where the parent would have been read).
func openParent(ctx context.Context, im *model.Image, disk *blockmap.Disk, opts model.Options) {
	path := im.Path
	d, b, dname, ok, err := readDescriptor(opts, path)
	if !ok {
		return
	}
	var parent image
	var guid string
	if err == nil {
		parent, guid, err = d.parentOf(filepath.Base(path))
		if err != nil {
			err = model.Errorf(dname, -1, "parallels: %v", err)
		}
	}
	if err != nil {
		im.Errors = append(im.Errors, err)
		return
	}
	file := parent.file
	if file == "" {
		return
	}
	im.Attrs["parent_guid"] = guid
	// A Plain root image is a raw file, read as one whatever its bytes
	// look like (a guest can write any magic into it).
	format := ""
	if strings.EqualFold(parent.typ, "Plain") {
		format = "raw"
	}
	link := model.BackingLink{Name: file, Format: cmp.Or(format, "parallels")}
	if opts.NoBacking {
		im.Backing = append(im.Backing, link)
		return
	}
	f, cand, err := opts.Opener.Open(path, file)
	if err == nil {
		var pim *model.Image
		if pim, err = model.OpenLinked(ctx, opts, f, cand, format); err == nil {
			if cur, ok := pim.Current(); ok {
				link.Path, link.Format = cand, pim.Format
				disk.Parent = cur.Disk
				blockmap.Adopt(im, link, pim)
				return
			}
			pim.Close()
			err = model.Errorf(cand, -1, "parent image has no current view")
		}
		link.Path = cand
	}
	link.Err = model.Wrapf(err, dname, fileOffset(b, file), "parallels: parent %q of %s", file, filepath.Base(path))
	im.Backing = append(im.Backing, link)
	im.Errors = append(im.Errors, link.Err)
}
