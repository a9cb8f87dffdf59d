// Package vhdx reads Microsoft VHDX images (fixed, dynamic and
// differencing), following [MS-VHDX] v20160714 and QEMU's block/vhdx.c,
// whose reads it reproduces byte for byte. Differencing images read their
// parent through the parent locator metadata and sector bitmaps (QEMU does
// not support them). An image whose log holds entries to replay is refused:
// its metadata and data may not be what the guest last wrote.
package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

const (
	mib = 1 << 20

	header1Off      = 64 << 10
	header2Off      = 128 << 10
	headerSize      = 4 << 10
	regionTable1Off = 192 << 10
	regionTable2Off = 256 << 10
	regionTableSize = 64 << 10
	metaTableSize   = 64 << 10
	maxTableEntries = 2047

	minBlockSize = 1 * mib
	maxBlockSize = 256 * mib
	// maxVirtualSize is the spec's 64 TiB limit (QEMU's VHDX_MAX_IMAGE_SIZE).
	maxVirtualSize = 64 << 40
	// sectorsPerChunk is 2^23: one 1 MiB sector bitmap block has a bit per
	// logical sector of chunk_ratio payload blocks (spec 2.5.1).
	sectorsPerChunk = 1 << 23
	maxBATBytes     = 256 * mib
	maxLogBytes     = 1 << 30
	maxParentItem   = 64 << 10

	// BAT entry states (spec 2.5.1.1 and 2.5.1.2).
	payloadNotPresent = 0
	payloadUndefined  = 1
	payloadZero       = 2
	payloadUnmapped   = 3
	payloadFull       = 6
	payloadPartial    = 7
	sbPresent         = 6
	batOffsetMask     = 0xFFFFFFFFFFF00000
)

// GUIDs, in the textual form of the spec; guid() turns them into their
// on-disk (mixed-endian) bytes.
var (
	regionBAT      = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	regionMetadata = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")

	metaFileParams   = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	metaVirtualSize  = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	metaPage83       = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
	metaLogicalSS    = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	metaPhysicalSS   = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
	metaParentLoc    = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
	parentLocatorVHD = guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")
)

type GUID [16]byte

// guid parses "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" (braces allowed) into
// its on-disk form: the first three fields little-endian, the rest as is.
func parseGUID(s string) (GUID, bool) {
	s = strings.Trim(strings.TrimSpace(s), "{}")
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return GUID{}, false
	}
	var b [16]byte
	for i := range 16 {
		v, err := strconv.ParseUint(h[2*i:2*i+2], 16, 8)
		if err != nil {
			return GUID{}, false
		}
		b[i] = byte(v)
	}
	var g GUID
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	return g, true
}

func guid(s string) GUID {
	g, ok := parseGUID(s)
	if !ok {
		panic("bad GUID constant " + s)
	}
	return g
}

func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcOK checks a CRC-32C stored at b[4:8], computed with that field zeroed.
func crcOK(b []byte) (stored, computed uint32) {
	stored = binary.LittleEndian.Uint32(b[4:])
	c := crc32.Update(0, castagnoli, b[:4])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	c = crc32.Update(c, castagnoli, b[8:])
	return stored, c
}

// Probe recognises the file type identifier "vhdxfile" at offset 0.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return bytes.HasPrefix(head, []byte("vhdxfile"))
}

// header is the active VHDX header (spec 2.2.2).
type header struct {
	at            int64
	seq           uint64
	dataWriteGUID GUID
	logGUID       GUID
	logLength     uint32
	logOffset     uint64
}

type region struct {
	id       GUID
	off      int64
	length   int64
	required bool
	at       int64
}

// Open opens a VHDX read-only.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "vhdx", path, opts, New)
}

type image struct {
	f          io.ReaderAt
	path       string
	size       int64
	hdr        header
	regions    []region
	bat        region
	meta       region
	blockSize  int64
	lss        int64 // logical sector size
	virtSize   int64
	hasParent  bool
	chunkRatio int64
	batRaw     []byte
	parentKV   map[string]string
	parentAt   int64
}

