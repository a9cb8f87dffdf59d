// Package qed reads QEMU Enhanced Disk images (QED), following QEMU's
// docs/interop/qed_spec.rst and block/qed.c, whose reads it reproduces
// byte for byte: a header cluster, an L1 table of L2 table offsets, L2
// tables of data cluster offsets (0: unallocated, read from the backing
// file or as zeros; 1: a zero cluster), and a backing file named in the
// header.
package qed

import (
	"context"
	"encoding/binary"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap"
	"github.com/imgaudit/imgaudit/formats/model"
)

const (
	magic      = 0x00444551 // "QED\0"
	headerSize = 64

	featureBackingFile    = 0x01
	featureNeedCheck      = 0x02
	featureBackingNoProbe = 0x04 // the backing file is raw
	knownFeatures         = featureBackingFile | featureNeedCheck | featureBackingNoProbe

	minCluster  = 4 << 10  // QED_MIN_CLUSTER_SIZE
	maxCluster  = 64 << 20 // QED_MAX_CLUSTER_SIZE
	maxTable    = 16       // QED_MAX_TABLE_SIZE, in clusters
	zeroCluster = 1        // QED_CLUSTER_ZERO
	// maxBackingName is the longest backing file name QEMU reads (its
	// backing_file buffer).
	maxBackingName = 4095
	// maxTableBytes bounds one table, read into memory: QEMU allows 16
	// clusters of 64 MiB; qemu-img makes 4 of 64 KiB.
	maxTableBytes = 32 << 20
	// maxL2Bytes bounds the L2 tables held in memory, all together: a
	// 1 TiB image of qemu-img's 64 KiB clusters has 128 MiB of them.
	maxL2Bytes = 128 << 20
)

// Probe recognises the QED magic.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head) == magic
}

// header is the QED header (qed_spec.rst, "Header").
type header struct {
	cluster, tableClusters, headerClusters uint32
	features                               uint64
	l1Off, imageSize                       uint64
	backingOff, backingSize                uint32
}

func readHeader(f io.ReaderAt, path string, size int64) (header, error) {
	if size < headerSize {
		return header{}, model.Errorf(path, 0, "qed: file of %d bytes is too small for a header", size)
	}
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return header{}, model.Wrapf(err, path, 0, "qed: read header")
	}
	le := binary.LittleEndian
	if m := le.Uint32(b); m != magic {
		return header{}, model.Errorf(path, 0, "qed: bad magic %#08x", m)
	}
	h := header{
		cluster: le.Uint32(b[4:]), tableClusters: le.Uint32(b[8:]), headerClusters: le.Uint32(b[12:]),
		features: le.Uint64(b[16:]), l1Off: le.Uint64(b[40:]), imageSize: le.Uint64(b[48:]),
		backingOff: le.Uint32(b[56:]), backingSize: le.Uint32(b[60:]),
	}
	c := uint64(h.cluster)
	switch {
	case h.features&^knownFeatures != 0:
		return h, model.Wrapf(model.ErrUnsupported, path, 16, "qed: feature bits %#x", h.features&^knownFeatures)
	case c < minCluster || c > maxCluster || c&(c-1) != 0:
		return h, model.Errorf(path, 4, "qed: cluster size %d is not a power of two in [%d, %d]", c, minCluster, maxCluster)
	case h.tableClusters < 1 || h.tableClusters > maxTable || h.tableClusters&(h.tableClusters-1) != 0:
		return h, model.Errorf(path, 8, "qed: table size of %d clusters is not a power of two in [1, %d]", h.tableClusters, maxTable)
	case h.tableBytes() > maxTableBytes:
		return h, model.Errorf(path, 8, "qed: tables of %d bytes, over %d", h.tableBytes(), maxTableBytes)
	case h.headerClusters == 0 || uint64(h.headerClusters)*c > uint64(size):
		return h, model.Errorf(path, 12, "qed: header of %d clusters is empty or runs past the end of the file (%d bytes)", h.headerClusters, size)
	case h.imageSize%512 != 0:
		return h, model.Errorf(path, 48, "qed: image size %d is not a multiple of 512", h.imageSize)
	case h.imageSize > h.maxImageSize():
		return h, model.Errorf(path, 48, "qed: image size %d exceeds the %d bytes the tables can map", h.imageSize, h.maxImageSize())
	case !h.tableAt(h.l1Off, size):
		return h, model.Errorf(path, 40, "qed: L1 table offset %d is unaligned, inside the header or past the end of the file", h.l1Off)
	}
	if h.features&featureBackingFile != 0 {
		end := uint64(h.backingOff) + uint64(h.backingSize)
		if h.backingSize == 0 || h.backingSize > maxBackingName || end > uint64(h.headerClusters)*c || end > uint64(size) {
			return h, model.Errorf(path, 56, "qed: backing file name of %d bytes at %d lies outside the header", h.backingSize, h.backingOff)
		}
	}
	return h, nil
}

