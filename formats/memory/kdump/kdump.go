// Package kdump reads kdump-compressed memory dumps (makedumpfile's diskdump
// format) as written by QEMU's `dump-guest-memory -z/-l/-s`: both the
// flattened form QEMU streams out (a "makedumpfile" header then {offset,
// size, data} records) and the normal, rearranged form ("KDUMP   ").
package kdump

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	lzo "github.com/anchore/go-lzo"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory/memdisk"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/zeros"
)

const (
	FlatMagic   = "makedumpfile"
	KdumpMagic  = "KDUMP   "
	flatHdrSize = 4096

	flagZlib   = 0x1
	flagLZO    = 0x2
	flagSnappy = 0x4
	flagZstd   = 0x20

	maxFlatRecords = 1 << 26
	maxBlockSize   = 1 << 20
	maxPFN         = uint64(1) << 40 // 4 PiB of 4 KiB pages
)

// Probe reports whether head starts a flattened or normal kdump file.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	return (len(head) >= 16 && bytes.Equal(head[:16], append([]byte(FlatMagic), 0, 0, 0, 0))) ||
		(len(head) >= 8 && string(head[:8]) == KdumpMagic)
}

// record is one flattened data record: n bytes of the rebuilt file at virt,
// stored at file.
type record struct{ virt, file, n int64 }

// flatReader presents the rebuilt file of a flattened dump.
type flatReader struct {
	r    io.ReaderAt
	recs []record // sorted by virt, non-overlapping
	size int64
}

func (f *flatReader) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	i := sort.Search(len(f.recs), func(i int) bool { return f.recs[i].virt+f.recs[i].n > off })
	for ; i < len(f.recs) && f.recs[i].virt < off+int64(len(p)); i++ {
		rc := f.recs[i]
		lo, hi := max(off, rc.virt), min(off+int64(len(p)), rc.virt+rc.n)
		if _, err := f.r.ReadAt(p[lo-off:hi-off], rc.file+(lo-rc.virt)); err != nil {
			return 0, err
		}
	}
	if off+int64(len(p)) > f.size {
		return int(max(0, f.size-off)), io.EOF
	}
	return len(p), nil
}

// locate maps a rebuilt range to its host offset when one record holds it.
func (f *flatReader) locate(name string) memdisk.Locator {
	return func(off, n int64) (string, int64, bool) {
		i := sort.Search(len(f.recs), func(i int) bool { return f.recs[i].virt+f.recs[i].n > off })
		if i == len(f.recs) || f.recs[i].virt > off || off+n > f.recs[i].virt+f.recs[i].n {
			return "", 0, false
		}
		return name, f.recs[i].file + (off - f.recs[i].virt), true
	}
}

// unflatten indexes the records of a flattened dump.
func unflatten(name string, r io.ReaderAt, size int64) (*flatReader, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, flatHdrSize, size-flatHdrSize), 64<<10)
	pos := int64(flatHdrSize)
	fr := &flatReader{r: r}
	var h [16]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil, model.Wrapf(err, name, pos, "flattened record header (no end marker)")
		}
		virt := int64(binary.BigEndian.Uint64(h[:8]))
		n := int64(binary.BigEndian.Uint64(h[8:]))
		pos += 16
		if virt == -1 && n == -1 {
			break
		}
		if virt < 0 || n < 0 || n > size-pos || virt > 1<<56 {
			return nil, model.Errorf(name, pos-16, "flattened record offset %d size %d", virt, n)
		}
		if len(fr.recs) >= maxFlatRecords {
			return nil, model.Errorf(name, pos-16, "more than %d flattened records", maxFlatRecords)
		}
		if n > 0 {
			fr.recs = append(fr.recs, record{virt, pos, n})
			fr.size = max(fr.size, virt+n)
		}
		if _, err := br.Discard(int(n)); err != nil {
			return nil, model.Wrapf(err, name, pos, "flattened record data")
		}
		pos += n
	}
	sort.SliceStable(fr.recs, func(i, j int) bool { return fr.recs[i].virt < fr.recs[j].virt })
	for i := 1; i < len(fr.recs); i++ {
		if fr.recs[i-1].virt+fr.recs[i-1].n > fr.recs[i].virt {
			return nil, model.Errorf(name, fr.recs[i].file-16, "flattened records overlap at rebuilt offset %d", fr.recs[i].virt)
		}
	}
	return fr, nil
}

// Info is what the headers say.
type Info struct {
	Flattened      bool
	HeaderVersion  int32
	BlockSize      int64
	MaxMapnr       uint64
	Pages          int // dumped pages (descriptors)
	ZeroPages      int // pages pointing at the shared zero page
	LZOPages       int // LZO1X-compressed pages
	CompressedZlib int
	Snappy, Zstd   int
}

