package vma

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"time"
	"unicode/utf8"
)

// Layout constants from pve-qemu's vma.h ("File Format Definitions").
const (
	blockSize         = 4096                          // VMA_BLOCK_SIZE
	blocksPerCluster  = 16                            // VMA_CLUSTER_SIZE / VMA_BLOCK_SIZE
	clusterSize       = blockSize * blocksPerCluster  // VMA_CLUSTER_SIZE, 64 KiB
	extentHeaderSize  = 512                           // VMA_EXTENT_HEADER_SIZE
	blocksPerExtent   = 59                            // VMA_BLOCKS_PER_EXTENT
	maxConfigs        = 256                           // VMA_MAX_CONFIGS
	fixedHeaderSize   = 4096 + 256*32                 // sizeof(VmaHeader): 12288, asserted by vma-writer.c
	maxExtentDataSize = clusterSize * blocksPerExtent // data bytes after one extent header

	offVersion    = 4
	offUUID       = 8
	offCTime      = 24
	offMD5        = 32
	offBlobOffset = 48
	offBlobSize   = 52
	offHeaderSize = 56
	offConfigName = 2044 // 60 + reserved[1984]
	offConfigData = offConfigName + 4*maxConfigs
	offDevInfo    = 4096 // config_data ends at 4092; the u64 in VmaDeviceInfoHeader aligns dev_info to 8

	// maxHeaderSize bounds header_size. vma-writer.c builds the header in an
	// 8-cluster (512 KiB) buffer; anything far beyond is not a real archive.
	maxHeaderSize = 8 << 20
	// maxDeviceSize: cluster numbers are 32-bit, so no device can be larger.
	maxDeviceSize = int64(1) << 32 * clusterSize
	// maxNameLen bounds device and config names shown in view names.
	maxNameLen = 255
)

var (
	magicVMA    = []byte("VMA\x00")
	magicExtent = []byte("VMAE")
)

// Header is a parsed VMA archive header (struct VmaHeader and its blob
// buffer).
type Header struct {
	Version uint32
	UUID    [16]byte
	CTime   time.Time
	Size    int // header_size: where the first extent starts
	Configs []ConfigBlob
	Devices []Device
}

// ConfigBlob is one configuration file stored in the header (qemu-server.conf,
// qemu-server.fw, ...).
type ConfigBlob struct {
	Name   string
	Data   []byte
	Offset int64 // offset of Data within the archive (header bytes are stored as-is)
}

// Device is one stream of the archive: a drive ("drive-scsi0") or the
// saved VM state ("vmstate").
type Device struct {
	ID   uint8
	Name string
	Size int64
}

