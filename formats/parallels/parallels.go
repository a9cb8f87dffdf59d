// Package parallels reads Parallels expandable disk images (the .hds files
// of Parallels Desktop's .hdd bundles, and Virtuozzo/OpenVZ ploop images),
// following QEMU's docs/interop/parallels.rst and block/parallels.c, whose
// reads it reproduces byte for byte: a 64-byte header, a block allocation
// table (BAT) of 32-bit cluster offsets, and the clusters. A zero BAT entry
// is a cluster never written; it reads as zeros.
package parallels

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math"
	"strconv"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap"
	"github.com/imgaudit/imgaudit/formats/model"
)

const (
	headerSize = 64
	sectorSize = 512
	version    = 2
	// inUse is the in_use value of an image open for writing, or one
	// whose writer never closed it.
	inUse = 0x746F6E59
	// maxTracks is QEMU's bound on the cluster size, in sectors
	// (INT32_MAX/513: "Too big cluster").
	maxTracks = math.MaxInt32 / 513
	// maxBATEntries bounds the BAT, which is read into memory: 16 Mi
	// entries (64 MiB), a 16 TiB disk of Parallels' 1 MiB clusters (QEMU
	// allows INT_MAX/4: "Catalog too large"). The BAT must also lie within
	// the file, so a small file cannot make the reader allocate it.
	maxBATEntries = 16 << 20
)

var (
	// magicV1 ("WithoutFreeSpace") images give BAT entries in sectors and
	// the disk size in the low 32 bits of nb_sectors.
	magicV1 = []byte("WithoutFreeSpace")
	// magicExt ("WithouFreSpacExt") images give BAT entries in clusters.
	magicExt = []byte("WithouFreSpacExt")
)

// Probe recognises either magic with version 2, as QEMU's probe does.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return len(head) >= headerSize && (bytes.Equal(head[:16], magicV1) || bytes.Equal(head[:16], magicExt)) &&
		binary.LittleEndian.Uint32(head[16:]) == version
}

// header is the fixed header (parallels.rst, "Header").
type header struct {
	ext        bool   // magicExt
	tracks     uint32 // cluster size in sectors
	batEntries uint32
	sectors    uint64 // disk size in sectors
	inUse      uint32
	dataOff    uint32 // sectors
	flags      uint32
	extOff     uint64 // sectors
}

func readHeader(f io.ReaderAt, path string, size int64) (header, error) {
	if size < headerSize {
		return header{}, model.Errorf(path, 0, "parallels: file of %d bytes is too small for a header", size)
	}
	b := make([]byte, headerSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return header{}, model.Wrapf(err, path, 0, "parallels: read header")
	}
	le := binary.LittleEndian
	h := header{
		ext:        bytes.Equal(b[:16], magicExt),
		tracks:     le.Uint32(b[28:]),
		batEntries: le.Uint32(b[32:]),
		sectors:    le.Uint64(b[36:]),
		inUse:      le.Uint32(b[44:]),
		dataOff:    le.Uint32(b[48:]),
		flags:      le.Uint32(b[52:]),
		extOff:     le.Uint64(b[56:]),
	}
	if !h.ext && !bytes.Equal(b[:16], magicV1) {
		return h, model.Errorf(path, 0, "parallels: bad magic %q", b[:16])
	}
	if !h.ext {
		h.sectors &= math.MaxUint32
	}
	batEnd := int64(headerSize) + 4*int64(h.batEntries)
	switch v := le.Uint32(b[16:]); {
	case v != version:
		return h, model.Wrapf(model.ErrUnsupported, path, 16, "parallels: version %d", v)
	case h.tracks == 0:
		return h, model.Errorf(path, 28, "parallels: zero sectors per cluster")
	case h.tracks > maxTracks:
		return h, model.Errorf(path, 28, "parallels: cluster of %d sectors, over %d", h.tracks, maxTracks)
	case h.batEntries > maxBATEntries:
		return h, model.Errorf(path, 32, "parallels: %d BAT entries, over %d", h.batEntries, maxBATEntries)
	case batEnd > size:
		return h, model.Errorf(path, 32, "parallels: BAT of %d entries runs past the end of the file (%d bytes)", h.batEntries, size)
	case h.sectors > uint64(h.batEntries)*uint64(h.tracks):
		return h, model.Errorf(path, 36, "parallels: disk of %d sectors exceeds the %d clusters of %d sectors the BAT covers", h.sectors, h.batEntries, h.tracks)
	case h.extOff > uint64(size)/sectorSize:
		return h, model.Errorf(path, 56, "parallels: format extension at sector %d is past the end of the file", h.extOff)
	}
	return h, nil
}

