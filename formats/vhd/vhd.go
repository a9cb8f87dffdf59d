// Package vhd reads Microsoft Virtual Hard Disk (VHD, QEMU's "vpc") images:
// fixed, dynamic and differencing, following the VHD Image Format
// Specification (2006) and QEMU's block/vpc.c, whose reads it reproduces
// byte for byte. Differencing images read their parent through the parent
// locators and sector bitmaps (which QEMU does not support).
package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"path/filepath"
	"strconv"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

const (
	footerSize    = 512
	dynHeaderSize = 1024
	sector        = 512

	typeFixed        = 2
	typeDynamic      = 3
	typeDifferencing = 4

	// QEMU's limits (vpc.c): 2040 GiB, and the CHS value that means "use
	// current_size".
	maxSectors  = 0xff000000
	maxGeometry = 65535 * 16 * 255
	// maxBlockSize bounds one block (the spec's default is 2 MiB; QEMU
	// accepts any power of two). 256 MiB keeps a bitmap at 64 KiB.
	maxBlockSize = 256 << 20
	// maxBATBytes bounds the BAT kept in memory.
	maxBATBytes = 256 << 20
	batUnused   = 0xFFFFFFFF
	numLocators = 8
)

var cookie = []byte("conectix")

// Probe recognises a VHD by its footer cookie, at offset 0 (the footer copy
// of dynamic and differencing images) or in the last 512 bytes (fixed).
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	if ProbeHead(head) {
		return true
	}
	if r == nil || size < footerSize {
		return false
	}
	var b [8]byte
	n, _ := r.ReadAt(b[:], size-footerSize)
	return n == len(b) && bytes.Equal(b[:], cookie)
}

// ProbeHead recognises the footer copy at offset 0 of a dynamic or
// differencing VHD; a fixed VHD has its footer only at the end.
func ProbeHead(head []byte) bool { return bytes.HasPrefix(head, cookie) }

// footer is the 512-byte "hard disk footer" (spec section "Hard Disk Footer
// Format").
type footer struct {
	raw         []byte
	at          int64 // host offset it was read from
	dataOffset  uint64
	creatorApp  string
	currentSize uint64
	cyls        uint16
	heads, secs uint8
	diskType    uint32
	checksum    uint32
	uuid        [16]byte
}

func parseFooter(b []byte, at int64) footer {
	f := footer{raw: b, at: at}
	f.dataOffset = binary.BigEndian.Uint64(b[16:])
	f.creatorApp = string(b[28:32])
	f.currentSize = binary.BigEndian.Uint64(b[48:])
	f.cyls = binary.BigEndian.Uint16(b[56:])
	f.heads, f.secs = b[58], b[59]
	f.diskType = binary.BigEndian.Uint32(b[60:])
	f.checksum = binary.BigEndian.Uint32(b[64:])
	copy(f.uuid[:], b[68:84])
	return f
}

// checksum is the ones' complement of the byte sum, skipping the checksum
// field itself (spec: "Checksum").
func checksum(b []byte, fieldAt int) uint32 {
	var s uint32
	for i, c := range b {
		if i >= fieldAt && i < fieldAt+4 {
			continue
		}
		s += uint32(c)
	}
	return ^s
}

// sectors is the guest size as QEMU computes it: CHS geometry for images
// made by Virtual PC and old QEMU, current_size for Hyper-V, disk2vhd,
// XenServer and QEMU's force_size ("qem2"), and whenever CHS is maxed out.
func (f *footer) sectors() int64 {
	chs := int64(f.cyls) * int64(f.heads) * int64(f.secs)
	switch f.creatorApp {
	case "win ", "qem2", "d2v ", "CTXS", "tap\x00":
		return int64(f.currentSize / sector)
	}
	if chs == maxGeometry {
		return int64(f.currentSize / sector)
	}
	return chs
}

// dynHeader is the 1024-byte "dynamic disk header" (spec section "Dynamic
// Disk Header Format").
type dynHeader struct {
	at         int64
	tableOff   uint64
	maxEntries uint32
	blockSize  uint32
	parentUUID [16]byte
	parentName string
	locators   []locator
}

// locator is one "parent locator entry" (spec: "Parent Locator Entries").
type locator struct {
	code       uint32
	dataSpace  uint32
	dataLength uint32
	dataOffset uint64
	at         int64 // host offset of the entry
}

func (l locator) codeString() string {
	b := binary.BigEndian.AppendUint32(nil, l.code)
	return strconv.Quote(string(b))
}

const (
	platW2ku = 0x57326B75 // "W2ku": absolute Windows path, UTF-16LE
	platW2ru = 0x57327275 // "W2ru": relative Windows path, UTF-16LE
	platMacX = 0x4D616358 // "MacX": file URL, UTF-8
)