// New reads the VHDX that f holds, size bytes; name names it in views,
// extents and errors, and a differencing image's parent is looked for
// through opts.Opener (none when it is nil).
func New(ctx context.Context, f io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	opts, err := hostfile.Enter(f, name, opts)
	if err != nil {
		return nil, err
	}
	path := name
	x := &image{f: f, path: path, size: size}
	if err := x.parse(); err != nil {
		return nil, err
	}
	im := &model.Image{Path: path, Format: "vhdx", VirtualSize: x.virtSize, Attrs: map[string]string{
		"block_size":          strconv.FormatInt(x.blockSize, 10),
		"logical_sector_size": strconv.FormatInt(x.lss, 10),
		"data_write_guid":     x.hdr.dataWriteGUID.String(),
	}}
	var notes []string
	if x.hdr.logGUID != (GUID{}) {
		notes = append(notes, "log GUID set but the log holds no entry for it: nothing to replay")
		im.Attrs["log_guid"] = x.hdr.logGUID.String()
	}
	data, err := raw.Extents(f, path, x.size)
	if err != nil {
		return nil, err
	}

	used := []blockmap.Range{{Off: 0, Len: mib}, {Off: int64(x.hdr.logOffset), Len: int64(x.hdr.logLength)}}
	for _, r := range x.regions {
		used = append(used, blockmap.Range{Off: r.off, Len: r.length})
	}
	// Payload blocks in use and sector bitmap blocks. Unmapped and zero
	// blocks may keep a file offset and their old bytes; those show up in
	// the unreferenced view, since the guest cannot read them.
	nEntries := int64(len(x.batRaw) / 8)
	stale := 0
	for i := range nEntries {
		e := x.entry(i)
		state, off := e&7, int64(e&batOffsetMask)
		if x.isBitmapEntry(i) {
			if state == sbPresent {
				used = append(used, blockmap.Range{Off: off, Len: mib})
			}
			continue
		}
		switch state {
		case payloadFull, payloadPartial:
			if off < mib || off > x.size {
				return nil, model.Errorf(path, x.bat.off+8*i, "vhdx: BAT entry %d points at %d, outside the file's data area (%d bytes)", i, off, x.size)
			}
			used = append(used, blockmap.Range{Off: off, Len: x.blockSize})
		case payloadZero, payloadUnmapped, payloadUndefined:
			if off != 0 {
				stale++
			}
		}
	}
	if stale > 0 {
		notes = append(notes, fmt.Sprintf("%d zero/unmapped BAT entries keep a file offset: their old bytes are in the unreferenced view", stale))
	}

	disk := &blockmap.Disk{R: f, File: path, Len: x.virtSize, BlockSize: x.blockSize, SectorSize: x.lss, Order: blockmap.LSBFirst, Lookup: x.lookup}
	if x.hasParent {
		im.Attrs["subformat"] = "differencing"
		x.openParent(ctx, im, disk, opts)
	} else {
		im.Attrs["subformat"] = "dynamic/fixed"
	}
	im.Views = append([]model.View{{ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: disk, Notes: notes}}, im.Views...)
	u := blockmap.NewUnreferenced(f, path, x.size, data, used)
	if len(u.Free) > 0 {
		im.Views = append(im.Views, model.View{
			ID: model.ViewID(path, model.KindUnreferenced, ""), Kind: model.KindUnreferenced, Name: filepath.Base(path), Disk: u,
			Notes: []string{"host bytes outside the headers, log, regions, sector bitmaps and payload blocks in use; guest offset = host offset; only non-zero sectors are listed"},
		})
	}
	return im, nil
}

func (x *image) entry(i int64) uint64 { return binary.LittleEndian.Uint64(x.batRaw[8*i:]) }

// isBitmapEntry: every chunk_ratio payload entries are followed by one
// sector bitmap entry (spec 2.5.1).
func (x *image) isBitmapEntry(i int64) bool { return (i+1)%(x.chunkRatio+1) == 0 }