// UUIDString formats the archive UUID.
func (h *Header) UUIDString() string {
	u := h.UUID
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// HeaderSize reads header_size from the first bytes of an archive, checking
// magic and bounds, so that a caller knows how much to read for ParseHeader.
func HeaderSize(b []byte) (int, error) {
	if len(b) < fixedHeaderSize {
		return 0, fmt.Errorf("header truncated: %d of %d bytes", len(b), fixedHeaderSize)
	}
	if !bytes.Equal(b[:4], magicVMA) {
		return 0, fmt.Errorf("no VMA magic")
	}
	n := binary.BigEndian.Uint32(b[offHeaderSize:])
	if n <= fixedHeaderSize || n > maxHeaderSize {
		return 0, fmt.Errorf("header_size %d outside (%d, %d]", n, fixedHeaderSize, maxHeaderSize)
	}
	return int(n), nil
}

// headerError is a header problem at a byte offset of the archive.
type headerError struct {
	off int64
	msg string
}

func (e *headerError) Error() string { return e.msg }

func herr(off int64, format string, args ...any) error {
	return &headerError{off, fmt.Sprintf(format, args...)}
}

// ParseHeader parses and checks an archive header as vma-reader.c's
// vma_reader_read_head does: magic, md5 (computed with the md5 field
// zeroed), version 1, blob buffer within the header, config and device
// name pointers that land on blobs. b must hold at least header_size bytes.
// Returned Config.Data slices alias b.
func ParseHeader(b []byte) (*Header, error) {
	size, err := HeaderSize(b)
	if err != nil {
		return nil, herr(0, "%v", err)
	}
	if len(b) < size {
		return nil, herr(int64(len(b)), "header truncated: %d of %d bytes", len(b), size)
	}
	b = b[:size]
	be := binary.BigEndian

	sum := md5.New()
	sum.Write(b[:offMD5])
	sum.Write(make([]byte, 16))
	sum.Write(b[offMD5+16:])
	if !bytes.Equal(sum.Sum(nil), b[offMD5:offMD5+16]) {
		return nil, herr(offMD5, "header md5 mismatch")
	}
	h := &Header{Size: size, Version: be.Uint32(b[offVersion:])}
	if h.Version != 1 {
		return nil, herr(offVersion, "unsupported VMA version %d", h.Version)
	}
	copy(h.UUID[:], b[offUUID:])
	ct := int64(be.Uint64(b[offCTime:]))
	if ct < 0 || ct > 1<<40 {
		return nil, herr(offCTime, "implausible ctime %d", ct)
	}
	h.CTime = time.Unix(ct, 0).UTC()

	// Blob buffer: {u16 LE len, data} records from blob_buffer_offset+1;
	// pointers are relative to blob_buffer_offset (position 0 means "none").
	boff := be.Uint32(b[offBlobOffset:])
	bsize := be.Uint32(b[offBlobSize:])
	bstart := uint64(boff) + 1
	bend := uint64(boff) + uint64(bsize)
	if bstart <= fixedHeaderSize {
		return nil, herr(offBlobOffset, "blob buffer offset %d inside the fixed header", boff)
	}
	if bend > uint64(size) {
		return nil, herr(offBlobSize, "blob buffer [%d,+%d) past header_size %d", boff, bsize, size)
	}
	type blob struct {
		off  int64 // archive offset of the data
		data []byte
	}
	blobs := map[uint32]blob{}
	for p := bstart; p+2 <= bend; {
		n := uint64(b[p]) | uint64(b[p+1])<<8
		if p+2+n <= bend {
			blobs[uint32(p-uint64(boff))] = blob{int64(p + 2), b[p+2 : p+2+n]}
		}
		p += n + 2
	}
	str := func(ptr uint32) (string, bool) {
		bl, ok := blobs[ptr]
		if !ok || len(bl.data) == 0 || bl.data[len(bl.data)-1] != 0 {
			return "", false
		}
		return cleanName(bl.data[:len(bl.data)-1]), true
	}

	for i := 1; i < 256; i++ {
		at := offDevInfo + 32*i
		ptr := be.Uint32(b[at:])
		dsize := be.Uint64(b[at+8:])
		name, ok := str(ptr)
		if dsize == 0 || !ok {
			continue
		}
		if dsize > uint64(maxDeviceSize) {
			return nil, herr(int64(at+8), "device %d size %d beyond the 32-bit cluster range", i, dsize)
		}
		h.Devices = append(h.Devices, Device{ID: uint8(i), Name: name, Size: int64(dsize)})
	}
	if len(h.Devices) == 0 {
		return nil, herr(offDevInfo, "archive lists no devices")
	}
	for i := range maxConfigs {
		np := be.Uint32(b[offConfigName+4*i:])
		dp := be.Uint32(b[offConfigData+4*i:])
		if np == 0 || dp == 0 {
			continue
		}
		name, ok := str(np)
		data, ok2 := blobs[dp]
		if !ok || !ok2 {
			return nil, herr(int64(offConfigName+4*i), "config %d points outside the blob buffer", i)
		}
		h.Configs = append(h.Configs, ConfigBlob{Name: name, Data: data.data, Offset: data.off})
	}
	return h, nil
}

// cleanName makes a stored name safe to show: valid UTF-8, no control
// characters, bounded length.
func cleanName(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > maxNameLen {
		s = string([]rune(s)[:maxNameLen]) + "…"
	}
	return s
}

// BlockInfo is one of the 59 blockinfo slots of an extent header: which
// cluster of which device, and which of its 16 blocks follow in the extent.
type BlockInfo struct {
	Cluster uint32
	Dev     uint8
	Mask    uint16
}

// Blocks is the number of 4 KiB blocks the entry stores.
func (bi BlockInfo) Blocks() int { return bits.OnesCount16(bi.Mask) }

// ExtentHeader is a parsed 512-byte extent header.
type ExtentHeader struct {
	BlockCount int
	Entries    [blocksPerExtent]BlockInfo
}

// DataSize is the number of data bytes that follow the extent header.
func (e *ExtentHeader) DataSize() int64 { return int64(e.BlockCount) * blockSize }

// ParseExtentHeader checks an extent header as vma_reader_restore does:
// md5 over the 512 bytes with the md5 field zeroed, the archive's uuid,
// magic "VMAE", reserved1 zero, and block_count equal to the blocks the
// entries of non-zero devices claim (restore_extent's "missing blocks").
func ParseExtentHeader(b []byte, uuid [16]byte) (*ExtentHeader, error) {
	if len(b) < extentHeaderSize {
		return nil, fmt.Errorf("extent header truncated: %d of %d bytes", len(b), extentHeaderSize)
	}
	b = b[:extentHeaderSize]
	if !bytes.Equal(b[:4], magicExtent) {
		return nil, fmt.Errorf("no extent magic")
	}
	be := binary.BigEndian
	if be.Uint16(b[4:]) != 0 {
		return nil, fmt.Errorf("extent reserved field not zero")
	}
	sum := md5.New()
	sum.Write(b[:24])
	sum.Write(make([]byte, 16))
	sum.Write(b[40:])
	if !bytes.Equal(sum.Sum(nil), b[24:40]) {
		return nil, fmt.Errorf("extent header md5 mismatch")
	}
	if !bytes.Equal(b[8:24], uuid[:]) {
		return nil, fmt.Errorf("extent uuid differs from the archive's")
	}
	e := &ExtentHeader{BlockCount: int(be.Uint16(b[6:]))}
	claimed := 0
	for i := range blocksPerExtent {
		v := be.Uint64(b[40+8*i:])
		bi := BlockInfo{Cluster: uint32(v), Dev: uint8(v >> 32), Mask: uint16(v >> 48)}
		e.Entries[i] = bi
		if bi.Dev != 0 {
			claimed += bi.Blocks()
		}
	}
	if claimed != e.BlockCount {
		return nil, fmt.Errorf("extent block_count %d but entries hold %d blocks", e.BlockCount, claimed)
	}
	return e, nil
}