func parseDynHeader(b []byte, at int64) dynHeader {
	h := dynHeader{at: at}
	h.tableOff = binary.BigEndian.Uint64(b[16:])
	h.maxEntries = binary.BigEndian.Uint32(b[28:])
	h.blockSize = binary.BigEndian.Uint32(b[32:])
	copy(h.parentUUID[:], b[40:56])
	h.parentName = blockmap.UTF16(b[64:576], true)
	for i := range numLocators {
		e := b[576+24*i:]
		l := locator{
			code:       binary.BigEndian.Uint32(e),
			dataSpace:  binary.BigEndian.Uint32(e[4:]),
			dataLength: binary.BigEndian.Uint32(e[8:]),
			dataOffset: binary.BigEndian.Uint64(e[16:]),
			at:         at + 576 + 24*int64(i),
		}
		if l.code != 0 {
			h.locators = append(h.locators, l)
		}
	}
	return h
}

// Open opens a VHD read-only.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "vhd", path, opts, New)
}

// New reads the VHD that f holds, size bytes; name names it in views,
// extents and errors, and a differencing image's parent is looked for
// through opts.Opener (none when it is nil).
func New(ctx context.Context, f io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	opts, err := hostfile.Enter(f, name, opts)
	if err != nil {
		return nil, err
	}
	path := name
	if size < footerSize {
		return nil, model.Errorf(path, 0, "vhd: file of %d bytes is too small for a footer", size)
	}
	ft, err := readFooter(f, path, size)
	if err != nil {
		return nil, err
	}
	sectors := ft.sectors()
	if sectors > maxSectors {
		return nil, model.Errorf(path, ft.at+48, "vhd: disk size of %d sectors is over the 2040 GiB limit", sectors)
	}
	im := &model.Image{Path: path, Format: "vpc", VirtualSize: sectors * sector, Attrs: map[string]string{
		"creator_app": strconv.Quote(ft.creatorApp),
		"disk_type":   strconv.Itoa(int(ft.diskType)),
		"uuid":        hex.EncodeToString(ft.uuid[:]),
	}}
	data, err := raw.Extents(f, path, size)
	if err != nil {
		return nil, err
	}

	if ft.diskType == typeFixed {
		im.Attrs["subformat"] = "fixed"
		n := sectors * sector
		var allocd model.ExtentList
		for _, e := range data {
			if e.Offset >= n {
				break
			}
			allocd = append(allocd, blockmap.Clip(e, 0, n))
		}
		d := &model.FileDisk{R: f, Name: path, Len: n, Allocd: allocd}
		im.Views = append(im.Views, model.View{ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: d})
		// Bytes between the guest end and the footer are slack.
		used := []blockmap.Range{{Off: 0, Len: n}, {Off: size - footerSize, Len: footerSize}}
		addUnreferenced(im, f, path, size, data, used)
		return im, nil
	}
	if ft.diskType != typeDynamic && ft.diskType != typeDifferencing {
		return nil, model.Errorf(path, ft.at+60, "vhd: unknown disk type %d", ft.diskType)
	}
	if ft.at != 0 {
		return nil, model.Errorf(path, ft.at+60, "vhd: dynamic disk type but no footer copy at offset 0")
	}

	hdr, bat, err := readDynamic(f, path, size, ft, sectors)
	if err != nil {
		return nil, err
	}
	bs := int64(hdr.blockSize)
	bitmapSize := (bs/(8*sector) + sector - 1) &^ (sector - 1)
	im.Attrs["block_size"] = strconv.FormatInt(bs, 10)

	used := []blockmap.Range{
		{Off: 0, Len: footerSize},
		{Off: size - footerSize, Len: footerSize},
		{Off: hdr.at, Len: dynHeaderSize},
		{Off: int64(hdr.tableOff), Len: (int64(len(bat))*4 + sector - 1) &^ (sector - 1)},
	}
	for i, e := range bat {
		if e == batUnused {
			continue
		}
		off := int64(e) * sector
		if off+bitmapSize+bs > size {
			// QEMU refuses these too ("the image has been truncated").
			return nil, model.Errorf(path, int64(hdr.tableOff)+4*int64(i), "vhd: BAT entry %d: block at %d runs past the end of the file (%d bytes)", i, off, size)
		}
		used = append(used, blockmap.Range{Off: off, Len: bitmapSize + bs})
	}

	disk := &blockmap.Disk{R: f, File: path, Len: sectors * sector, BlockSize: bs, SectorSize: sector, Order: blockmap.MSBFirst}
	if ft.diskType == typeDynamic {
		// QEMU ignores the sector bitmap of dynamic disks: an allocated
		// block reads whole from the file.
		im.Attrs["subformat"] = "dynamic"
		disk.Lookup = func(i int64) blockmap.Block {
			if i >= int64(len(bat)) || bat[i] == batUnused {
				return blockmap.Block{State: blockmap.Absent}
			}
			return blockmap.Block{State: blockmap.Data, Data: int64(bat[i])*sector + bitmapSize}
		}
	} else {
		// Differencing: a sector whose bitmap bit is set is in this file,
		// any other sector is the parent's (spec: "Block Allocation Table
		// and Data Blocks").
		im.Attrs["subformat"] = "differencing"
		disk.Lookup = func(i int64) blockmap.Block {
			if i >= int64(len(bat)) || bat[i] == batUnused {
				return blockmap.Block{State: blockmap.Absent}
			}
			off := int64(bat[i]) * sector
			return blockmap.Block{State: blockmap.Partial, Data: off + bitmapSize, Bitmap: off}
		}
		im.Attrs["parent_uuid"] = hex.EncodeToString(hdr.parentUUID[:])
		locUsed := openParent(ctx, f, im, disk, hdr, size, opts)
		used = append(used, locUsed...)
	}
	im.Views = append([]model.View{{ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: disk}}, im.Views...)
	addUnreferenced(im, f, path, size, data, used)
	return im, nil
}