// lookup maps payload block b to where it lives.
func (x *image) lookup(b int64) blockmap.Block {
	i := b + b/x.chunkRatio
	if 8*i+8 > int64(len(x.batRaw)) {
		return blockmap.Block{State: blockmap.Absent}
	}
	e := x.entry(i)
	off := int64(e & batOffsetMask)
	switch e & 7 {
	case payloadFull:
		return blockmap.Block{State: blockmap.Data, Data: off}
	case payloadPartial:
		if !x.hasParent {
			// Only meaningful in differencing images; QEMU refuses to
			// read these, we read the block whole.
			return blockmap.Block{State: blockmap.Data, Data: off}
		}
		// Without its chunk's sector bitmap nothing says which of the
		// block's sectors are the child's: the block is read whole, so
		// that its bytes are read by a view (read as the parent's, they
		// were read by none); the parent's are in its backing view.
		sbi := (b/x.chunkRatio)*(x.chunkRatio+1) + x.chunkRatio
		if 8*sbi+8 > int64(len(x.batRaw)) {
			return blockmap.Block{State: blockmap.Data, Data: off}
		}
		sb := x.entry(sbi)
		if sb&7 != sbPresent {
			return blockmap.Block{State: blockmap.Data, Data: off}
		}
		perBlock := x.blockSize / x.lss / 8
		return blockmap.Block{State: blockmap.Partial, Data: off, Bitmap: int64(sb&batOffsetMask) + (b%x.chunkRatio)*perBlock}
	case payloadZero:
		return blockmap.Block{State: blockmap.Zero}
	default:
		// Not present, undefined, unmapped: the parent's bytes in a
		// differencing image, zeros otherwise (QEMU reads zeros).
		if x.hasParent {
			return blockmap.Block{State: blockmap.Absent}
		}
		return blockmap.Block{State: blockmap.Zero}
	}
}

func (x *image) parse() error {
	if x.size < mib {
		return model.Errorf(x.path, 0, "vhdx: file of %d bytes is smaller than the 1 MiB header section", x.size)
	}
	id := make([]byte, 8)
	if _, err := x.f.ReadAt(id, 0); err != nil || string(id) != "vhdxfile" {
		return model.Errorf(x.path, 0, "vhdx: no \"vhdxfile\" identifier")
	}
	if err := x.readHeaders(); err != nil {
		return err
	}
	if err := x.checkLog(); err != nil {
		return err
	}
	if err := x.readRegions(); err != nil {
		return err
	}
	if err := x.readMetadata(); err != nil {
		return err
	}
	return x.readBAT()
}

// readHeaders picks the valid header with the higher sequence number
// (spec 2.2.2.1).
func (x *image) readHeaders() error {
	var best *header
	var why []string
	for _, at := range []int64{header1Off, header2Off} {
		b := make([]byte, headerSize)
		if _, err := x.f.ReadAt(b, at); err != nil {
			return model.Wrapf(err, x.path, at, "vhdx: read header")
		}
		if string(b[:4]) != "head" {
			why = append(why, fmt.Sprintf("no \"head\" signature at %d", at))
			continue
		}
		if s, c := crcOK(b); s != c {
			why = append(why, fmt.Sprintf("bad checksum at %d", at))
			continue
		}
		if v := binary.LittleEndian.Uint16(b[66:]); v != 1 {
			why = append(why, fmt.Sprintf("version %d at %d", v, at))
			continue
		}
		h := header{at: at, seq: binary.LittleEndian.Uint64(b[8:])}
		copy(h.dataWriteGUID[:], b[32:48])
		copy(h.logGUID[:], b[48:64])
		h.logLength = binary.LittleEndian.Uint32(b[68:])
		h.logOffset = binary.LittleEndian.Uint64(b[72:])
		if best == nil || h.seq > best.seq {
			best = &h
		}
	}
	if best == nil {
		return model.Errorf(x.path, header1Off, "vhdx: no valid header (%s)", strings.Join(why, "; "))
	}
	x.hdr = *best
	return nil
}

// checkLog refuses an image whose log holds entries for the header's log
// GUID (spec 2.3: a non-zero LogGuid with valid entries means the log must
// be replayed before the metadata can be trusted). Like QEMU, a log GUID
// with no matching entry is harmless. Any entry header with the right
// signature and GUID counts, without a checksum: refusing is the safe side.
func (x *image) checkLog() error {
	h := x.hdr
	if h.logGUID == (GUID{}) {
		return nil
	}
	n := int64(h.logLength)
	if n == 0 || n > maxLogBytes || h.logOffset < mib || h.logOffset > uint64(x.size) || int64(h.logOffset)+n > x.size {
		return model.Errorf(x.path, h.at+68, "vhdx: log of %d bytes at %d is outside the file (%d bytes) or over %d bytes", n, h.logOffset, x.size, maxLogBytes)
	}
	buf := make([]byte, min(n, mib))
	for pos := int64(0); pos < n; pos += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), n-pos)]
		if _, err := x.f.ReadAt(chunk, int64(h.logOffset)+pos); err != nil {
			return model.Wrapf(err, x.path, int64(h.logOffset)+pos, "vhdx: read log")
		}
		for i := 0; i+64 <= len(chunk); i += 4096 {
			if string(chunk[i:i+4]) == "loge" && bytes.Equal(chunk[i+32:i+48], h.logGUID[:]) {
				return model.Wrapf(model.ErrUnsupported, x.path, int64(h.logOffset)+pos+int64(i),
					"vhdx: the log (GUID %s) holds entries that must be replayed before the image can be read consistently; open and close it once with Hyper-V or qemu-img check -r all on a copy", h.logGUID)
			}
		}
	}
	return nil
}

