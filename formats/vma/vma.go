// Package vma reads Proxmox VE backup archives (VMA, written by vzdump
// through pve-qemu's vma-writer.c), plain or compressed with zstd, gzip or
// lzop.
//
// An archive is a header (UUID, creation time, configuration files, device
// list) followed by extents: a 512-byte header with 59 blockinfo entries
// (cluster number, device id, 16-bit mask), then the 4 KiB blocks whose
// mask bits are set. Each drive becomes a view of kind "backing" named
// "backup <ctime> <device>", each configuration file a small "backing" view
// "config:<name>", and a "vmstate" device memory views.
//
// Nothing copies the whole archive. A plain .vma is indexed in one pass
// that reads only the extent headers, and reads are served from the
// archive itself (extents carry exact host offsets). A compressed archive
// cannot be read at random, so one streaming pass decompresses it and
// spools only the stored blocks – no headers, no zero blocks – to an
// unlinked temporary file, bounded by Config.SpoolLimit and released on
// Close; its extents are SourceDerived, anchored at offsets of the
// decompressed stream.
package vma

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/lzop"
	"github.com/imgaudit/imgaudit/formats/memory"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Compression magics (RFC 8878 frame magic, RFC 1952 ID1/ID2); lzop's is
// lzop.IsLZOP.
var (
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicGzip = []byte{0x1f, 0x8b}
)

// DefaultSpoolLimit bounds the temporary file that holds the stored blocks
// of a compressed archive.
const DefaultSpoolLimit = 64 << 30

// maxZstdWindow bounds the zstd decoder's memory (vzdump uses the default
// window; `zstd --long` goes up to 128 MiB).
const maxZstdWindow = 256 << 20

// Config tunes how compressed archives are read.
type Config struct {
	SpoolDir   string // where the spool file goes; "" means os.TempDir()
	SpoolLimit int64  // 0 means DefaultSpoolLimit
}

// Probe reports whether head starts an uncompressed VMA archive (version 1).
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return len(head) >= 8 && bytes.Equal(head[:4], magicVMA) && binary.BigEndian.Uint32(head[4:]) == 1
}

// ProbeName reports whether a file is a VMA archive, plain or compressed:
// compressed archives are recognised by their name (".vma.zst", ".vma.gz",
// ".vma.lzo", as vzdump writes them) and the compressor's magic.
func ProbeName(name string, head []byte) bool {
	if Probe(head, nil, 0) {
		return true
	}
	switch compressionOf(name, head) {
	case "zstd", "gzip", "lzo":
		return true
	}
	return false
}

// compressionOf names the compressor of a file: "" for a plain archive or
// something else, "zstd", "gzip" or "lzo" when both name and magic agree.
func compressionOf(name string, head []byte) string {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".vma.zst") && bytes.HasPrefix(head, magicZstd):
		return "zstd"
	case strings.HasSuffix(lower, ".vma.gz") && bytes.HasPrefix(head, magicGzip):
		return "gzip"
	case strings.HasSuffix(lower, ".vma.lzo") && lzop.IsLZOP(head):
		return "lzo"
	}
	return ""
}

// Open opens a VMA archive (.vma, .vma.zst, .vma.gz, .vma.lzo) with the default
// Config.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return OpenWith(ctx, path, opts, Config{})
}

// OpenWith opens the VMA archive at path (see NewWith).
func OpenWith(ctx context.Context, path string, opts model.Options, cfg Config) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "vma", path, opts, func(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
		return NewWith(ctx, r, size, name, opts, cfg)
	})
}

// New reads the VMA archive that r holds with the default Config.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	return NewWith(ctx, r, size, name, opts, Config{})
}