// dataStart is where the data area starts, in bytes: data_off when it
// is valid, else the end of the BAT rounded up to a sector (and, in
// extension images, to a cluster), as QEMU's parallels_test_data_off
// corrects it.
func (h header) dataStart(size int64) int64 {
	min := (int64(headerSize) + 4*int64(h.batEntries) + sectorSize - 1) / sectorSize
	if h.ext {
		t := int64(h.tracks)
		min = (min + t - 1) / t * t
	}
	off := int64(h.dataOff)
	if off == 0 && !h.ext || off < min || off > size/sectorSize {
		off = min
	}
	return off * sectorSize
}

// Open opens a Parallels image read-only.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "parallels", path, opts, New)
}

// New reads the Parallels image that f holds, size bytes; name names it in
// views, extents and errors. Its parent, when the DiskDescriptor.xml beside
// it names one, is opened through opts.Opener (none when it is nil).
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
	bat := make([]byte, 4*int64(h.batEntries))
	if _, err := f.ReadAt(bat, headerSize); err != nil {
		return nil, model.Wrapf(err, path, headerSize, "parallels: read BAT")
	}
	cluster := int64(h.tracks) * sectorSize
	mult := int64(1) // BAT entries in sectors
	if h.ext {
		mult = int64(h.tracks) // in clusters
	}
	start := h.dataStart(size)
	entry := func(i int64) int64 { return int64(binary.LittleEndian.Uint32(bat[4*i:])) * mult * sectorSize }
	for i := range int64(h.batEntries) {
		host := entry(i)
		if host == 0 {
			continue
		}
		// QEMU reads any entry; one inside the header or the BAT, or
		// past the end of the file, is no cluster the format allows
		// (parallels.rst, "BAT").
		if host < start || host >= size {
			return nil, model.Errorf(path, headerSize+4*i, "parallels: BAT entry %d points at byte %d, outside the data area [%d, %d)", i, host, start, size)
		}
	}
	// The clusters the disk reads are used; one that a BAT entry past the
	// disk's size maps is read by no view but the unreferenced one.
	runs := blockmap.NewRunBuilder(size, mult*sectorSize, cluster)
	inDisk := (int64(h.sectors)*sectorSize + cluster - 1) / cluster
	for i := int64(0); i < min(int64(h.batEntries), inDisk); i++ {
		if e := binary.LittleEndian.Uint32(bat[4*i:]); e != 0 {
			runs.Mark(uint64(e))
		}
	}
	used, err := runs.Runs(start)
	if h.extOff != 0 && err == nil {
		used = append(used, blockmap.Range{Off: int64(h.extOff) * sectorSize, Len: cluster}) // NewUnreferenced sorts them
	}

	subformat := "WithoutFreeSpace"
	if h.ext {
		subformat = "WithouFreSpacExt"
	}
	im := &model.Image{Path: path, Format: "parallels", VirtualSize: int64(h.sectors) * sectorSize, Attrs: map[string]string{
		"subformat":    subformat,
		"cluster_size": strconv.FormatInt(cluster, 10),
	}}
	disk := &blockmap.Disk{R: f, File: path, Len: im.VirtualSize, BlockSize: cluster, SectorSize: sectorSize,
		Lookup: func(i int64) blockmap.Block {
			if i >= int64(h.batEntries) {
				return blockmap.Block{State: blockmap.Zero}
			}
			if host := entry(i); host != 0 {
				return blockmap.Block{State: blockmap.Data, Data: host}
			}
			return blockmap.Block{State: blockmap.Absent}
		}}
	openParent(ctx, im, disk, opts)
	cur := model.View{ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: disk}
	if h.inUse == inUse {
		im.Attrs["in_use"] = "true"
		cur.Notes = append(cur.Notes, "the image is marked in use: it is open for writing, or its writer stopped without closing it, so the BAT may miss the last clusters written (they are in the unreferenced view)")
	}
	im.Views = append([]model.View{cur}, im.Views...)
	if err != nil {
		// The clusters lie too scattered to list: the unreferenced view
		// is not built, and the image says so.
		im.Errors = append(im.Errors, model.Wrapf(err, path, headerSize, "parallels: unreferenced view not built"))
		return im, nil
	}
	if err := blockmap.AddUnreferenced(im, f, path, size, used, "the header, BAT, format extension and mapped clusters"); err != nil {
		im.Close()
		return nil, err
	}
	return im, nil
}
