// Package elfcore reads ELF core files of guest memory written by QEMU's
// dump-guest-memory (and virsh dump --memory-only): each PT_LOAD segment's
// p_paddr is a guest-physical address and its bytes lie verbatim in the file.
package elfcore

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory/memdisk"
	"github.com/imgaudit/imgaudit/formats/model"
)

// maxSegments bounds the program header table (PN_XNUM lets it reach 2^32).
const maxSegments = 1 << 20

// Segment is one PT_LOAD.
type Segment struct {
	Paddr, Offset, Filesz, Memsz uint64
}

// Probe reports whether head is an ELF core file.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	if len(head) < 20 || string(head[:4]) != elf.ELFMAG {
		return false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(head[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	return elf.Type(bo.Uint16(head[16:])) == elf.ET_CORE
}

// GuestPhysical reports whether segs are a guest-memory dump's: their
// p_paddr are guest-physical addresses. A process's core (the kernel's,
// gdb's gcore, systemd-coredump's) maps virtual memory, and writes 0 as
// every segment's p_paddr; such a core is no guest's RAM, and NewDisk
// would keep only its first segment.
func GuestPhysical(segs []Segment) bool {
	n, zero := 0, 0
	for _, s := range segs {
		if s.Filesz == 0 {
			continue
		}
		n++
		if s.Paddr == 0 {
			zero++
		}
	}
	return n > 0 && (n == 1 || zero < n)
}

// ProbeGuest reports whether head, the first bytes of a file, is an ELF
// core of guest memory: Probe, and, where the program headers lie within
// head, GuestPhysical (a process's core is not). Where they do not, it
// cannot tell, and says yes.
func ProbeGuest(head []byte) bool {
	if !Probe(head, nil, 0) {
		return false
	}
	segs, err := Segments("", bytes.NewReader(head), int64(len(head)))
	return err != nil || GuestPhysical(segs)
}

// Segments reads the PT_LOAD program headers, handling e_phnum == PN_XNUM
// (0xffff: the real count is in section header 0's sh_info), which
// debug/elf.NewFile does not.
func Segments(name string, r io.ReaderAt, size int64) ([]Segment, error) {
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil {
		return nil, model.Wrapf(err, name, 0, "read ELF ident")
	}
	if string(ident[:4]) != elf.ELFMAG {
		return nil, model.Errorf(name, 0, "not an ELF file")
	}
	var bo binary.ByteOrder
	switch elf.Data(ident[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil, model.Errorf(name, elf.EI_DATA, "bad ELF data encoding %d", ident[elf.EI_DATA])
	}
	sr := io.NewSectionReader(r, 0, size)
	var phoff, shoff uint64
	var phnum, phentsize, shentsize int
	is64 := false
	switch elf.Class(ident[elf.EI_CLASS]) {
	case elf.ELFCLASS64:
		is64 = true
		var h elf.Header64
		if err := binary.Read(sr, bo, &h); err != nil {
			return nil, model.Wrapf(err, name, 0, "read ELF header")
		}
		if elf.Type(h.Type) != elf.ET_CORE {
			return nil, model.Errorf(name, 16, "ELF type %v is not a core file", elf.Type(h.Type))
		}
		phoff, shoff, phnum, phentsize, shentsize = h.Phoff, h.Shoff, int(h.Phnum), int(h.Phentsize), int(h.Shentsize)
	case elf.ELFCLASS32:
		var h elf.Header32
		if err := binary.Read(sr, bo, &h); err != nil {
			return nil, model.Wrapf(err, name, 0, "read ELF header")
		}
		if elf.Type(h.Type) != elf.ET_CORE {
			return nil, model.Errorf(name, 16, "ELF type %v is not a core file", elf.Type(h.Type))
		}
		phoff, shoff, phnum, phentsize, shentsize = uint64(h.Phoff), uint64(h.Shoff), int(h.Phnum), int(h.Phentsize), int(h.Shentsize)
	default:
		return nil, model.Errorf(name, elf.EI_CLASS, "bad ELF class %d", ident[elf.EI_CLASS])
	}
	wantPh, wantSh := 32, 40
	if is64 {
		wantPh, wantSh = 56, 64
	}
	if phnum == 0xffff { // PN_XNUM
		if shoff == 0 || shentsize < wantSh || shoff > uint64(size) {
			return nil, model.Errorf(name, 0, "e_phnum is PN_XNUM but there is no section header 0")
		}
		var info uint32
		off := int64(shoff) + 44 // sh_info in Shdr64
		if !is64 {
			off = int64(shoff) + 28
		}
		var b [4]byte
		if _, err := r.ReadAt(b[:], off); err != nil {
			return nil, model.Wrapf(err, name, off, "read sh_info of section 0")
		}
		info = bo.Uint32(b[:])
		phnum = int(info)
	}
	if phnum > maxSegments {
		return nil, model.Errorf(name, int64(phoff), "%d program headers (more than %d)", phnum, maxSegments)
	}
	if phnum > 0 && phentsize < wantPh {
		return nil, model.Errorf(name, 0, "program header entry of %d bytes", phentsize)
	}
	if phoff > uint64(size) || uint64(phnum)*uint64(phentsize) > uint64(size)-phoff {
		return nil, model.Errorf(name, int64(phoff), "program headers run past the end of the file")
	}
	tab := make([]byte, phnum*phentsize)
	if _, err := r.ReadAt(tab, int64(phoff)); err != nil {
		return nil, model.Wrapf(err, name, int64(phoff), "read program headers")
	}
	var segs []Segment
	for i := range phnum {
		br := bytes.NewReader(tab[i*phentsize:])
		var s Segment
		if is64 {
			var p elf.Prog64
			binary.Read(br, bo, &p)
			if elf.ProgType(p.Type) != elf.PT_LOAD {
				continue
			}
			s = Segment{p.Paddr, p.Off, p.Filesz, p.Memsz}
		} else {
			var p elf.Prog32
			binary.Read(br, bo, &p)
			if elf.ProgType(p.Type) != elf.PT_LOAD {
				continue
			}
			s = Segment{uint64(p.Paddr), uint64(p.Off), uint64(p.Filesz), uint64(p.Memsz)}
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// NewDisk builds the guest-physical Disk of an ELF core. Segments that run
// past the end of the file are cut (and noted; cut names the first, for
// View.Incomplete: a truncated dump was not read in full); overlapping
// ones keep the first bytes seen.
func NewDisk(name string, r io.ReaderAt, size int64) (d *memdisk.Disk, notes []string, cut error, err error) {
	segs, err := Segments(name, r, size)
	if err != nil {
		return nil, nil, nil, err
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].Paddr < segs[j].Paddr })
	var pieces []memdisk.Piece
	var end int64
	const maxAddr = int64(1) << 52
	for _, s := range segs {
		if s.Filesz == 0 {
			continue
		}
		if s.Paddr >= uint64(maxAddr) || s.Filesz >= uint64(maxAddr) || s.Paddr+s.Filesz > uint64(maxAddr) {
			return nil, nil, nil, model.Errorf(name, int64(s.Offset), "segment at physical 0x%x beyond 2^52", s.Paddr)
		}
		pa, off, n := int64(s.Paddr), int64(s.Offset), int64(s.Filesz)
		if s.Offset >= uint64(size) {
			notes = append(notes, fmt.Sprintf("segment at physical 0x%x lies past the end of the file (truncated dump)", pa))
			if cut == nil {
				cut = model.Errorf(name, size, "truncated dump: the segment at physical 0x%x (%d bytes at file offset 0x%x) lies past the end of the file", pa, n, off)
			}
			continue
		}
		if off+n > size {
			notes = append(notes, fmt.Sprintf("segment at physical 0x%x cut at the end of the file (truncated dump)", pa))
			if cut == nil {
				cut = model.Errorf(name, size, "truncated dump: the segment at physical 0x%x (%d bytes at file offset 0x%x) is cut at the end of the file, %d bytes missing", pa, n, off, off+n-size)
			}
			n = size - off
		}
		if pa < end { // overlap: skip what is already covered
			skip := min(end-pa, n)
			pa, off, n = pa+skip, off+skip, n-skip
			notes = append(notes, fmt.Sprintf("overlapping segments at physical 0x%x", pa))
		}
		if n <= 0 {
			continue
		}
		pieces = memdisk.SplitRun(pieces, pa, off, n)
		end = pa + n
	}
	d, err = memdisk.New(name, r, end, pieces, nil, nil)
	return d, notes, cut, err
}

// Open opens an ELF core as an Image with one memory view.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "elfcore", path, opts, New)
}

// New reads the ELF core that r holds, size bytes, named name.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, _ model.Options) (*model.Image, error) {
	path := name
	d, notes, cut, err := NewDisk(path, r, size)
	if err != nil {
		return nil, err
	}
	im := &model.Image{Path: path, Format: "elf-core", VirtualSize: d.Size()}
	im.Views = []model.View{{ID: model.ViewID(path, model.KindMemory, ""), Kind: model.KindMemory, Name: "memory", Disk: d,
		Notes: append([]string{"offsets are guest-physical addresses (PT_LOAD p_paddr)"}, notes...), Incomplete: cut}}
	return im, nil
}
