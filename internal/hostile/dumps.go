package hostile

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
)

var le = binary.LittleEndian

// ELFAliasedSegments writes an ELF core (the dump-guest-memory format)
// with 65,534 PT_LOAD program headers (e_phnum = PN_XNUM, the count in
// section header 0) that all read the whole file from offset 0: 3.7 MB of
// file claiming 240 GB of guest-physical memory, each segment placed after
// the previous one. The file's tail holds HostileSecret, so every segment
// has a hit.
func ELFAliasedSegments(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "aliased-segments.elf")
	return path, os.WriteFile(path, ELFAliased(65534, 16<<10), 0o644)
}

// ELFAliased returns an ELF core of nseg PT_LOAD headers that all read the
// whole file from offset 0, followed by tail bytes (at least 8 KiB) that
// hold HostileSecret: the bytes of ELFAliasedSegments, at any size (small
// ones are fuzz seeds).
func ELFAliased(nseg, tailSize int) []byte {
	const (
		ehdr    = 64
		phentsz = 56
		shentsz = 64
		phoff   = ehdr
	)
	shoff := phoff + nseg*phentsz
	size := shoff + shentsz + tailSize
	b := make([]byte, size)
	putELFCoreHeader(b, 0xffff, uint64(shoff), 1) // PN_XNUM: the real count is in section 0
	for i := range nseg {
		p := b[phoff+i*phentsz:]
		le.PutUint32(p[0:], uint32(elf.PT_LOAD))
		le.PutUint64(p[8:], 0)                       // p_offset
		le.PutUint64(p[24:], uint64(i)*uint64(size)) // p_paddr
		le.PutUint64(p[32:], uint64(size))           // p_filesz
		le.PutUint64(p[40:], uint64(size))           // p_memsz
	}
	le.PutUint32(b[shoff+44:], uint32(nseg)) // sh_info of section 0: the real e_phnum
	tail := b[shoff+shentsz:]
	copy(tail, randomBytes(31, tailSize))
	copy(tail[4096:], HostileSecret().Credentials())
	return b
}

// KdumpAliasedPages writes a kdump file in the normal ("KDUMP   ") form
// with a block size of 1 MiB and 100,000 page descriptors that all point at
// one uncompressed 1 MiB block holding HostileSecret: 100 GB claimed by a
// 6 MiB file.
func KdumpAliasedPages(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "aliased-pages.kdump")
	return path, os.WriteFile(path, KdumpAliased(1<<20, 100000), 0o644)
}

// KdumpAliased returns a normal-form kdump file with block size bs (at
// least 16 KiB, a power of two) and pages descriptors that all point at one
// stored block holding HostileSecret: the bytes of KdumpAliasedPages at
// any size.
func KdumpAliased(bs, pages int) []byte {
	descOff := 2 * bs // header block, one bitmap block (both bitmaps)
	dataOff := descOff + (24*pages+bs-1)/bs*bs
	b := make([]byte, dataOff+bs)
	copy(b, "KDUMP   ")
	le.PutUint32(b[8:], 6)               // header_version
	le.PutUint32(b[428:], uint32(bs))    // block_size
	le.PutUint32(b[432:], 0)             // sub_hdr_size
	le.PutUint32(b[436:], 1)             // bitmap_blocks
	le.PutUint32(b[440:], uint32(pages)) // max_mapnr
	// Both bitmaps (each half a block) mark every pfn as dumped.
	for i := range pages / 8 {
		b[bs+i] = 0xff
		b[bs+bs/2+i] = 0xff
	}
	for i := range pages {
		d := b[descOff+24*i:]
		le.PutUint64(d[0:], uint64(dataOff)) // offset
		le.PutUint32(d[8:], uint32(bs))      // size: stored as is
		le.PutUint32(d[12:], 0)              // flags: not compressed
	}
	data := b[dataOff:]
	copy(data, randomBytes(41, bs))
	copy(data[8192:], HostileSecret().Credentials())
	return b
}

// putELFCoreHeader writes the header of a 64-bit little-endian x86-64
// ELF core whose program headers follow it (e_phoff 64, 56 bytes each),
// with phnum of them and shnum 64-byte section headers at shoff.
func putELFCoreHeader(b []byte, phnum uint16, shoff uint64, shnum uint16) {
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	b[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	b[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(elf.ET_CORE))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[32:], 64) // e_phoff: right after this header
	le.PutUint64(b[40:], shoff)
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], phnum)
	le.PutUint16(b[58:], 64) // e_shentsize
	le.PutUint16(b[60:], shnum)
}

// ELFTruncatedDump writes an ELF core cut short, as a dump to a full disk
// leaves it: one PT_LOAD segment of 64 MiB of which the file holds the
// first MiB (with HostileSecret in it).
func ELFTruncatedDump(_ context.Context, dir string) (string, error) {
	const (
		ehdr    = 64
		phentsz = 56
		dataOff = 4096
		claimed = 64 << 20
		held    = 1 << 20
	)
	b := make([]byte, dataOff+held)
	putELFCoreHeader(b, 1, 0, 0)
	p := b[ehdr:]
	le.PutUint32(p[0:], uint32(elf.PT_LOAD))
	le.PutUint64(p[8:], dataOff)  // p_offset
	le.PutUint64(p[24:], 1<<20)   // p_paddr
	le.PutUint64(p[32:], claimed) // p_filesz
	le.PutUint64(p[40:], claimed) // p_memsz
	copy(b[dataOff:], randomBytes(41, held))
	copy(b[dataOff+8192:], HostileSecret().Credentials())
	path := filepath.Join(dir, "truncated.elf")
	return path, os.WriteFile(path, b, 0o644)
}

// LiMETruncatedCapture writes a LiME capture cut short: one range of
// 64 MiB of which the file holds the first MiB (with HostileSecret in it).
func LiMETruncatedCapture(_ context.Context, dir string) (string, error) {
	const (
		header  = 32
		claimed = 64 << 20
		held    = 1 << 20
	)
	b := make([]byte, header+held)
	le.PutUint32(b[0:], 0x4c694d45) // "EMiL"
	le.PutUint32(b[4:], 1)
	le.PutUint64(b[8:], 1<<20)            // first physical address
	le.PutUint64(b[16:], 1<<20+claimed-1) // last
	copy(b[header:], randomBytes(43, held))
	copy(b[header+8192:], HostileSecret().Credentials())
	path := filepath.Join(dir, "truncated.lime")
	return path, os.WriteFile(path, b, 0o644)
}
