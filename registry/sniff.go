package registry

import (
	"bytes"
	"encoding/binary"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/memory/kdump"
	"github.com/imgaudit/imgaudit/formats/memory/libvirtsave"
	"github.com/imgaudit/imgaudit/formats/memory/lime"
	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/memory/vboxsav"
	"github.com/imgaudit/imgaudit/formats/memory/vmware"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/formats/vdi"
	"github.com/imgaudit/imgaudit/formats/vhd"
	"github.com/imgaudit/imgaudit/formats/vhdx"
	"github.com/imgaudit/imgaudit/guestfs"
)

// sniffHead is how many leading bytes of a file sniffDisk looks at.
const sniffHead = 4096

// minRawDisk is the smallest file treated as a raw disk or filesystem image:
// anything smaller cannot hold a useful partition table plus filesystem,
// and small files with a 0x55AA at 510 are common enough (boot sectors,
// firmware blobs) to be scanned as plain bytes instead.
const minRawDisk = 1 << 20

// sniffDisk returns the name of the VM disk or memory format that a file
// (its first bytes head and its size) is in, or "" for an ordinary file.
// Only magics that the disk readers can open are accepted; a VMDK text
// descriptor is not (its extents are other files), nor a fixed VHD whose
// footer is at the end (it is a raw disk, found by its partition table).
func sniffDisk(head []byte, size int64, name string) string {
	r := bytes.NewReader(head)
	switch {
	case qcow2.Probe(head, r, size):
		return "qcow2"
	case vhdx.Probe(head, r, size):
		return "vhdx"
	case bytes.HasPrefix(head, []byte("conectix")) && vhd.Probe(head, nil, 0):
		return "vhd"
	case vdi.Probe(head, r, size):
		return "vdi"
	case bytes.HasPrefix(head, []byte("KDMV")) || bytes.HasPrefix(head, []byte("COWD")):
		return "vmdk"
	case qemustream.Probe(head, r, size):
		return "qemu-vmstate"
	case libvirtsave.Probe(head, r, size):
		return "libvirt-save"
	case kdump.Probe(head, r, size):
		return "kdump"
	case lime.Probe(head, r, size):
		return "lime"
	case vmware.Probe(head, r, size):
		return "vmware-vmss"
	case vboxsav.Probe(head, r, size):
		return "vbox-sav"
	case elfcore.Probe(head, r, size):
		return "elf-core"
	}
	if size < minRawDisk {
		return ""
	}
	if len(head) >= 520 && string(head[512:520]) == "EFI PART" {
		return "raw-gpt"
	}
	if hasMBR(head) {
		return "raw-mbr"
	}
	if kind := guestfs.Detect(head); kind != "" {
		return "raw-" + kind // a filesystem (or LVM, LUKS) without a partition table
	}
	// A containerDisk may carry a raw disk with no recognisable table: by
	// convention anything under /disk/ named *.img or *.raw is a disk.
	if isContainerDiskPath(name) {
		return "raw"
	}
	return ""
}

// hasMBR reports a boot signature with at least one plausible partition
// entry (status 0x00 or 0x80, non-zero type, non-zero length).
func hasMBR(head []byte) bool {
	if len(head) < 512 || head[510] != 0x55 || head[511] != 0xAA {
		return false
	}
	for i := 0; i < 4; i++ {
		e := head[446+16*i : 446+16*(i+1)]
		if (e[0] == 0 || e[0] == 0x80) && e[4] != 0 && binary.LittleEndian.Uint32(e[12:]) != 0 {
			return true
		}
	}
	return false
}

// isContainerDiskPath matches KubeVirt's containerDisk layout: /disk/*.img
// and /disk/*.raw (qcow2 files are found by magic wherever they are).
func isContainerDiskPath(p string) bool {
	dir, base := path.Split(p)
	if path.Clean(dir) != "/disk" {
		return false
	}
	ext := strings.ToLower(path.Ext(base))
	return ext == ".img" || ext == ".raw"
}