// NewWith reads the VMA archive that r holds, size bytes; name names it,
// and its ending tells a compressed archive (".vma.zst", ...). Header
// errors are fatal; an archive that ends early or has a bad extent keeps
// the blocks read before the problem, with the problem in Image.Errors (an
// interrupted vzdump leaves such files, and their blocks are still worth
// scanning).
func NewWith(ctx context.Context, r io.ReaderAt, size int64, name string, _ model.Options, cfg Config) (*model.Image, error) {
	if cfg.SpoolLimit <= 0 {
		cfg.SpoolLimit = DefaultSpoolLimit
	}
	head := make([]byte, 16)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	switch comp := compressionOf(name, head); {
	case Probe(head, nil, 0):
		return openPlain(ctx, name, r, size)
	case len(head) >= 8 && bytes.Equal(head[:4], magicVMA):
		return nil, model.Wrapf(model.ErrUnsupported, name, 4, "VMA version %d (only version 1 exists)", binary.BigEndian.Uint32(head[4:]))
	case comp != "":
		return openStream(ctx, name, io.NewSectionReader(r, 0, size), comp, cfg)
	}
	return nil, model.Errorf(name, 0, "not a VMA archive (no VMA magic, and no zstd/gzip/lzop magic with a .vma.zst/.vma.gz/.vma.lzo name)")
}

// openPlain indexes an uncompressed archive by reading its extent headers
// only, and serves reads from the file.
func openPlain(ctx context.Context, path string, f io.ReaderAt, size int64) (*model.Image, error) {
	hb := make([]byte, fixedHeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, model.Wrapf(err, path, 0, "read VMA header")
	}
	hsize, err := HeaderSize(hb)
	if err != nil {
		return nil, model.Wrapf(err, path, 0, "VMA header")
	}
	if int64(hsize) > size {
		return nil, model.Errorf(path, size, "VMA header_size %d past the end of the file", hsize)
	}
	hb = make([]byte, hsize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, model.Wrapf(err, path, 0, "read VMA header")
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, headerFormatError(path, err)
	}
	ix := newIndex(h)
	var errs []error
	eb := make([]byte, extentHeaderSize)
	pos := int64(h.Size)
	for pos < size {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if size-pos < extentHeaderSize {
			errs = append(errs, model.Errorf(path, pos, "%d trailing bytes, too short for an extent header", size-pos))
			break
		}
		if _, err := f.ReadAt(eb, pos); err != nil {
			errs = append(errs, model.Wrapf(err, path, pos, "read extent header"))
			break
		}
		eh, err := ParseExtentHeader(eb, h.UUID)
		if err == nil {
			err = ix.check(eh)
		}
		if err != nil {
			errs = append(errs, model.Wrapf(err, path, pos, "extent"))
			break
		}
		data := pos + extentHeaderSize
		ix.commit(eh, data, data, size-data)
		if size-data < eh.DataSize() {
			errs = append(errs, model.Errorf(path, pos, "archive truncated: extent holds %d data bytes, %d present", eh.DataSize(), size-data))
			break
		}
		pos = data + eh.DataSize()
	}
	errs = append(errs, wrapAll(path, ix.finish())...)
	im := build(ctx, path, ix, f, model.SourceData, "", nil)
	im.Errors = append(im.Errors, errs...)
	return im, nil
}

