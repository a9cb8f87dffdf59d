package vmdk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic numbers as they appear at offset 0 of an extent file.
var (
	magicKDMV = []byte("KDMV") // hosted sparse extent (VMDK4)
	magicCOWD = []byte("COWD") // ESX server sparse extent / vmfsSparse (VMDK3)
)

const (
	seSparseConstMagic    = 0x00000000cafebabe
	seSparseVolatileMagic = 0x00000000cafecafe
	gdAtEnd               = 0xffffffffffffffff
	sectorSize            = 512
)

// Hosted sparse extent header flags (Virtual Disk Format 5.0, "Hosted Sparse
// Extent Header").
const (
	flagNLDetect   = 1 << 0
	flagRGD        = 1 << 1
	flagZeroGrain  = 1 << 2
	flagCompressed = 1 << 16
	flagMarkers    = 1 << 17
)

// SparseHeader is the 512-byte header of a hosted sparse extent ("KDMV").
// Sizes and offsets are in sectors.
type SparseHeader struct {
	Version           uint32
	Flags             uint32
	Capacity          uint64
	GrainSize         uint64
	DescriptorOffset  uint64
	DescriptorSize    uint64
	NumGTEsPerGT      uint32
	RGDOffset         uint64
	GDOffset          uint64
	Overhead          uint64
	UncleanShutdown   bool
	CompressAlgorithm uint16
}

// ParseSparseHeader decodes a hosted sparse extent header (at least 79 bytes,
// little-endian, starting with "KDMV").
func ParseSparseHeader(b []byte) (SparseHeader, error) {
	var h SparseHeader
	if len(b) < 79 {
		return h, errors.New("sparse header truncated")
	}
	if !bytes.Equal(b[:4], magicKDMV) {
		return h, errors.New("no KDMV magic")
	}
	le := binary.LittleEndian
	h.Version = le.Uint32(b[4:])
	h.Flags = le.Uint32(b[8:])
	h.Capacity = le.Uint64(b[12:])
	h.GrainSize = le.Uint64(b[20:])
	h.DescriptorOffset = le.Uint64(b[28:])
	h.DescriptorSize = le.Uint64(b[36:])
	h.NumGTEsPerGT = le.Uint32(b[44:])
	h.RGDOffset = le.Uint64(b[48:])
	h.GDOffset = le.Uint64(b[56:])
	h.Overhead = le.Uint64(b[64:])
	h.UncleanShutdown = b[72] != 0
	h.CompressAlgorithm = le.Uint16(b[77:])
	return h, nil
}

// COWDHeader is the header of an ESX Server sparse extent (Virtual Disk
// Format 1.1, "ESX Server Sparse Extents"); sizes in sectors, 2048 bytes.
type COWDHeader struct {
	Version      uint32
	Flags        uint32
	NumSectors   uint32
	GrainSize    uint32
	GDOffset     uint32
	NumGDEntries uint32
	FreeSector   uint32
}

const cowdHeaderSize = 2048
const cowdGTEntries = 4096

// ParseCOWDHeader decodes the fixed part of a COWD header.
func ParseCOWDHeader(b []byte) (COWDHeader, error) {
	var h COWDHeader
	if len(b) < 32 {
		return h, errors.New("COWD header truncated")
	}
	if !bytes.Equal(b[:4], magicCOWD) {
		return h, errors.New("no COWD magic")
	}
	le := binary.LittleEndian
	h.Version = le.Uint32(b[4:])
	h.Flags = le.Uint32(b[8:])
	h.NumSectors = le.Uint32(b[12:])
	h.GrainSize = le.Uint32(b[16:])
	h.GDOffset = le.Uint32(b[20:])
	h.NumGDEntries = le.Uint32(b[24:])
	h.FreeSector = le.Uint32(b[28:])
	return h, nil
}

// SESparseHeader is the constant header of an ESXi seSparse extent, as QEMU's
// block/vmdk.c reads it (VMware has not published the format). All sizes and
// offsets are in sectors.
type SESparseHeader struct {
	Version                                  uint64
	Capacity, GrainSize, GrainTableSize      uint64
	Flags                                    uint64
	VolatileHeaderOffset, VolatileHeaderSize uint64
	JournalHeaderOffset, JournalHeaderSize   uint64
	JournalOffset, JournalSize               uint64
	GrainDirOffset, GrainDirSize             uint64
	GrainTablesOffset, GrainTablesSize       uint64
	FreeBitmapOffset, FreeBitmapSize         uint64
	BackmapOffset, BackmapSize               uint64
	GrainsOffset, GrainsSize                 uint64
}

// ParseSESparseHeader decodes and checks a 512-byte seSparse constant header
// with QEMU's strict checks (check_se_sparse_const_header).
func ParseSESparseHeader(b []byte) (SESparseHeader, error) {
	var h SESparseHeader
	if len(b) < 512 {
		return h, errors.New("seSparse header truncated")
	}
	le := binary.LittleEndian
	u := func(i int) uint64 { return le.Uint64(b[i*8:]) }
	if u(0) != seSparseConstMagic {
		return h, errors.New("no seSparse magic")
	}
	h.Version, h.Capacity, h.GrainSize, h.GrainTableSize, h.Flags = u(1), u(2), u(3), u(4), u(5)
	if u(6)|u(7)|u(8)|u(9) != 0 {
		return h, errors.New("seSparse reserved fields are not zero")
	}
	h.VolatileHeaderOffset, h.VolatileHeaderSize = u(10), u(11)
	h.JournalHeaderOffset, h.JournalHeaderSize = u(12), u(13)
	h.JournalOffset, h.JournalSize = u(14), u(15)
	h.GrainDirOffset, h.GrainDirSize = u(16), u(17)
	h.GrainTablesOffset, h.GrainTablesSize = u(18), u(19)
	h.FreeBitmapOffset, h.FreeBitmapSize = u(20), u(21)
	h.BackmapOffset, h.BackmapSize = u(22), u(23)
	h.GrainsOffset, h.GrainsSize = u(24), u(25)
	if h.Version != 0x0000000200000001 {
		return h, fmt.Errorf("unsupported seSparse version %#x: %w", h.Version, errUnsupported)
	}
	if h.GrainSize != 8 {
		return h, fmt.Errorf("unsupported seSparse grain size %d: %w", h.GrainSize, errUnsupported)
	}
	if h.GrainTableSize != 64 {
		return h, fmt.Errorf("unsupported seSparse grain table size %d: %w", h.GrainTableSize, errUnsupported)
	}
	if h.Flags != 0 {
		return h, fmt.Errorf("unsupported seSparse flags %#x: %w", h.Flags, errUnsupported)
	}
	for _, c := range b[208:512] {
		if c != 0 {
			return h, fmt.Errorf("seSparse header padding is not zero: %w", errUnsupported)
		}
	}
	return h, nil
}

// checkSESparseVolatile checks the volatile header (magic 0xcafecafe) and
// refuses a journal that needs replay, as QEMU does.
func checkSESparseVolatile(b []byte) error {
	if len(b) < 512 {
		return errors.New("seSparse volatile header truncated")
	}
	le := binary.LittleEndian
	if le.Uint64(b) != seSparseVolatileMagic {
		return errors.New("bad seSparse volatile header magic")
	}
	if le.Uint64(b[24:]) != 0 {
		return fmt.Errorf("seSparse journal needs replay (image not cleanly closed): %w", errUnsupported)
	}
	return nil
}