func (x *image) readRegions() error {
	var lastErr error
	for _, at := range []int64{regionTable1Off, regionTable2Off} {
		b := make([]byte, regionTableSize)
		if _, err := x.f.ReadAt(b, at); err != nil {
			return model.Wrapf(err, x.path, at, "vhdx: read region table")
		}
		if string(b[:4]) != "regi" {
			lastErr = model.Errorf(x.path, at, "vhdx: no \"regi\" region table signature")
			continue
		}
		if s, c := crcOK(b); s != c {
			lastErr = model.Errorf(x.path, at+4, "vhdx: region table checksum is %#08x, computed %#08x", s, c)
			continue
		}
		count := binary.LittleEndian.Uint32(b[8:])
		if count > maxTableEntries {
			return model.Errorf(x.path, at+8, "vhdx: %d region table entries, over %d", count, maxTableEntries)
		}
		x.regions = nil
		var haveBAT, haveMeta bool
		for i := range int64(count) {
			e := b[16+32*i:]
			r := region{off: int64(binary.LittleEndian.Uint64(e[16:])), length: int64(binary.LittleEndian.Uint32(e[24:])),
				required: binary.LittleEndian.Uint32(e[28:])&1 != 0, at: at + 16 + 32*i}
			copy(r.id[:], e[:16])
			if r.off < mib || r.off%mib != 0 || r.off > x.size || r.off+r.length > x.size || r.length == 0 {
				return model.Errorf(x.path, r.at, "vhdx: region %s at %d (%d bytes) is misaligned or outside the file (%d bytes)", r.id, r.off, r.length, x.size)
			}
			switch r.id {
			case regionBAT:
				x.bat, haveBAT = r, true
			case regionMetadata:
				x.meta, haveMeta = r, true
			default:
				if r.required {
					return model.Wrapf(model.ErrUnsupported, x.path, r.at, "vhdx: unknown required region %s", r.id)
				}
			}
			x.regions = append(x.regions, r)
		}
		if !haveBAT || !haveMeta {
			return model.Errorf(x.path, at, "vhdx: region table lacks the BAT or metadata region")
		}
		return nil
	}
	return lastErr
}