// openStream decompresses an archive once, spooling its stored blocks.
func openStream(ctx context.Context, path string, f io.Reader, comp string, cfg Config) (*model.Image, error) {
	var dec io.Reader
	switch comp {
	case "zstd":
		zr, err := zstd.NewReader(bufio.NewReaderSize(f, 1<<20), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, model.Wrapf(err, path, 0, "zstd")
		}
		defer zr.Close()
		dec = zr
	case "gzip":
		gr, err := inflate.NewMultiGzipReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return nil, model.Wrapf(err, path, 0, "gzip")
		}
		defer gr.Close()
		dec = gr
	case "lzo":
		lr, err := lzop.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return nil, model.Wrapf(err, path, 0, "lzop")
		}
		dec = lr
	}
	r := bufio.NewReaderSize(dec, 1<<20)

	// Offsets below are in the decompressed stream.
	hb := make([]byte, fixedHeaderSize)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, model.Wrapf(err, path, 0, "read VMA header from the %s stream", comp)
	}
	hsize, err := HeaderSize(hb)
	if err != nil {
		return nil, model.Wrapf(err, path, 0, "VMA header in the %s stream", comp)
	}
	hb = append(hb, make([]byte, hsize-fixedHeaderSize)...)
	if _, err := io.ReadFull(r, hb[fixedHeaderSize:]); err != nil {
		return nil, model.Wrapf(err, path, fixedHeaderSize, "read VMA header from the %s stream", comp)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, headerFormatError(path, err)
	}

	spool, err := os.CreateTemp(cfg.SpoolDir, "imgaudit-vma-spool-*")
	if err != nil {
		return nil, fmt.Errorf("vma: %s: spool file: %w", path, err)
	}
	// Unlink at once: the blocks vanish with the last descriptor, even if
	// imgaudit is killed.
	os.Remove(spool.Name())
	w := bufio.NewWriterSize(spool, 1<<20)

	ix := newIndex(h)
	var errs []error
	eb := make([]byte, extentHeaderSize)
	pos := int64(h.Size)
	var spooled int64
	for {
		if err := ctx.Err(); err != nil {
			spool.Close()
			return nil, err
		}
		n, err := io.ReadFull(r, eb)
		if err == io.EOF {
			break
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				errs = append(errs, model.Errorf(path, -1, "decompressed stream offset %d: %d trailing bytes, too short for an extent header", pos, n))
			} else {
				errs = append(errs, model.Wrapf(err, path, -1, "decompressed stream offset %d: read extent header", pos))
			}
			break
		}
		eh, err := ParseExtentHeader(eb, h.UUID)
		if err == nil {
			err = ix.check(eh)
		}
		if err != nil {
			errs = append(errs, model.Wrapf(err, path, -1, "decompressed stream offset %d: extent", pos))
			break
		}
		if spooled+eh.DataSize() > cfg.SpoolLimit {
			errs = append(errs, model.Errorf(path, -1, "decompressed stream offset %d: spool limit of %d bytes reached; later blocks not read", pos, cfg.SpoolLimit))
			break
		}
		data := pos + extentHeaderSize
		// Hide w's ReadFrom: bufio.Writer keeps a read error from it as
		// its own, and the spool could then not be flushed.
		m, err := io.CopyN(struct{ io.Writer }{w}, r, eh.DataSize())
		ix.commit(eh, data, spooled, m)
		spooled += m
		pos = data + m
		if err != nil {
			if err == io.EOF {
				errs = append(errs, model.Errorf(path, -1, "decompressed stream offset %d: archive truncated: extent holds %d data bytes, %d present", data-extentHeaderSize, eh.DataSize(), m))
			} else {
				errs = append(errs, model.Wrapf(err, path, -1, "decompressed stream offset %d: extent data", data))
			}
			break
		}
	}
	if err := w.Flush(); err != nil {
		spool.Close()
		return nil, fmt.Errorf("vma: %s: write spool: %w", path, err)
	}
	errs = append(errs, wrapAll(path, ix.finish())...)
	note := fmt.Sprintf("%s-compressed archive: read as one stream; its %d stored bytes were spooled to an unlinked temporary file (limit %d bytes) for random access; extent offsets are offsets in the decompressed archive", comp, spooled, cfg.SpoolLimit)
	im := build(ctx, path, ix, spool, model.SourceDerived, comp, []string{note})
	im.Attrs["spooled_bytes"] = fmt.Sprint(spooled)
	im.Errors = append(im.Errors, errs...)
	im.AddCloser(spool)
	return im, nil
}

func headerFormatError(path string, err error) error {
	var he *headerError
	if errors.As(err, &he) {
		return model.Errorf(path, he.off, "VMA header: %s", he.msg)
	}
	return model.Wrapf(err, path, 0, "VMA header")
}