func addUnreferenced(im *model.Image, f io.ReaderAt, path string, size int64, data model.ExtentList, used []blockmap.Range) {
	u := blockmap.NewUnreferenced(f, path, size, data, used)
	if len(u.Free) == 0 {
		return
	}
	im.Views = append(im.Views, model.View{
		ID: model.ViewID(path, model.KindUnreferenced, ""), Kind: model.KindUnreferenced, Name: filepath.Base(path), Disk: u,
		Notes: []string{"host bytes outside the footer, header, BAT, parent locators and allocated blocks; guest offset = host offset; only non-zero sectors are listed"},
	})
}

// readFooter finds the footer as QEMU does: at offset 0 first (dynamic
// images keep a copy there), else in the last 512 bytes.
func readFooter(f io.ReaderAt, path string, size int64) (footer, error) {
	for _, at := range []int64{0, size - footerSize} {
		b := make([]byte, footerSize)
		if _, err := f.ReadAt(b, at); err != nil {
			return footer{}, model.Wrapf(err, path, at, "vhd: read footer")
		}
		if !bytes.HasPrefix(b, cookie) {
			continue
		}
		ft := parseFooter(b, at)
		if got := checksum(b, 64); got != ft.checksum {
			return footer{}, model.Errorf(path, at+64, "vhd: footer checksum is %#08x, computed %#08x", ft.checksum, got)
		}
		return ft, nil
	}
	return footer{}, model.Errorf(path, size-footerSize, "vhd: no \"conectix\" footer at offset 0 or at the end")
}

func readDynamic(f io.ReaderAt, path string, size int64, ft footer, sectors int64) (dynHeader, []uint32, error) {
	at := ft.dataOffset
	if at > uint64(size-dynHeaderSize) || size < dynHeaderSize {
		return dynHeader{}, nil, model.Errorf(path, ft.at+16, "vhd: dynamic header offset %d is outside the file (%d bytes)", at, size)
	}
	b := make([]byte, dynHeaderSize)
	if _, err := f.ReadAt(b, int64(at)); err != nil {
		return dynHeader{}, nil, model.Wrapf(err, path, int64(at), "vhd: read dynamic header")
	}
	if !bytes.HasPrefix(b, []byte("cxsparse")) {
		return dynHeader{}, nil, model.Errorf(path, int64(at), "vhd: no \"cxsparse\" dynamic header magic")
	}
	h := parseDynHeader(b, int64(at))
	bs := int64(h.blockSize)
	if bs < sector || bs&(bs-1) != 0 || bs > maxBlockSize {
		return h, nil, model.Errorf(path, h.at+32, "vhd: block size %d is not a power of two in [512, %d]", bs, maxBlockSize)
	}
	if int64(h.maxEntries)*bs < sectors*sector {
		return h, nil, model.Errorf(path, h.at+28, "vhd: BAT of %d entries is too small for a %d-byte disk", h.maxEntries, sectors*sector)
	}
	// Entries past the disk end are never read; keep only what the disk
	// needs, so a hostile count cannot make us allocate more.
	need := (sectors*sector + bs - 1) / bs
	n := min(int64(h.maxEntries), need)
	if n*4 > maxBATBytes {
		return h, nil, model.Errorf(path, h.at+28, "vhd: BAT of %d entries is over the %d-byte limit", n, maxBATBytes)
	}
	if h.tableOff > uint64(size) || int64(h.tableOff)+n*4 > size {
		return h, nil, model.Errorf(path, h.at+16, "vhd: BAT at %d (%d entries) runs past the end of the file (%d bytes)", h.tableOff, n, size)
	}
	raw := make([]byte, n*4)
	if _, err := f.ReadAt(raw, int64(h.tableOff)); err != nil {
		return h, nil, model.Wrapf(err, path, int64(h.tableOff), "vhd: read BAT")
	}
	bat := make([]uint32, n)
	for i := range bat {
		bat[i] = binary.BigEndian.Uint32(raw[4*i:])
	}
	return h, bat, nil
}

