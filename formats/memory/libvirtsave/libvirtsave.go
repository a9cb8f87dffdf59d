// Package libvirtsave reads libvirt QEMU save files (`virsh save`,
// managedsave, memory snapshots): a 92-byte header, the domain XML, then a
// QEMU migration stream, raw or compressed (libvirt's qemu_saveimage.h).
package libvirtsave

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/lzop"
	"github.com/imgaudit/imgaudit/internal/spool"

	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/model"
)

const (
	// Magic is written once the save completed; PartialMagic while it runs.
	Magic        = "LibvirtQemudSave"
	PartialMagic = "LibvirtQemudPart"
	HeaderSize   = 92
	maxXML       = 16 << 20
	// maxXZDict bounds the xz decoder's dictionary (xz -9 and -9e use
	// 64 MiB; the format allows up to 4 GiB).
	maxXZDict = 64 << 20
	// maxZstdWindow bounds the zstd decoder's window: 128 MiB, the
	// default memory limit of the zstd command libvirt restores through
	// (zstd -d refuses a frame that needs more without --long or
	// --memory); zstd -19 uses 8 MiB. A hostile frame header may declare
	// up to 3.75 TB.
	maxZstdWindow = 128 << 20
	// minXZDict is lzma.MinDictCap: ulikunitz/xz treats DictCap as a
	// floor under each block's own dictionary size, so the smallest
	// value lets a block's header decide (within maxXZDict, checked by
	// checkXZDict).
	minXZDict = 4096
)

// Payload compression formats (virQEMUSaveFormat).
const (
	FormatRaw = iota
	FormatGzip
	FormatBzip2
	FormatXZ
	FormatLzop
	FormatZstd
)

var formatNames = []string{"raw", "gzip", "bzip2", "xz", "lzop", "zstd"}

// Header is the fixed header.
type Header struct {
	Partial      bool
	BigEndian    bool
	Version      uint32
	DataLen      uint32
	WasRunning   uint32
	Format       uint32
	CookieOffset uint32
}

// FormatName names the payload compression.
func (h *Header) FormatName() string {
	if int(h.Format) < len(formatNames) {
		return formatNames[h.Format]
	}
	return fmt.Sprintf("format-%d", h.Format)
}

// ParseHeader decodes the header. libvirt writes it in host byte order
// and byte-swaps on load when the version looks too large; so do we.
func ParseHeader(name string, b []byte) (*Header, error) {
	if len(b) < HeaderSize {
		return nil, model.Errorf(name, 0, "libvirt save header truncated")
	}
	h := &Header{}
	switch string(b[:16]) {
	case Magic:
	case PartialMagic:
		h.Partial = true
	default:
		return nil, model.Errorf(name, 0, "not a libvirt save file")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if v := bo.Uint32(b[16:]); v == 0 || v > 0xffff {
		bo, h.BigEndian = binary.BigEndian, true
	}
	h.Version = bo.Uint32(b[16:])
	h.DataLen = bo.Uint32(b[20:])
	h.WasRunning = bo.Uint32(b[24:])
	h.Format = bo.Uint32(b[28:])
	h.CookieOffset = bo.Uint32(b[32:])
	if h.Version < 1 || h.Version > 3 {
		return nil, model.Wrapf(model.ErrUnsupported, name, 16, "libvirt save version %d", h.Version)
	}
	if h.DataLen == 0 || h.DataLen > maxXML {
		return nil, model.Errorf(name, 20, "domain XML of %d bytes", h.DataLen)
	}
	if h.CookieOffset > h.DataLen {
		return nil, model.Errorf(name, 32, "cookie offset %d past the XML (%d bytes)", h.CookieOffset, h.DataLen)
	}
	return h, nil
}

// Probe reports whether head starts with a libvirt save magic.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	return len(head) >= 16 && (string(head[:16]) == Magic || string(head[:16]) == PartialMagic)
}

// Domain holds what the XML says about the guest.
type Domain struct {
	Name string `xml:"name"`
	UUID string `xml:"uuid"`
}

// Limits bound the temporary copy of a compressed payload.
type Limits struct {
	TempDir    string // "" for os.TempDir()
	MaxPayload int64  // decompressed bytes; 0 for DefaultMaxPayload
}

// DefaultMaxPayload caps a decompressed payload (guest RAM is far smaller
// once zero pages are folded by the stream).
const DefaultMaxPayload = int64(64) << 30

// Open opens a libvirt save file with default Limits.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return OpenWith(ctx, path, opts, Limits{})
}

// OpenWith opens the libvirt save file at path (see NewWith).
func OpenWith(ctx context.Context, path string, opts model.Options, lim Limits) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "libvirtsave", path, opts, func(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
		return NewWith(ctx, r, size, name, opts, lim)
	})
}

// New reads the libvirt save file that r holds with default Limits.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	return NewWith(ctx, r, size, name, opts, Limits{})
}

