package stores

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/vmdk"
)

// Bounds for the cheap header reads.
const (
	maxQcow2Backing  = 1023    // QEMU's cap on backing_file_size
	maxDescriptor    = 1 << 20 // vmdk_read_desc reads at most 1 MiB
	textDescriptorAt = 4 << 10 // how much of a file to sniff for a text descriptor
)

// links are what one image file points at: its backing or parent file
// (nearest, as written) and, for a VMDK descriptor, the extent files that
// make up the disk itself.
type links struct {
	backing string   // as written in the header; "" when none
	extents []string // as written in the descriptor
	isImage bool     // a disk image format was recognised
}

// readLinks reads only the header of a qcow2 or VMDK file (never the data).
func readLinks(path string) links {
	f, err := hostfile.OpenRegular(path)
	if err != nil {
		return links{}
	}
	defer f.Close()
	head := make([]byte, textDescriptorAt)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")) && len(head) >= 20:
		l := links{isImage: true}
		off := binary.BigEndian.Uint64(head[8:])
		size := binary.BigEndian.Uint32(head[16:])
		if off == 0 || size == 0 || size > maxQcow2Backing || off > 1<<30 {
			return l
		}
		name := make([]byte, size)
		if _, err := f.ReadAt(name, int64(off)); err == nil {
			l.backing = string(name)
		}
		return l
	case bytes.HasPrefix(head, []byte("KDMV")):
		h, err := vmdk.ParseSparseHeader(head)
		if err != nil {
			return links{isImage: true}
		}
		l := links{isImage: true}
		if h.DescriptorOffset == 0 || h.DescriptorSize == 0 || h.DescriptorSize*512 > maxDescriptor || h.DescriptorOffset > 1<<40 {
			return l
		}
		desc := make([]byte, h.DescriptorSize*512)
		m, _ := f.ReadAt(desc, int64(h.DescriptorOffset)*512)
		if d, err := vmdk.ParseDescriptor(desc[:m]); err == nil {
			l.backing = d.ParentFileNameHint
		}
		return l
	case isTextDescriptor(head):
		st, err := f.Stat()
		if err != nil || st.Size() > maxDescriptor {
			return links{}
		}
		b := make([]byte, st.Size())
		m, _ := f.ReadAt(b, 0)
		d, err := vmdk.ParseDescriptor(b[:m])
		if err != nil {
			return links{}
		}
		l := links{isImage: true, backing: d.ParentFileNameHint}
		for _, e := range d.Extents {
			if e.File != "" {
				l.extents = append(l.extents, e.File)
			}
		}
		return l
	}
	return links{}
}

func isTextDescriptor(head []byte) bool {
	s := string(head)
	return strings.HasPrefix(s, "# Disk DescriptorFile") || (strings.Contains(s, "createType") && strings.Contains(s, "version="))
}

// resolveLinked resolves a name found in an image header the way QEMU does
// (relative to the directory of the image, or absolute) under the policy
// of the scan: only a regular file inside the store's tree, after
// symlinks, is linked. The result is only trusted when that file exists,
// so that a base file the scanner could not reach through the chain is
// never dropped.
func resolveLinked(names model.Opener, image, name string) (string, bool) {
	// QEMU protocol prefixes ("file:") are accepted as plain paths.
	p, err := names.Resolve(image, strings.TrimPrefix(name, "file:"))
	if err != nil {
		return "", false
	}
	return p, true
}