// maxLocatorBytes bounds one parent locator's path.
const maxLocatorBytes = 64 << 10

// openParent resolves the parent of a differencing image from its locators
// (relative first) and the header's parent name, checks the parent's UUID,
// and wires it under disk. It returns the host ranges the locators use.
func openParent(ctx context.Context, f io.ReaderAt, im *model.Image, disk *blockmap.Disk, h dynHeader, size int64, opts model.Options) []blockmap.Range {
	path := im.Path
	var used []blockmap.Range
	var rel, abs []blockmap.Named
	for _, l := range h.locators {
		n := int64(l.dataLength)
		off := int64(l.dataOffset)
		if n <= 0 || n > maxLocatorBytes || l.dataOffset > uint64(size) || off+n > size {
			im.Errors = append(im.Errors, model.Errorf(path, l.at, "vhd: parent locator %s (%d bytes at %d) is outside the file", l.codeString(), n, l.dataOffset))
			continue
		}
		space := int64(l.dataSpace)
		if space < n {
			// The spec counts sectors here, some writers count bytes.
			space = (n + sector - 1) &^ (sector - 1)
		} else if space*sector <= maxLocatorBytes && off+space*sector <= size-footerSize {
			space *= sector
		}
		used = append(used, blockmap.Range{Off: off, Len: space})
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil {
			im.Errors = append(im.Errors, model.Wrapf(err, path, off, "vhd: read parent locator"))
			continue
		}
		switch l.code {
		case platW2ru:
			rel = append(rel, blockmap.Named{Name: blockmap.UTF16(b, false), Off: off})
		case platW2ku:
			abs = append(abs, blockmap.Named{Name: blockmap.UTF16(b, false), Off: off})
		case platMacX:
			abs = append(abs, blockmap.Named{Name: string(bytes.TrimRight(b, "\x00")), Off: off})
		}
	}
	names := append(append(rel, abs...), blockmap.Named{Name: h.parentName, Off: h.at + 64})
	link := model.BackingLink{Name: h.parentName, Format: "vpc"}
	if len(rel) > 0 {
		link.Name = rel[0].Name
	} else if len(abs) > 0 {
		link.Name = abs[0].Name
	}
	if opts.NoBacking {
		im.Backing = append(im.Backing, link)
		return used
	}
	found := blockmap.FindParent(opts.Opener, path, blockmap.Candidates(names...), func(f model.File, p string) bool {
		id, err := fileUUID(f, p)
		return err == nil && id == h.parentUUID
	})
	if cand := found.Path; found.File != nil {
		link.Path = cand
		pim, pd, err := blockmap.OpenParent(ctx, opts, found.File, cand)
		if err != nil {
			link.Err = err
			im.Backing = append(im.Backing, link)
			im.Errors = append(im.Errors, model.Wrapf(err, path, h.at+64, "vhd: open parent %s", filepath.Base(cand)))
			return used
		}
		link.Format = pim.Format
		disk.Parent = pd
		blockmap.Adopt(im, link, pim)
		return used
	}
	if found.RefusedBy != nil {
		link.Err = model.Wrapf(found.RefusedBy, path, found.Refused.Off, "vhd: parent %q", found.Refused.Name)
	} else {
		link.Err = model.Errorf(path, h.at+40, "vhd: no parent with UUID %s found (tried %d existing candidates)", hex.EncodeToString(h.parentUUID[:]), found.Tried)
	}
	im.Backing = append(im.Backing, link)
	im.Errors = append(im.Errors, link.Err)
	return used
}

// fileUUID reads the unique id of the VHD f, named path.
func fileUUID(f model.File, path string) ([16]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return [16]byte{}, err
	}
	ft, err := readFooter(f, path, st.Size())
	if err != nil {
		return [16]byte{}, err
	}
	return ft.uuid, nil
}