func (h header) tableBytes() int64 { return int64(h.tableClusters) * int64(h.cluster) }

// entries is how many offsets one table holds (TABLE_NOFFSETS).
func (h header) entries() int64 { return h.tableBytes() / 8 }

func (h header) maxImageSize() uint64 {
	n := uint64(h.entries())
	return n * n * uint64(h.cluster)
}

// clusterAt reports whether off is a valid data or table cluster offset
// (QEMU's qed_check_cluster_offset): aligned, past the header, inside
// the file.
func (h header) clusterAt(off uint64, size int64) bool {
	c := uint64(h.cluster)
	return off&(c-1) == 0 && off >= uint64(h.headerClusters)*c && off < uint64(size)
}

// tableAt is clusterAt for a whole table (qed_check_table_offset).
func (h header) tableAt(off uint64, size int64) bool {
	return h.clusterAt(off, size) && h.clusterAt(off+uint64(h.tableBytes())-uint64(h.cluster), size)
}

// Open opens a QED image read-only.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "qed", path, opts, New)
}

// New reads the QED image that f holds, size bytes; name names it in
// views, extents and errors, and its backing file is opened through
// opts.Opener (none when it is nil) unless opts.NoBacking is set.
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
	tb := h.tableBytes()
	l1 := make([]byte, tb)
	if _, err := f.ReadAt(l1, int64(h.l1Off)); err != nil {
		return nil, model.Wrapf(err, path, int64(h.l1Off), "qed: read L1 table")
	}
	le := binary.LittleEndian
	// Each distinct L2 table is read once, and its entries checked.
	l2 := map[uint64][]byte{}
	var held int64
	used := blockmap.NewRunBuilder(size, int64(h.cluster), int64(h.cluster)) // for the unreferenced view
	for i := range h.entries() {
		off := le.Uint64(l1[8*i:])
		if off == 0 || l2[off] != nil {
			continue
		}
		if !h.tableAt(off, size) {
			return nil, model.Errorf(path, int64(h.l1Off)+8*i, "qed: L1 entry %d: L2 table offset %d is unaligned, inside the header or past the end of the file", i, off)
		}
		if held += tb; held > maxL2Bytes {
			return nil, model.Errorf(path, int64(h.l1Off)+8*i, "qed: L2 tables over %d bytes", maxL2Bytes)
		}
		t := make([]byte, tb)
		if _, err := f.ReadAt(t, int64(off)); err != nil {
			return nil, model.Wrapf(err, path, int64(off), "qed: read L2 table")
		}
		for j := range h.entries() {
			e := le.Uint64(t[8*j:])
			if e == 0 || e == zeroCluster {
				continue
			}
			if !h.clusterAt(e, size) {
				return nil, model.Errorf(path, int64(off)+8*j, "qed: L2 entry %d: data cluster offset %d is unaligned, inside the header or past the end of the file", j, e)
			}
			// A cluster mapped past the image size is read by no view
			// but the unreferenced one. (A table that several L1 entries
			// share is judged at the first: at worst a cluster is scanned
			// twice, never not at all.)
			if uint64(i*h.entries()+j)*uint64(h.cluster) < h.imageSize {
				used.Mark(e / uint64(h.cluster))
			}
		}
		l2[off] = t
		for c := range uint64(h.tableClusters) {
			used.Mark(off/uint64(h.cluster) + c)
		}
	}
	for c := range uint64(h.tableClusters) {
		used.Mark(h.l1Off/uint64(h.cluster) + c)
	}

	cluster := int64(h.cluster)
	im := &model.Image{Path: path, Format: "qed", VirtualSize: int64(h.imageSize), Attrs: map[string]string{
		"cluster_size": strconv.FormatInt(cluster, 10),
		"table_size":   strconv.FormatUint(uint64(h.tableClusters), 10),
	}}
	n := h.entries()
	disk := &blockmap.Disk{R: f, File: path, Len: int64(h.imageSize), BlockSize: cluster, SectorSize: 512,
		Lookup: func(i int64) blockmap.Block {
			t := l2[le.Uint64(l1[8*(i/n):])]
			if t == nil {
				return blockmap.Block{State: blockmap.Absent}
			}
			switch e := le.Uint64(t[8*(i%n):]); e {
			case 0:
				return blockmap.Block{State: blockmap.Absent}
			case zeroCluster:
				return blockmap.Block{State: blockmap.Zero}
			default:
				return blockmap.Block{State: blockmap.Data, Data: int64(e)}
			}
		}}
	if h.features&featureBackingFile != 0 {
		openBacking(ctx, f, h, im, disk, opts)
	}
	cur := model.View{ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: disk}
	if h.features&featureNeedCheck != 0 {
		im.Attrs["need_check"] = "true"
		cur.Notes = append(cur.Notes, "the image is marked as needing a consistency check: its writer stopped without closing it, so the tables may miss the last clusters written (they are in the unreferenced view)")
	}
	im.Views = append([]model.View{cur}, im.Views...)

	runs, err := used.Runs(int64(h.headerClusters) * int64(h.cluster))
	if err != nil {
		im.Errors = append(im.Errors, model.Wrapf(err, path, int64(h.l1Off), "qed: unreferenced view not built"))
		return im, nil
	}
	if err := blockmap.AddUnreferenced(im, f, path, size, runs, "the header, tables and mapped clusters"); err != nil {
		im.Close()
		return nil, err
	}
	return im, nil
}

