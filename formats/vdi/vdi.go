// Package vdi reads VirtualBox Disk Images (static, dynamic and
// differencing), following VirtualBox's VDICore.h (header version 1.1) and
// QEMU's block/vdi.c, whose reads it reproduces byte for byte. A
// differencing image's parent is the .vdi file, in the same directory or the
// one above it (VirtualBox keeps snapshots in a Snapshots/ subfolder), whose
// creation UUID is the child's linkage UUID.
package vdi

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
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
	signature   = 0xBEDA107F
	version11   = 0x00010001
	headerEnd   = 0x200
	sectorSize  = 512
	unallocated = 0xFFFFFFFF
	zeroBlock   = 0xFFFFFFFE

	typeNormal = 1 // dynamic
	typeFixed  = 2
	typeUndo   = 3
	typeDiff   = 4

	maxBlockSize = 256 << 20
	// maxBlocks is QEMU's VDI_BLOCKS_IN_IMAGE_MAX.
	maxBlocks   = 0x3fffffff
	maxBMapSize = 256 << 20
	// maxCandidates bounds how many .vdi files are examined when looking
	// for a parent.
	maxCandidates = 256
)

// Probe recognises the VDI signature at 0x40.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return len(head) >= 0x44 && binary.LittleEndian.Uint32(head[0x40:]) == signature
}

// header is the pre-header and the version 1.1 header (VDICore.h
// VDIPREHEADER and VDIHEADER1).
type header struct {
	version    uint32
	imageType  uint32
	offBMap    uint32
	offData    uint32
	sectorSize uint32
	diskSize   uint64
	blockSize  uint32
	blockExtra uint32
	blocks     uint32
	allocated  uint32
	uuidCreate [16]byte
	uuidModify [16]byte
	uuidLink   [16]byte // parent's uuidCreate
	uuidParent [16]byte // parent's uuidModify when the child was made
}

func parseHeader(b []byte) header {
	le := binary.LittleEndian
	h := header{
		version:    le.Uint32(b[0x44:]),
		imageType:  le.Uint32(b[0x4C:]),
		offBMap:    le.Uint32(b[0x154:]),
		offData:    le.Uint32(b[0x158:]),
		sectorSize: le.Uint32(b[0x168:]),
		diskSize:   le.Uint64(b[0x170:]),
		blockSize:  le.Uint32(b[0x178:]),
		blockExtra: le.Uint32(b[0x17C:]),
		blocks:     le.Uint32(b[0x180:]),
		allocated:  le.Uint32(b[0x184:]),
	}
	copy(h.uuidCreate[:], b[0x188:])
	copy(h.uuidModify[:], b[0x198:])
	copy(h.uuidLink[:], b[0x1A8:])
	copy(h.uuidParent[:], b[0x1B8:])
	return h
}

func readHeader(f io.ReaderAt, path string, size int64) (header, error) {
	if size < headerEnd {
		return header{}, model.Errorf(path, 0, "vdi: file of %d bytes is too small for a header", size)
	}
	b := make([]byte, headerEnd)
	if _, err := f.ReadAt(b, 0); err != nil {
		return header{}, model.Wrapf(err, path, 0, "vdi: read header")
	}
	if s := binary.LittleEndian.Uint32(b[0x40:]); s != signature {
		return header{}, model.Errorf(path, 0x40, "vdi: bad signature %#08x", s)
	}
	h := parseHeader(b)
	switch {
	case h.version != version11:
		return h, model.Wrapf(model.ErrUnsupported, path, 0x44, "vdi: header version %d.%d", h.version>>16, h.version&0xffff)
	case h.imageType < typeNormal || h.imageType > typeDiff:
		return h, model.Errorf(path, 0x4C, "vdi: unknown image type %d", h.imageType)
	case h.sectorSize != sectorSize:
		return h, model.Wrapf(model.ErrUnsupported, path, 0x168, "vdi: sector size %d", h.sectorSize)
	case h.offBMap%sectorSize != 0 || h.offBMap < headerEnd:
		return h, model.Errorf(path, 0x154, "vdi: block map offset %d is unaligned or inside the header", h.offBMap)
	case h.offData%sectorSize != 0:
		return h, model.Errorf(path, 0x158, "vdi: data offset %d is unaligned", h.offData)
	case h.blockSize < sectorSize || h.blockSize > maxBlockSize || h.blockSize%sectorSize != 0:
		return h, model.Errorf(path, 0x178, "vdi: block size %d is not a multiple of 512 in [512, %d]", h.blockSize, maxBlockSize)
	case h.blockExtra > h.blockSize || h.blockExtra%sectorSize != 0:
		return h, model.Errorf(path, 0x17C, "vdi: block extra data of %d bytes", h.blockExtra)
	case h.blocks > maxBlocks:
		return h, model.Errorf(path, 0x180, "vdi: %d blocks, over %d", h.blocks, maxBlocks)
	case h.diskSize > uint64(h.blocks)*uint64(h.blockSize):
		return h, model.Errorf(path, 0x170, "vdi: disk size %d exceeds %d blocks of %d bytes", h.diskSize, h.blocks, h.blockSize)
	}
	return h, nil
}