// NewDisk parses a kdump file (either form) into a guest-physical Disk.
func NewDisk(ctx context.Context, name string, r io.ReaderAt, size int64) (*memdisk.Disk, *Info, []string, error) {
	head := make([]byte, 16)
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, nil, nil, model.Wrapf(err, name, 0, "read kdump header")
	}
	info := &Info{}
	var src io.ReaderAt = r
	var loc memdisk.Locator
	vsize := size
	if string(head[:12]) == FlatMagic {
		fr, err := unflatten(name, r, size)
		if err != nil {
			return nil, nil, nil, err
		}
		info.Flattened = true
		src, loc, vsize = fr, fr.locate(name), fr.size
	}
	return parse(ctx, name, src, vsize, loc, info)
}

func parse(ctx context.Context, name string, r io.ReaderAt, size int64, loc memdisk.Locator, info *Info) (*memdisk.Disk, *Info, []string, error) {
	h := make([]byte, 464)
	if _, err := r.ReadAt(h, 0); err != nil {
		return nil, nil, nil, model.Wrapf(err, name, 0, "read diskdump header")
	}
	if string(h[:8]) != KdumpMagic {
		return nil, nil, nil, model.Errorf(name, 0, "no KDUMP signature")
	}
	bo := binary.LittleEndian
	info.HeaderVersion = int32(bo.Uint32(h[8:]))
	// 64-bit layout (timeval of 16 bytes) puts block_size at 428; 32-bit at 416.
	base := 428
	if bs := bo.Uint32(h[428:]); bs < 512 || bs > maxBlockSize || bs&(bs-1) != 0 {
		base = 416
	}
	bs := int64(bo.Uint32(h[base:]))
	if bs < 512 || bs > maxBlockSize || bs&(bs-1) != 0 {
		return nil, nil, nil, model.Errorf(name, int64(base), "block size %d", bs)
	}
	info.BlockSize = bs
	subHdr := int64(int32(bo.Uint32(h[base+4:])))
	bitmapBlocks := int64(bo.Uint32(h[base+8:]))
	info.MaxMapnr = uint64(bo.Uint32(h[base+12:]))
	if subHdr < 0 || subHdr > 1<<20 || bitmapBlocks > size/bs {
		return nil, nil, nil, model.Errorf(name, int64(base), "sub-header %d blocks, bitmaps %d blocks", subHdr, bitmapBlocks)
	}
	if info.HeaderVersion >= 6 && subHdr > 0 {
		var b [8]byte
		if _, err := r.ReadAt(b[:], bs+96); err == nil {
			if m := bo.Uint64(b[:]); m > 0 {
				info.MaxMapnr = m
			}
		}
	}
	if info.MaxMapnr > maxPFN {
		return nil, nil, nil, model.Errorf(name, int64(base+12), "max_mapnr %d", info.MaxMapnr)
	}
	bitmapLen := bitmapBlocks * bs / 2
	if uint64(bitmapLen)*8 < info.MaxMapnr {
		return nil, nil, nil, model.Errorf(name, int64(base+8), "bitmaps of %d bytes cannot cover %d pages", bitmapLen, info.MaxMapnr)
	}
	bitmap2 := (1+subHdr)*bs + bitmapLen
	descOff := (1 + subHdr + bitmapBlocks) * bs
	bm := bufio.NewReaderSize(io.NewSectionReader(r, bitmap2, bitmapLen), 64<<10)
	dr := bufio.NewReaderSize(io.NewSectionReader(r, descOff, max(0, size-descOff)), 64<<10)
	var pieces []memdisk.Piece
	lowest := int64(-1) // lowest data offset: QEMU writes its shared zero page there
	var notes []string
	var desc [24]byte
	nDesc := int64(0)
	for byteIdx := uint64(0); byteIdx*8 < info.MaxMapnr; byteIdx++ {
		if byteIdx%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, nil, err
			}
		}
		b, err := bm.ReadByte()
		if err != nil {
			return nil, nil, nil, model.Wrapf(err, name, bitmap2+int64(byteIdx), "read dump bitmap")
		}
		for bit := uint64(0); bit < 8 && b != 0; bit++ {
			if b&(1<<bit) == 0 {
				continue
			}
			pfn := byteIdx*8 + bit
			if pfn >= info.MaxMapnr {
				break
			}
			at := descOff + nDesc*24
			if _, err := io.ReadFull(dr, desc[:]); err != nil {
				return nil, nil, nil, model.Wrapf(err, name, at, "read page descriptor of pfn %d", pfn)
			}
			nDesc++
			off := int64(bo.Uint64(desc[0:]))
			sz := int64(bo.Uint32(desc[8:]))
			fl := bo.Uint32(desc[12:])
			if off < 0 || sz <= 0 || sz > bs || off > size-sz {
				return nil, nil, nil, model.Errorf(name, at, "page descriptor of pfn %d: offset %d size %d", pfn, off, sz)
			}
			info.Pages++
			pc := memdisk.Piece{Off: int64(pfn) * bs, FileOff: off, FileLen: uint32(sz), Len: uint32(bs), Ref: fl}
			switch {
			case fl&flagZlib != 0:
				pc.Src, info.CompressedZlib = model.SourceCompressed, info.CompressedZlib+1
			case fl&flagSnappy != 0:
				pc.Src, info.Snappy = model.SourceCompressed, info.Snappy+1
			case fl&flagZstd != 0:
				pc.Src, info.Zstd = model.SourceCompressed, info.Zstd+1
			case fl&flagLZO != 0:
				pc.Src, info.LZOPages = model.SourceCompressed, info.LZOPages+1
			case fl != 0 || sz != bs:
				return nil, nil, nil, model.Errorf(name, at, "page descriptor of pfn %d: flags 0x%x size %d", pfn, fl, sz)
			default:
				pc.Src = model.SourceData
			}
			if lowest < 0 || off < lowest {
				lowest = off
			}
			pieces = append(pieces, pc)
		}
	}
	// QEMU points every zero page at one shared zero block, the first
	// data block; those pages are holes, not data to scan.
	zero := lowest >= 0 && isZero(r, lowest, bs)
	kept := pieces[:0]
	for _, p := range pieces {
		if zero && p.Src == model.SourceData && p.FileOff == lowest {
			info.ZeroPages++
			continue
		}
		kept = append(kept, p)
	}
	d, err := memdisk.New(name, r, int64(info.MaxMapnr)*bs, kept, decoder(r), loc)
	return d, info, notes, err
}