// openBacking opens the backing file the header names through the
// Opener, as QEMU does (relative to the image's directory; raw without
// probing when the header says so), and wires it under disk. Problems, a
// refused name among them, are the image's errors; the image then reads
// zeros where the backing file would have supplied data.
func openBacking(ctx context.Context, f io.ReaderAt, h header, im *model.Image, disk *blockmap.Disk, opts model.Options) {
	path := im.Path
	at := int64(h.backingOff)
	b := make([]byte, h.backingSize)
	if _, err := f.ReadAt(b, at); err != nil {
		im.Errors = append(im.Errors, model.Wrapf(err, path, at, "qed: read backing file name"))
		return
	}
	name := string(b)
	format := ""
	if h.features&featureBackingNoProbe != 0 {
		format = "raw"
	}
	link := model.BackingLink{Name: name, Format: format}
	fail := func(err error) {
		link.Err = err
		im.Backing = append(im.Backing, link)
		im.Errors = append(im.Errors, err)
	}
	// A colon before any slash: QEMU reads a protocol ("nbd:host:port").
	if i := strings.IndexAny(name, ":/\\"); i >= 0 && name[i] == ':' || strings.ContainsRune(name, 0) {
		fail(model.Wrapf(model.ErrUnsupported, path, at, "qed: backing file %q names a protocol or URL; only local files are followed", printable(name)))
		return
	}
	if opts.NoBacking || opts.Open == nil {
		if !filepath.IsAbs(name) {
			link.Path = filepath.Join(filepath.Dir(path), name)
		} else {
			link.Path = name
		}
		im.Backing = append(im.Backing, link)
		return
	}
	bf, p, err := opts.Opener.Open(path, name)
	if err != nil {
		fail(model.Wrapf(err, path, at, "qed: backing file %q", printable(name)))
		return
	}
	link.Path = p
	bim, err := model.OpenLinked(ctx, opts, bf, p, format)
	if err != nil {
		fail(model.Wrapf(err, path, at, "qed: open backing file %q", printable(name)))
		return
	}
	cur, ok := bim.Current()
	if !ok {
		bim.Close()
		fail(model.Errorf(path, at, "qed: backing file %q has no current view", printable(name)))
		return
	}
	link.Format = bim.Format
	disk.Parent = cur.Disk
	blockmap.Adopt(im, link, bim)
}

// printable keeps a name from an image printable: control and non-ASCII
// bytes become '?'.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