func (x *image) readMetadata() error {
	if x.meta.length < metaTableSize {
		return model.Errorf(x.path, x.meta.at, "vhdx: metadata region of %d bytes is smaller than its table", x.meta.length)
	}
	b := make([]byte, metaTableSize)
	if _, err := x.f.ReadAt(b, x.meta.off); err != nil {
		return model.Wrapf(err, x.path, x.meta.off, "vhdx: read metadata table")
	}
	if string(b[:8]) != "metadata" {
		return model.Errorf(x.path, x.meta.off, "vhdx: no \"metadata\" table signature")
	}
	count := int64(binary.LittleEndian.Uint16(b[10:]))
	if count > maxTableEntries {
		return model.Errorf(x.path, x.meta.off+10, "vhdx: %d metadata entries, over %d", count, maxTableEntries)
	}
	items := map[GUID][]byte{}
	itemAt := map[GUID]int64{}
	for i := range count {
		e := b[32+32*i:]
		at := x.meta.off + 32 + 32*i
		var id GUID
		copy(id[:], e[:16])
		off := int64(binary.LittleEndian.Uint32(e[16:]))
		n := int64(binary.LittleEndian.Uint32(e[20:]))
		required := binary.LittleEndian.Uint32(e[24:])&4 != 0
		switch id {
		case metaFileParams, metaVirtualSize, metaLogicalSS, metaPhysicalSS, metaPage83, metaParentLoc:
		default:
			if required {
				return model.Wrapf(model.ErrUnsupported, x.path, at, "vhdx: unknown required metadata item %s", id)
			}
			continue
		}
		if n == 0 && off == 0 {
			continue
		}
		if off < metaTableSize || off+n > x.meta.length || n > maxParentItem {
			return model.Errorf(x.path, at, "vhdx: metadata item %s (%d bytes at +%d) lies outside the metadata region", id, n, off)
		}
		v := make([]byte, n)
		if _, err := x.f.ReadAt(v, x.meta.off+off); err != nil {
			return model.Wrapf(err, x.path, x.meta.off+off, "vhdx: read metadata item %s", id)
		}
		items[id], itemAt[id] = v, x.meta.off+off
	}
	fp, ok := items[metaFileParams]
	if !ok || len(fp) < 8 {
		return model.Errorf(x.path, x.meta.off, "vhdx: file parameters metadata missing")
	}
	x.blockSize = int64(binary.LittleEndian.Uint32(fp))
	x.hasParent = binary.LittleEndian.Uint32(fp[4:])&2 != 0
	if bs := x.blockSize; bs < minBlockSize || bs > maxBlockSize || bs&(bs-1) != 0 {
		return model.Errorf(x.path, itemAt[metaFileParams], "vhdx: block size %d is not a power of two in [1 MiB, 256 MiB]", bs)
	}
	vs, ok := items[metaVirtualSize]
	if !ok || len(vs) < 8 {
		return model.Errorf(x.path, x.meta.off, "vhdx: virtual disk size metadata missing")
	}
	v := binary.LittleEndian.Uint64(vs)
	if v > maxVirtualSize {
		return model.Errorf(x.path, itemAt[metaVirtualSize], "vhdx: virtual disk size %d is over the 64 TiB limit", v)
	}
	x.virtSize = int64(v)
	ls, ok := items[metaLogicalSS]
	if !ok || len(ls) < 4 {
		return model.Errorf(x.path, x.meta.off, "vhdx: logical sector size metadata missing")
	}
	x.lss = int64(binary.LittleEndian.Uint32(ls))
	if x.lss != 512 && x.lss != 4096 {
		return model.Errorf(x.path, itemAt[metaLogicalSS], "vhdx: logical sector size %d is neither 512 nor 4096", x.lss)
	}
	if x.virtSize%x.lss != 0 {
		return model.Errorf(x.path, itemAt[metaVirtualSize], "vhdx: virtual disk size %d is not a multiple of the sector size %d", x.virtSize, x.lss)
	}
	x.chunkRatio = sectorsPerChunk * x.lss / x.blockSize
	if x.hasParent {
		pl, ok := items[metaParentLoc]
		if !ok {
			return model.Errorf(x.path, x.meta.off, "vhdx: differencing image without a parent locator")
		}
		kv, err := parseParentLocator(pl, x.path, itemAt[metaParentLoc])
		if err != nil {
			return err
		}
		x.parentKV, x.parentAt = kv, itemAt[metaParentLoc]
	}
	return nil
}

// parseParentLocator reads the key/value pairs of a parent locator item
// (spec 2.6.2.6), UTF-16LE strings at offsets from the item's start.
func parseParentLocator(b []byte, path string, at int64) (map[string]string, error) {
	if len(b) < 20 {
		return nil, model.Errorf(path, at, "vhdx: parent locator of %d bytes is too short", len(b))
	}
	var typ GUID
	copy(typ[:], b[:16])
	if typ != parentLocatorVHD {
		return nil, model.Wrapf(model.ErrUnsupported, path, at, "vhdx: parent locator type %s", typ)
	}
	count := int(binary.LittleEndian.Uint16(b[18:]))
	if 20+12*count > len(b) {
		return nil, model.Errorf(path, at+18, "vhdx: %d parent locator entries do not fit in %d bytes", count, len(b))
	}
	kv := map[string]string{}
	for i := range count {
		e := b[20+12*i:]
		ko, vo := int(binary.LittleEndian.Uint32(e)), int(binary.LittleEndian.Uint32(e[4:]))
		kl, vl := int(binary.LittleEndian.Uint16(e[8:])), int(binary.LittleEndian.Uint16(e[10:]))
		if ko < 0 || vo < 0 || ko+kl > len(b) || vo+vl > len(b) || ko > len(b) || vo > len(b) {
			return nil, model.Errorf(path, at+20+12*int64(i), "vhdx: parent locator entry %d lies outside the item", i)
		}
		kv[blockmap.UTF16(b[ko:ko+kl], false)] = blockmap.UTF16(b[vo:vo+vl], false)
	}
	return kv, nil
}