// Open opens a VDI read-only.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "vdi", path, opts, New)
}

// New reads the VDI that f holds, size bytes; name names it in views,
// extents and errors, and a differencing image's parent is looked for
// through opts.Opener (none when it is nil).
func New(ctx context.Context, f io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	opts, err := hostfile.Enter(f, name, opts)
	if err != nil {
		return nil, err
	}
	path := name
	h, err := readHeader(f, path, size)
	if err != nil {
		return nil, err
	}
	bmapLen := int64(h.blocks) * 4
	if bmapLen > maxBMapSize || int64(h.offBMap)+bmapLen > size {
		return nil, model.Errorf(path, 0x154, "vdi: block map of %d entries at %d runs past the end of the file (%d bytes) or over %d bytes", h.blocks, h.offBMap, size, maxBMapSize)
	}
	if int64(h.offData) < int64(h.offBMap)+bmapLen && h.blocks > 0 {
		return nil, model.Errorf(path, 0x158, "vdi: data offset %d overlaps the block map", h.offData)
	}
	bmap := make([]byte, bmapLen)
	if _, err := f.ReadAt(bmap, int64(h.offBMap)); err != nil {
		return nil, model.Wrapf(err, path, int64(h.offBMap), "vdi: read block map")
	}
	bs := int64(h.blockSize)
	stride := bs + int64(h.blockExtra)
	entry := func(i int64) uint32 { return binary.LittleEndian.Uint32(bmap[4*i:]) }
	used := []blockmap.Range{{Off: 0, Len: headerEnd}, {Off: int64(h.offBMap), Len: (bmapLen + sectorSize - 1) &^ (sectorSize - 1)}}
	inDisk := (int64(h.diskSize) + bs - 1) / bs
	for i := range int64(h.blocks) {
		e := entry(i)
		if e >= zeroBlock {
			continue
		}
		if e >= h.blocks {
			return nil, model.Errorf(path, int64(h.offBMap)+4*i, "vdi: block map entry %d points at block %d of %d", i, e, h.blocks)
		}
		// A block mapped past the disk's size is read by no view but the
		// unreferenced one (an audit found such blocks read by none).
		if i < inDisk {
			used = append(used, blockmap.Range{Off: int64(h.offData) + int64(e)*stride, Len: stride})
		}
	}

	subformat := map[uint32]string{typeNormal: "dynamic", typeFixed: "static", typeUndo: "undo", typeDiff: "differencing"}[h.imageType]
	im := &model.Image{Path: path, Format: "vdi", VirtualSize: int64(h.diskSize), Attrs: map[string]string{
		"subformat":  subformat,
		"block_size": strconv.FormatInt(bs, 10),
		"uuid":       uuidString(h.uuidCreate),
	}}
	disk := &blockmap.Disk{R: f, File: path, Len: int64(h.diskSize), BlockSize: bs, SectorSize: sectorSize,
		Lookup: func(i int64) blockmap.Block {
			if i >= int64(h.blocks) {
				return blockmap.Block{State: blockmap.Zero}
			}
			switch e := entry(i); {
			case e == unallocated:
				return blockmap.Block{State: blockmap.Absent}
			case e == zeroBlock:
				return blockmap.Block{State: blockmap.Zero}
			default:
				return blockmap.Block{State: blockmap.Data, Data: int64(h.offData) + int64(e)*stride + int64(h.blockExtra)}
			}
		}}
	if h.uuidLink != ([16]byte{}) {
		im.Attrs["parent_uuid"] = uuidString(h.uuidLink)
		openParent(ctx, im, disk, h, opts)
	}
	cur := model.View{ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: disk}
	if im.Attrs["parent_modified_since_child"] == "true" {
		cur.Notes = append(cur.Notes, "the parent's modification UUID differs from the one the child recorded: the parent changed after this image was made")
	}
	im.Views = append([]model.View{cur}, im.Views...)
	data, err := raw.Extents(f, path, size)
	if err != nil {
		return nil, err
	}
	u := blockmap.NewUnreferenced(f, path, size, data, used)
	if len(u.Free) > 0 {
		im.Views = append(im.Views, model.View{
			ID: model.ViewID(path, model.KindUnreferenced, ""), Kind: model.KindUnreferenced, Name: filepath.Base(path), Disk: u,
			Notes: []string{"host bytes outside the header, block map and mapped blocks; guest offset = host offset; only non-zero sectors are listed"},
		})
	}
	return im, nil
}

