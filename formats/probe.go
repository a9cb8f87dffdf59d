package formats

import (
	"encoding/binary"
	"io"
	"path/filepath"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/memory/kdump"
	"github.com/imgaudit/imgaudit/formats/memory/libvirtsave"
	"github.com/imgaudit/imgaudit/formats/memory/lime"
	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/memory/vboxsav"
	"github.com/imgaudit/imgaudit/formats/memory/vmware"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/formats/parallels"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/formats/qed"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/formats/vdi"
	"github.com/imgaudit/imgaudit/formats/vhd"
	"github.com/imgaudit/imgaudit/formats/vhdx"
	"github.com/imgaudit/imgaudit/formats/vma"
	"github.com/imgaudit/imgaudit/formats/vmdk"
	"github.com/imgaudit/imgaudit/guestfs"
)

// FormatKind says what a format holds.
type FormatKind string

const (
	FormatDisk    FormatKind = "disk"    // one guest disk (qcow2, vmdk, vpc, vhdx, vdi, parallels, qed, raw)
	FormatMemory  FormatKind = "memory"  // saved guest RAM
	FormatArchive FormatKind = "archive" // disks and a description in one file (ova, vma)
)

// Confidence says how a format was recognised, weakest first.
type Confidence int

const (
	// Fallback: nothing was recognised; the file is raw bytes.
	Fallback Confidence = iota + 1
	// ByName: the content cannot tell and the name decides (a .vmem has
	// no magic; a .vma.zst is a zstd stream with that name).
	ByName
	// Layout: no magic number at the start, but a layout that says so: a
	// partition table or a filesystem at the start of a raw disk, a fixed
	// VHD's footer at the end, a VMDK text descriptor, a tar that holds an
	// .ovf.
	Layout
	// Magic: a magic number at the start of the file.
	Magic
)

// Match is what Probe recognised.
type Match struct {
	// Name is the format as the errors of formats.Open name it: "qcow2", "vmdk", "vpc", "vhdx", "vdi", "parallels", "qed", "raw", "ova", "vma",
	// "tar", "zip", "compressed", "qemu-migration", "libvirt-save", "elf-core", "kdump", "lime",
	// "vmware-state", "vmware-vmem", "vbox-sav".
	Name       string
	Kind       FormatKind
	Confidence Confidence
	// Evidence says what makes a raw file a disk: "gpt", "mbr" (a
	// partition table with a plausible entry), a filesystem or volume
	// header guestfs.Detect recognises ("ext4", "lvm2", "luks", ...), or
	// "boot signature" (0x55AA at 510 without a plausible table, with
	// Confidence Fallback); "" when nothing does.
	Evidence string

	new model.OpenFunc
}

// format is one entry of the probe table.
type format struct {
	name  string
	kind  FormatKind
	probe func(head []byte, r io.ReaderAt, size int64, name string, sp *ova.StreamProbe) Confidence
	new   model.OpenFunc
}

// probeFormats is formatTable, built once; nothing changes it.
var probeFormats = formatTable()

// layoutIf answers Layout when ok.
func layoutIf(ok bool) Confidence {
	if ok {
		return Layout
	}
	return 0
}

// magic turns a reader's Probe into a probe that answers Magic.
func magic(probe func([]byte, io.ReaderAt, int64) bool) func([]byte, io.ReaderAt, int64, string, *ova.StreamProbe) Confidence {
	return func(head []byte, r io.ReaderAt, size int64, _ string, _ *ova.StreamProbe) Confidence {
		if probe(head, r, size) {
			return Magic
		}
		return 0
	}
}

// layout turns a reader's Probe into a probe that answers Layout: what
// the content says beyond a magic number at its start (a tar's members).
func layout(probe func([]byte, io.ReaderAt, int64) bool) func([]byte, io.ReaderAt, int64, string, *ova.StreamProbe) Confidence {
	return func(head []byte, r io.ReaderAt, size int64, _ string, _ *ova.StreamProbe) Confidence {
		if probe(head, r, size) {
			return Layout
		}
		return 0
	}
}