// NewWith reads the libvirt save file that f holds, size bytes, named
// path: one memory view of guest-physical RAM and the extra views of the
// migration stream (see qemustream.Stream.Views).
func NewWith(ctx context.Context, f io.ReaderAt, size int64, path string, _ model.Options, lim Limits) (*model.Image, error) {
	hb := make([]byte, HeaderSize)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, model.Wrapf(err, path, 0, "read libvirt save header")
	}
	h, err := ParseHeader(path, hb)
	if err != nil {
		return nil, err
	}
	payload := int64(HeaderSize) + int64(h.DataLen)
	if payload > size {
		return nil, model.Errorf(path, HeaderSize, "domain XML (%d bytes) runs past the end of the file", h.DataLen)
	}
	xb := make([]byte, h.DataLen)
	if _, err := f.ReadAt(xb, HeaderSize); err != nil {
		return nil, model.Wrapf(err, path, HeaderSize, "read domain XML")
	}
	im := &model.Image{Path: path, Format: "libvirt-save", Attrs: map[string]string{
		"version": fmt.Sprint(h.Version), "compression": h.FormatName(), "was_running": fmt.Sprint(h.WasRunning),
	}}
	notes := []string{}
	if h.Partial {
		notes = append(notes, "incomplete save (LibvirtQemudPart): libvirt had not finished writing this file")
		im.Attrs["partial"] = "true"
	}
	var dom Domain
	xmlEnd := bytes.IndexByte(xb, 0)
	if h.CookieOffset > 0 && (xmlEnd < 0 || int(h.CookieOffset) < xmlEnd) {
		xmlEnd = int(h.CookieOffset)
	}
	if xmlEnd < 0 {
		xmlEnd = len(xb)
	}
	if err := xml.Unmarshal(xb[:xmlEnd], &dom); err != nil {
		im.Errors = append(im.Errors, model.Wrapf(err, path, HeaderSize, "domain XML"))
	} else {
		im.Attrs["domain_name"] = strings.TrimSpace(dom.Name)
		im.Attrs["domain_uuid"] = strings.TrimSpace(dom.UUID)
	}

	var s *qemustream.Stream
	switch h.Format {
	case FormatRaw:
		sr := io.NewSectionReader(f, payload, size-payload)
		loc := func(off, n int64) (string, int64, bool) { return path, payload + off, true }
		s, err = qemustream.ParseWith(ctx, path, sr, size-payload, qemustream.Config{Locate: loc})
		if err != nil {
			return nil, err
		}
	case FormatGzip, FormatBzip2, FormatXZ, FormatLzop, FormatZstd:
		tmp, n, err := decompress(ctx, path, f, payload, size-payload, h, lim)
		if err != nil {
			return nil, err
		}
		im.AddCloser(tmp)
		// Bytes in the temp file are not host bytes of the image.
		loc := func(off, n int64) (string, int64, bool) { return "", 0, false }
		s, err = qemustream.ParseWith(ctx, path, tmp, n, qemustream.Config{Locate: loc})
		if err != nil {
			tmp.Close()
			return nil, err
		}
		notes = append(notes, fmt.Sprintf("%s payload decompressed once (%d bytes) into an unlinked temporary file for random access; extents are derived", h.FormatName(), n))
	default:
		return nil, model.Wrapf(model.ErrUnsupported, path, 28, "libvirt save payload compressed with %s", h.FormatName())
	}
	im.VirtualSize = s.Physical.Size()
	im.Views = s.Views(path, "")
	im.Views[0].Notes = append(im.Views[0].Notes, notes...)
	for k, v := range im.Attrs {
		if strings.HasPrefix(k, "domain_") {
			im.Views[0].Attrs[k] = v
		}
	}
	for k, v := range s.Attrs() {
		im.Attrs[k] = v
	}
	return im, nil
}

// decompress writes the payload to an unlinked temp file, at most
// lim.MaxPayload bytes.
func decompress(ctx context.Context, path string, f io.ReaderAt, off, n int64, h *Header, lim Limits) (*os.File, int64, error) {
	src := io.NewSectionReader(f, off, n)
	var rd io.Reader
	switch h.Format {
	case FormatGzip:
		zr, err := inflate.NewMultiGzipReader(bufio.NewReaderSize(src, 1<<20))
		if err != nil {
			return nil, 0, model.Wrapf(err, path, off, "gzip payload")
		}
		defer zr.Close()
		rd = zr
	case FormatBzip2:
		rd = bzip2.NewReader(src)
	case FormatXZ:
		if err := checkXZDict(src, n, maxXZDict); err != nil {
			return nil, 0, model.Wrapf(err, path, off, "xz payload")
		}
		zr, err := xz.ReaderConfig{DictCap: minXZDict}.NewReader(src)
		if err != nil {
			return nil, 0, model.Wrapf(err, path, off, "xz payload")
		}
		rd = zr
	case FormatLzop:
		zr, err := lzop.NewReader(src)
		if err != nil {
			return nil, 0, model.Wrapf(err, path, off, "lzop payload")
		}
		rd = zr
	case FormatZstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, 0, model.Wrapf(err, path, off, "zstd payload")
		}
		defer zr.Close()
		rd = zr
	}
	max := lim.MaxPayload
	if max <= 0 {
		max = DefaultMaxPayload
	}
	tmp, w, err := spool.File(ctx, lim.TempDir, "imgaudit-libvirt-payload-*", rd, max)
	if tmp == nil {
		return nil, 0, fmt.Errorf("libvirtsave: %w", err)
	}
	// A partial save (LibvirtQemudPart) keeps what could be decompressed.
	if err != nil && !(h.Partial && w > 0 && !errors.Is(err, context.Canceled)) {
		tmp.Close()
		return nil, 0, model.Wrapf(err, path, off, "decompress %s payload", h.FormatName())
	}
	return tmp, w, nil
}
