package registry

import (
	"bytes"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/formats"
)

// sniffHead is how many leading bytes of a file sniffDisk looks at.
const sniffHead = formats.HeadLen

// minRawDisk is the smallest file treated as a raw disk or filesystem image:
// anything smaller cannot hold a useful partition table plus filesystem,
// and small files with a 0x55AA at 510 are common enough (boot sectors,
// firmware blobs) to be scanned as plain bytes instead.
const minRawDisk = 1 << 20

// sniffDisk returns the format of the VM disk or memory image that a file
// of a layer is (its first bytes head, its size and its path in the
// layer), as formats.Probe names it, or "" for an ordinary file. Only a
// disk or memory format recognised by a magic number at its start is
// taken: a VMDK text descriptor names other files, a fixed VHD has its
// footer at the end (it is a raw disk, found by its partition table), and
// names decide nothing (a .vmem is plain bytes here). A raw disk is one of
// at least minRawDisk bytes that starts with a partition table or a
// filesystem ("raw-gpt", "raw-mbr", "raw-ext4", ...), or a KubeVirt
// containerDisk ("raw").
func sniffDisk(head []byte, size int64, name string) string {
	if decode.IsStream(decode.Sniff(head)) {
		// A compressed file is not read in place whatever it holds:
		// formats.Probe would decode its head only to answer "tar" or
		// "compressed" with Layout confidence, which is refused below.
		// That decoding (an inflater and 64 KiB of input for each
		// compressed file of a layer) was 9 % of the CPU of a one-layer
		// image's scan (2026-12-07).
		return ""
	}
	m := formats.Probe(head, bytes.NewReader(head), size, "")
	switch {
	case m.Name != "raw":
		if m.Confidence == formats.Magic && (m.Kind == formats.FormatDisk || m.Kind == formats.FormatMemory) {
			return m.Name
		}
		return ""
	case size < minRawDisk:
		return ""
	case m.Confidence == formats.Layout:
		return "raw-" + m.Evidence
	case isContainerDiskPath(name):
		// A containerDisk may carry a raw disk with no recognisable
		// table: by convention anything under /disk/ named *.img or
		// *.raw is a disk.
		return "raw"
	}
	return ""
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