// formatTable lists the formats in probe order: magics at offset 0 first,
// then what needs more than a magic, then what only the name tells; raw,
// the fallback, is last. A new format is added here, and only here.
//
// Each probe is given the call's ova.StreamProbe, from which the tarball
// and compressed-disk probes answer with one decoding of the file's head,
// so that the table itself is built once (probeFormats): built for each
// call, its closures were half of what Probe cost a container layer of
// 200,000 small files.
func formatTable() []format {
	return []format{
		{"qcow2", FormatDisk, magic(qcow2.Probe), qcow2.New},
		{"vma", FormatArchive, magic(vma.Probe), vma.New},
		{"vmdk", FormatDisk, probeVMDK, vmdk.New},
		{"ova", FormatArchive, layout(ova.Probe), ova.New}, // a tar (ustar) holding an .ovf
		// A tar of VM disks without an OVF, or any gzip-compressed tar of
		// them (a GCE image's disk.raw, a Vagrant box): its members'
		// first bytes say so.
		{"tar", FormatArchive, func(head []byte, r io.ReaderAt, size int64, _ string, sp *ova.StreamProbe) Confidence {
			if decode.IsStream(decode.Sniff(head)) {
				return layoutIf(sp.Tarball(head, r, size))
			}
			return layoutIf(ova.ProbeTarball(head, r, size))
		}, ova.NewTarball},
		// A zip of VM disks or OVAs (a downloaded appliance): its members'
		// first bytes say so.
		{"zip", FormatArchive, layout(ova.ProbeZip), ova.NewZip},
		// A disk compressed whole (disk.raw.xz, disk.img.gz): its first
		// decompressed bytes say so.
		{"compressed", FormatDisk, func(head []byte, r io.ReaderAt, size int64, _ string, sp *ova.StreamProbe) Confidence {
			return layoutIf(sp.Compressed(head, r, size))
		}, ova.NewCompressed},
		{"vhdx", FormatDisk, magic(vhdx.Probe), vhdx.New},
		{"libvirt-save", FormatMemory, magic(libvirtsave.Probe), libvirtsave.New},
		{"qemu-migration", FormatMemory, magic(qemustream.Probe), qemustream.New},
		// A guest-memory dump only: a process's core (gcore, the
		// kernel's) maps virtual memory with every p_paddr 0, so read as
		// guest RAM it kept its first segment alone; it is raw bytes,
		// which the decode pass reads again as a core with the memory
		// rules.
		{"elf-core", FormatMemory, func(head []byte, r io.ReaderAt, size int64, _ string, _ *ova.StreamProbe) Confidence {
			if !elfcore.Probe(head, r, size) {
				return 0
			}
			if segs, err := elfcore.Segments("", r, size); err == nil && len(segs) > 0 && !elfcore.GuestPhysical(segs) {
				return 0
			}
			return Magic
		}, elfcore.New},
		{"kdump", FormatMemory, magic(kdump.Probe), kdump.New},
		{"lime", FormatMemory, magic(lime.Probe), lime.New},
		{"vmware-state", FormatMemory, magic(vmware.Probe), vmware.New},
		{"vbox-sav", FormatMemory, magic(vboxsav.Probe), vboxsav.New},
		{"vdi", FormatDisk, magic(vdi.Probe), vdi.New},
		{"parallels", FormatDisk, magic(parallels.Probe), parallels.New},
		{"qed", FormatDisk, magic(qed.Probe), qed.New},
		// VHD last before the name-only formats and raw: a fixed VHD is
		// only recognised by its footer, at the end.
		{"vpc", FormatDisk, probeVHD, vhd.New},
		// A compressed Proxmox backup (.vma.zst, .vma.gz, .vma.lzo) is
		// recognised by its compression magic and its name together.
		{"vma", FormatArchive, func(head []byte, _ io.ReaderAt, _ int64, name string, _ *ova.StreamProbe) Confidence {
			if vma.ProbeName(name, head) {
				return ByName
			}
			return 0
		}, vma.New},
		vmemFormat,
	}
}

