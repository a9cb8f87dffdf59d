package btrfs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	lzo "github.com/anchore/go-lzo"
	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// This file reads btrfs's compressed extents (its transparent compression,
// which Fedora turns on for its root): zlib, LZO and zstd.

// maxExtentBytes bounds a compressed extent, stored and decoded: btrfs
// compresses at most 128 KiB of a file into one extent
// (BTRFS_MAX_UNCOMPRESSED) and keeps the result only when it is smaller.
const maxExtentBytes = 128 << 10

// maxZstdWindow bounds the zstd window a compressed extent may ask for:
// btrfs writes frames with windows of at most 128 KiB (window log 17).
const maxZstdWindow = 1 << 20

// Sector is the unit of btrfs's LZO framing: each segment decodes to at
// most one sector, and a segment's header never crosses a sector
// boundary. btrfs's sector size is 4 KiB on x86 and on most arm64
// systems; a filesystem with another one reads as corrupt LZO.
const Sector = 4096

// maxLZOSegment is the largest segment btrfs writes:
// lzo1x_worst_compress(4096).
const maxLZOSegment = Sector + Sector/16 + 64 + 3

// ExtentMemory is what NewExtentReader's decoder holds at most, besides
// what it reads from: a zstd window, or an LZO segment and its sector.
func ExtentMemory(codec string) int64 {
	switch codec {
	case "zstd":
		return maxZstdWindow
	case "lzo":
		return maxLZOSegment + Sector
	}
	return 160 << 10 // decode/inflate's reader
}

// ErrLZOFraming is corrupt LZO framing in a compressed extent.
var ErrLZOFraming = errors.New("btrfs: corrupt lzo extent framing")

// NewExtentReader reads what the compressed extent stream in r decodes to:
// for "zlib" one zlib stream, for "zstd" one zstd frame, for "lzo" btrfs's
// own framing of LZO1X segments (fs/btrfs/lzo.c).
func NewExtentReader(codec string, r io.Reader) (io.ReadCloser, error) {
	switch codec {
	case "zlib":
		br, ok := r.(*bufio.Reader)
		if !ok {
			br = bufio.NewReaderSize(r, 32<<10)
		}
		return inflate.NewZlibReader(br)
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, err
		}
		return &zstdExtent{d: d}, nil
	case "lzo":
		return &lzoReader{r: r}, nil
	}
	return nil, fmt.Errorf("btrfs: compression %q", codec)
}

// zstdExtent ends the extent at its frame's end: the sector's padding
// after it is no frame.
type zstdExtent struct {
	d   *zstd.Decoder
	out int64
}

func (z *zstdExtent) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	z.out += int64(n)
	if errors.Is(err, zstd.ErrMagicMismatch) && z.out > 0 {
		err = io.EOF
	}
	return n, err
}

func (z *zstdExtent) Close() error { z.d.Close(); return nil }

// lzoReader decodes btrfs's LZO framing: a 32-bit little-endian total
// length (header included), then segments, each a 32-bit length and that
// many bytes of LZO1X that decode to at most a sector; where fewer than 4
// bytes are left in a sector, the next header starts at the next sector.
type lzoReader struct {
	r        io.Reader
	at       int64 // bytes of the stream read
	total    int64 // from the header; 0 until read
	seg, out []byte
	n, pos   int // out[pos:n] is yet to be read
}

func (l *lzoReader) Read(p []byte) (int, error) {
	for l.pos == l.n {
		if err := l.next(); err != nil {
			return 0, err
		}
	}
	k := copy(p, l.out[l.pos:l.n])
	l.pos += k
	return k, nil
}

func (l *lzoReader) Close() error { return nil }

func (l *lzoReader) read(b []byte) error {
	k, err := io.ReadFull(l.r, b)
	l.at += int64(k)
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func (l *lzoReader) u32() (int64, error) {
	var b [4]byte
	if err := l.read(b[:]); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint32(b[:])), nil
}