func isZero(r io.ReaderAt, off, n int64) bool {
	b := make([]byte, n)
	_, err := r.ReadAt(b, off)
	return err == nil && zeros.All(b)
}

// Open opens a kdump file as an Image with one memory view.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "kdump", path, opts, New)
}

// New reads the kdump file that r holds, size bytes, named name.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, _ model.Options) (*model.Image, error) {
	path := name
	d, info, notes, err := NewDisk(ctx, path, r, size)
	if err != nil {
		return nil, err
	}
	form := "normal"
	if info.Flattened {
		form = "flattened"
	}
	im := &model.Image{Path: path, Format: "kdump", VirtualSize: d.Size(), Attrs: map[string]string{
		"form": form, "block_size": fmt.Sprint(info.BlockSize), "pages": fmt.Sprint(info.Pages),
		"zero_pages": fmt.Sprint(info.ZeroPages), "lzo_pages": fmt.Sprint(info.LZOPages),
	}}
	im.Views = []model.View{{ID: model.ViewID(path, model.KindMemory, ""), Kind: model.KindMemory, Name: "memory", Disk: d,
		Notes: append([]string{"offsets are guest-physical addresses (pfn * block size)"}, notes...), Attrs: im.Attrs}}
	return im, nil
}

// decoder returns the page decoder reading stored pages from r.
func decoder(r io.ReaderAt) memdisk.Decoder {
	var zlibPages memdisk.Inflater
	return func(p *memdisk.Piece, dst []byte) error {
		src := make([]byte, p.FileLen)
		if _, err := r.ReadAt(src, p.FileOff); err != nil {
			return err
		}
		var out []byte
		var err error
		switch {
		case p.Ref&flagZlib != 0:
			_, err := zlibPages.Inflate(src, dst)
			return err
		case p.Ref&flagSnappy != 0:
			out, err = snappy.Decode(dst[:0:len(dst)], src)
		case p.Ref&flagZstd != 0:
			dec, e := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(len(dst))*2+1<<16))
			if e != nil {
				return e
			}
			defer dec.Close()
			out, err = dec.DecodeAll(src, dst[:0:len(dst)])
		case p.Ref&flagLZO != 0:
			// Decompress never writes past dst: a page that does not
			// decode to exactly one page is an error.
			n, err := lzo.Decompress(src, dst)
			if err != nil {
				return fmt.Errorf("LZO1X page (%d bytes decoded): %w", n, err)
			}
			if n != len(dst) {
				return fmt.Errorf("LZO1X page decompresses to %d bytes, not %d", n, len(dst))
			}
			return nil
		default:
			return fmt.Errorf("page flags 0x%x", p.Ref)
		}
		if err != nil {
			return err
		}
		if len(out) != len(dst) {
			return fmt.Errorf("page decompresses to %d bytes, not %d", len(out), len(dst))
		}
		if &out[0] != &dst[0] {
			copy(dst, out)
		}
		return nil
	}
}