func wrapAll(path string, errs []error) []error {
	for i, e := range errs {
		errs[i] = model.Wrapf(e, path, -1, "VMA index")
	}
	return errs
}

// build turns an index into an Image. r serves stored blocks at clusterRec
// offsets; comp is "" for a plain archive.
func build(ctx context.Context, path string, ix *index, r io.ReaderAt, src model.Source, comp string, notes []string) *model.Image {
	h := ix.hdr
	stamp := h.CTime.Format(time.RFC3339)
	im := &model.Image{Path: path, Format: "vma", Attrs: map[string]string{
		"uuid":    h.UUIDString(),
		"ctime":   stamp,
		"devices": fmt.Sprint(len(h.Devices)),
		"configs": fmt.Sprint(len(h.Configs)),
	}}
	if comp != "" {
		im.Attrs["compression"] = comp
	}
	for _, c := range h.Configs {
		if len(c.Data) == 0 {
			continue
		}
		var d model.Disk
		ext := model.ExtentList{{Offset: 0, Length: int64(len(c.Data)), Source: src, File: path, FileOffset: c.Offset, FileLength: int64(len(c.Data))}}
		if comp == "" {
			d = &model.FileDisk{R: r, Name: path, Base: c.Offset, Len: int64(len(c.Data)), Allocd: ext}
		} else {
			d = &bytesDisk{b: bytes.Clone(c.Data), ext: ext}
		}
		name := "config:" + c.Name
		im.Views = append(im.Views, model.View{ID: model.ViewID(path, model.KindBacking, name), Kind: model.KindBacking,
			Name: name, Created: h.CTime, Disk: d,
			Notes: append([]string{"configuration file stored in the backup header"}, notes...),
			Attrs: map[string]string{"vma_uuid": h.UUIDString()}})
	}
	for _, dev := range h.Devices {
		di := ix.devs[dev.ID]
		size := dev.Size
		if di.vmstate && len(di.recs) > 0 {
			// vmstate clusters are not bounded by the registered size.
			size = max(size, (int64(di.recs[len(di.recs)-1].num)+1)*clusterSize)
		}
		d := &deviceDisk{r: r, file: path, src: src, size: size, recs: di.recs}
		if dev.Size > im.VirtualSize && !di.vmstate {
			im.VirtualSize = dev.Size
		}
		name := "backup " + stamp + " " + dev.Name
		attrs := map[string]string{"vma_uuid": h.UUIDString(), "device_id": fmt.Sprint(dev.ID),
			"device_size": fmt.Sprint(dev.Size), "stored_bytes": fmt.Sprint(d.storedBytes())}
		vnotes := append([]string{fmt.Sprintf("Proxmox VMA backup of device %q taken %s; blocks the archive does not store read as zeros", dev.Name, stamp)}, notes...)
		if di.vmstate {
			views, err := memory.ViewsFromVMState(ctx, path, name, d)
			if err == nil && len(views) > 0 {
				for i := range views {
					views[i].Created = h.CTime
					views[i].Notes = append(cloneStrings(vnotes), views[i].Notes...)
					if views[i].Attrs == nil {
						views[i].Attrs = map[string]string{}
					}
					for k, v := range attrs {
						views[i].Attrs[k] = v
					}
				}
				im.Views = append(im.Views, views...)
				continue
			}
			im.Views = append(im.Views, model.View{ID: model.ViewID(path, model.KindMemory, name), Kind: model.KindMemory,
				Name: name, Created: h.CTime, Disk: d, Attrs: attrs,
				Notes: append(vnotes, fmt.Sprintf("saved VM state not parsed, scanned as raw bytes: %v", err))})
			continue
		}
		im.Views = append(im.Views, model.View{ID: model.ViewID(path, model.KindBacking, name), Kind: model.KindBacking,
			Name: name, Created: h.CTime, Disk: d, Notes: vnotes, Attrs: attrs})
	}
	return im
}

func cloneStrings(s []string) []string { return append([]string(nil), s...) }