// next decodes the next segment, or returns io.EOF past the last.
func (l *lzoReader) next() error {
	if l.total == 0 {
		t, err := l.u32()
		if err != nil {
			return err
		}
		if t < 8 {
			return fmt.Errorf("%w: total length %d", ErrLZOFraming, t)
		}
		l.total = t
		l.seg, l.out = make([]byte, maxLZOSegment), make([]byte, Sector)
	}
	if left := Sector - l.at%Sector; left < 4 {
		if l.at+left >= l.total {
			return io.EOF
		}
		if err := l.read(l.seg[:left]); err != nil {
			return err
		}
	}
	if l.at+4 > l.total {
		return io.EOF
	}
	n, err := l.u32()
	if err != nil {
		return err
	}
	if n == 0 || n > maxLZOSegment || l.at+n > l.total {
		return fmt.Errorf("%w: segment of %d bytes at offset %d", ErrLZOFraming, n, l.at-4)
	}
	if err := l.read(l.seg[:n]); err != nil {
		return err
	}
	k, err := lzo.Decompress(l.seg[:n], l.out)
	if err != nil && !errors.Is(err, lzo.ErrInputNotConsumed) {
		return fmt.Errorf("%w: segment at offset %d: %v", ErrLZOFraming, l.at-n-4, err)
	}
	l.n, l.pos = k, 0
	return nil
}

// decodeExtent reads the stored stream of ref and decodes it into dst
// (maxExtentBytes), returning the decoded length.
func (f *FS) decodeExtent(ref compressedRef, dst []byte) (int, error) {
	if ref.off < 0 {
		return 0, fmt.Errorf("compressed extent not in one piece, or over %d bytes: %w", maxExtentBytes, fsys.ErrCompressed)
	}
	src := io.NewSectionReader(f.r, ref.off, ref.len)
	dec, err := NewExtentReader(ref.codec, bufio.NewReaderSize(src, int(min(ref.len, 32<<10))))
	if err != nil {
		return 0, fmt.Errorf("%s extent at %d: %w", ref.codec, ref.off, err)
	}
	defer dec.Close()
	n, err := io.ReadFull(dec, dst)
	switch {
	case err == nil:
		// Full: a stream that decodes past 128 KiB is corrupt.
		if k, _ := dec.Read(make([]byte, 1)); k > 0 {
			return 0, fmt.Errorf("%s extent at %d: decodes past %d bytes: %w", ref.codec, ref.off, len(dst), errCorrupt)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The stream ended: what it decoded is the extent.
	default:
		return 0, fmt.Errorf("%s extent at %d: %w", ref.codec, ref.off, err)
	}
	return n, nil
}

// compressedFile is a file with compressed extents: the uncompressed runs
// read through a RunFile, each compressed extent item decoded whole (the
// last one is kept, since reads go forward).
type compressedFile struct {
	f     *FS
	plain *fsys.RunFile // the runs that are not compressed
	refs  []compressedRef

	mu      sync.Mutex
	lastRef int // refs index of buf's extent, -1 for none
	buf     []byte
	bufLen  int
}

func (c *compressedFile) Size() int64 { return c.plain.Size() }

func (c *compressedFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.plain.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	end := off + int64(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	// refs are in file order (the tree's key order): the first that ends
	// past off, then on while they start before end.
	first, _ := slices.BinarySearchFunc(c.refs, off, func(r compressedRef, t int64) int {
		if r.fileOff+r.n <= t {
			return -1
		}
		return 1
	})
	for i := first; i < len(c.refs) && c.refs[i].fileOff < end; i++ {
		r := c.refs[i]
		s, e := max(off, r.fileOff), min(end, r.fileOff+r.n)
		if s >= e {
			continue
		}
		if c.lastRef < 0 || c.refs[c.lastRef].off != r.off || c.refs[c.lastRef].len != r.len {
			if c.buf == nil {
				c.buf = make([]byte, maxExtentBytes)
			}
			c.lastRef = -1
			k, derr := c.f.decodeExtent(r, c.buf)
			if derr != nil {
				return 0, fmt.Errorf("btrfs: %s: file bytes %d-%d: %w", c.f.name, r.fileOff, r.fileOff+r.n, derr)
			}
			c.lastRef, c.bufLen = i, k
		}
		// Decoded bytes past the stream's end read as zeros, as the
		// kernel gives them (a last extent shorter than its item).
		from, to := r.skip+(s-r.fileOff), r.skip+(e-r.fileOff)
		dst := p[s-off : e-off]
		clear(dst)
		if from < int64(c.bufLen) {
			copy(dst, c.buf[from:min(to, int64(c.bufLen))])
		}
	}
	return n, err
}