func (x *image) readBAT() error {
	dataBlocks := (x.virtSize + x.blockSize - 1) / x.blockSize
	var entries int64
	if x.hasParent {
		bitmapBlocks := (dataBlocks + x.chunkRatio - 1) / x.chunkRatio
		entries = bitmapBlocks * (x.chunkRatio + 1)
	} else if dataBlocks > 0 {
		entries = dataBlocks + (dataBlocks-1)/x.chunkRatio
	}
	if entries*8 > x.bat.length {
		return model.Errorf(x.path, x.bat.at, "vhdx: BAT region of %d bytes is too small for %d entries", x.bat.length, entries)
	}
	if entries*8 > maxBATBytes {
		return model.Errorf(x.path, x.bat.at, "vhdx: BAT of %d entries is over the %d-byte limit", entries, maxBATBytes)
	}
	x.batRaw = make([]byte, entries*8)
	if _, err := x.f.ReadAt(x.batRaw, x.bat.off); err != nil {
		return model.Wrapf(err, x.path, x.bat.off, "vhdx: read BAT")
	}
	return nil
}

// openParent resolves the parent from the locator's relative_path,
// volume_path and absolute_win32_path, checks its DataWriteGuid against
// parent_linkage (spec 2.6.2.6.1) and wires it under disk.
func (x *image) openParent(ctx context.Context, im *model.Image, disk *blockmap.Disk, opts model.Options) {
	kv := x.parentKV
	link := model.BackingLink{Name: kv["relative_path"], Format: "vhdx"}
	if link.Name == "" {
		link.Name = kv["absolute_win32_path"]
	}
	im.Attrs["parent_linkage"] = kv["parent_linkage"]
	if opts.NoBacking {
		im.Backing = append(im.Backing, link)
		return
	}
	linkage, ok := parseGUID(kv["parent_linkage"])
	if !ok {
		link.Err = model.Errorf(x.path, x.parentAt, "vhdx: parent locator has no valid parent_linkage")
		im.Backing = append(im.Backing, link)
		im.Errors = append(im.Errors, link.Err)
		return
	}
	linkage2, _ := parseGUID(kv["parent_linkage2"])
	var names []blockmap.Named
	for _, k := range []string{"relative_path", "volume_path", "absolute_win32_path"} {
		names = append(names, blockmap.Named{Name: kv[k], Off: x.parentAt})
	}
	found := blockmap.FindParent(opts.Opener, x.path, blockmap.Candidates(names...), func(f model.File, p string) bool {
		dw, err := dataWriteGUID(f, p)
		return err == nil && (dw == linkage || (linkage2 != GUID{} && dw == linkage2))
	})
	if cand := found.Path; found.File != nil {
		link.Path = cand
		pim, pd, err := blockmap.OpenParent(ctx, opts, found.File, cand)
		if err != nil {
			link.Err = err
			im.Backing = append(im.Backing, link)
			im.Errors = append(im.Errors, model.Wrapf(err, x.path, x.parentAt, "vhdx: open parent %s", filepath.Base(cand)))
			return
		}
		link.Format = pim.Format
		disk.Parent = pd
		blockmap.Adopt(im, link, pim)
		return
	}
	if found.RefusedBy != nil {
		link.Err = model.Wrapf(found.RefusedBy, x.path, x.parentAt, "vhdx: parent %q", found.Refused.Name)
	} else {
		link.Err = model.Errorf(x.path, x.parentAt, "vhdx: no parent whose DataWriteGuid is %s found", linkage)
	}
	im.Backing = append(im.Backing, link)
	im.Errors = append(im.Errors, link.Err)
}

// dataWriteGUID reads the active header's DataWriteGuid of the VHDX f,
// named path.
func dataWriteGUID(f model.File, path string) (GUID, error) {
	st, err := f.Stat()
	if err != nil {
		return GUID{}, err
	}
	x := &image{f: f, path: path, size: st.Size()}
	if x.size < mib {
		return GUID{}, model.Errorf(path, 0, "vhdx: too small")
	}
	if err := x.readHeaders(); err != nil {
		return GUID{}, err
	}
	return x.hdr.dataWriteGUID, nil
}