// uuidString formats a VirtualBox RTUUID (first three fields little-endian).
func uuidString(u [16]byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%s-%s", binary.LittleEndian.Uint32(u[0:]), binary.LittleEndian.Uint16(u[4:]),
		binary.LittleEndian.Uint16(u[6:]), hex.EncodeToString(u[8:10]), hex.EncodeToString(u[10:]))
}

// openParent finds the parent among the .vdi files of the image's directory
// and the one above, by creation UUID, and wires it under disk. Both
// directories are listed through opts.Opener, under the policy: one
// outside the allowed roots is not read, and the error says so without
// naming anything in it.
func openParent(ctx context.Context, im *model.Image, disk *blockmap.Disk, h header, opts model.Options) {
	path := im.Path
	link := model.BackingLink{Name: "{" + uuidString(h.uuidLink) + "}", Format: "vdi"}
	if opts.NoBacking {
		im.Backing = append(im.Backing, link)
		return
	}
	seen, tried := 0, 0
	var refused error
	var refusedName string // `candidate "../x.vdi"` or `directory ".."`
	for _, sub := range []string{".", ".."} {
		names, err := opts.Opener.List(path, sub)
		if err != nil {
			// A directory outside the roots (the one above an image at
			// the top of a root) is not read: the search says so, naming
			// nothing in it.
			if refused == nil && errors.Is(err, model.ErrOutsideRoots) {
				refused, refusedName = err, fmt.Sprintf("directory %q", sub)
			}
			continue
		}
		for _, n := range names {
			rel := filepath.Join(sub, n)
			if !strings.EqualFold(filepath.Ext(n), ".vdi") || sub == "." && n == filepath.Base(path) {
				continue
			}
			if seen++; seen > maxCandidates {
				break
			}
			// The candidates are names next to the image or one directory
			// up, under the same policy as names an image writes.
			f, cand, err := opts.Opener.Open(path, rel)
			if err != nil {
				if refused == nil && errors.As(err, new(*model.RefusedError)) {
					refused, refusedName = err, fmt.Sprintf("candidate %q", rel)
				}
				continue
			}
			tried++
			ph, err := candidateHeader(f)
			if err != nil || ph.uuidCreate != h.uuidLink {
				f.Close()
				continue
			}
			link.Path = cand
			pim, pd, err := blockmap.OpenParent(ctx, opts, f, cand)
			if err != nil {
				link.Err = err
				im.Backing = append(im.Backing, link)
				im.Errors = append(im.Errors, model.Wrapf(err, path, 0x1A8, "vdi: open parent %s", n))
				return
			}
			if h.uuidParent != ([16]byte{}) && ph.uuidModify != h.uuidParent {
				// VirtualBox warns here: the parent changed after the
				// child was made, so the merged view may not be what the
				// guest saw.
				im.Attrs["parent_modified_since_child"] = "true"
			}
			link.Format = pim.Format
			disk.Parent = pd
			blockmap.Adopt(im, link, pim)
			return
		}
	}
	msg := fmt.Sprintf("vdi: no .vdi with UUID %s next to the image or in the directory above (%d examined)", uuidString(h.uuidLink), tried)
	if refused != nil {
		link.Err = model.Wrapf(refused, path, 0x1A8, "%s; %s", msg, refusedName)
	} else {
		link.Err = model.Errorf(path, 0x1A8, "%s", msg)
	}
	im.Backing = append(im.Backing, link)
	im.Errors = append(im.Errors, link.Err)
}

func candidateHeader(f model.File) (header, error) {
	b := make([]byte, headerEnd)
	if _, err := f.ReadAt(b, 0); err != nil {
		return header{}, err
	}
	if binary.LittleEndian.Uint32(b[0x40:]) != signature {
		return header{}, errors.New("not a VDI")
	}
	return parseHeader(b), nil
}