// vmemFormat is VMware guest memory (.vmem): it has no magic bytes; its
// name is all there is. It also wins over a declared raw format.
var vmemFormat = format{"vmware-vmem", FormatMemory, func(_ []byte, _ io.ReaderAt, _ int64, name string, _ *ova.StreamProbe) Confidence {
	if strings.EqualFold(filepath.Ext(name), ".vmem") {
		return ByName
	}
	return 0
}, vmware.New}

func probeVMDK(head []byte, r io.ReaderAt, size int64, _ string, _ *ova.StreamProbe) Confidence {
	switch {
	case vmdk.ProbeExtent(head):
		return Magic
	case vmdk.Probe(head, r, size):
		return Layout // a text descriptor: its extents are other files
	}
	return 0
}

func probeVHD(head []byte, r io.ReaderAt, size int64, _ string, _ *ova.StreamProbe) Confidence {
	switch {
	case vhd.ProbeHead(head):
		return Magic // dynamic and differencing images
	case vhd.Probe(head, r, size):
		return Layout // a fixed image: the footer at the end
	}
	return 0
}

// Probe recognises the format of a file from its first bytes head (up to
// HeadLen of them), the file itself r (probes that need more read it; r
// may hold head alone, and then they answer no) and its size and name.
// Every file matches: raw, with Confidence Fallback, when nothing else
// does.
func Probe(head []byte, r io.ReaderAt, size int64, name string) Match {
	var sp ova.StreamProbe
	for _, f := range probeFormats {
		if c := f.probe(head, r, size, name, &sp); c > 0 {
			return Match{Name: f.name, Kind: f.kind, Confidence: c, new: f.new}
		}
	}
	return probeRaw(head)
}

// HeadLen is how much of a file Probe wants in head.
const HeadLen = 4096

// probeRaw classifies a file that no format recognises: a raw disk when a
// partition table or a filesystem starts it.
func probeRaw(head []byte) Match {
	m := Match{Name: "raw", Kind: FormatDisk, Confidence: Fallback, new: raw.New}
	switch {
	case len(head) >= 520 && string(head[512:520]) == "EFI PART":
		m.Evidence = "gpt"
	case hasMBR(head):
		m.Evidence = "mbr"
	default:
		m.Evidence = guestfs.Detect(head) // a filesystem, LVM2 or LUKS without a table
	}
	if m.Evidence != "" {
		m.Confidence = Layout
	} else if len(head) >= 512 && head[510] == 0x55 && head[511] == 0xAA {
		m.Evidence = "boot signature"
	}
	return m
}

// hasMBR reports a boot signature with at least one plausible partition
// entry (status 0x00 or 0x80, non-zero type, non-zero length).
func hasMBR(head []byte) bool {
	if len(head) < 512 || head[510] != 0x55 || head[511] != 0xAA {
		return false
	}
	for i := range 4 {
		e := head[446+16*i : 446+16*(i+1)]
		if (e[0] == 0 || e[0] == 0x80) && e[4] != 0 && binary.LittleEndian.Uint32(e[12:]) != 0 {
			return true
		}
	}
	return false
}

// ProbeReader probes the file r holds, size bytes, named name.
func ProbeReader(r io.ReaderAt, size int64, name string) (Match, error) {
	head := make([]byte, min(size, HeadLen))
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return Match{}, model.Wrapf(err, name, 0, "read header")
	}
	return Probe(head[:n], r, size, name), nil
}

// ProbeFile probes the regular file at path.
func ProbeFile(path string) (Match, error) {
	f, err := hostfile.OpenRegular(path)
	if err != nil {
		return Match{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Match{}, err
	}
	return ProbeReader(f, st.Size(), path)
}
