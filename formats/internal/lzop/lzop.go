// Package lzop reads the lzop file format (lzop 1.04, lzop.c and
// lzop.h): a header naming the method, flags and original file, then
// blocks of at most 64 MiB, each LZO1X-compressed or stored, with
// optional Adler-32 or CRC-32 checksums. Every size is bounded before
// anything is allocated, every checksum is verified, and errors name
// byte offsets in the lzop stream, never the data.
package lzop

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"io"
	"slices"

	lzo "github.com/anchore/go-lzo"

	"github.com/imgaudit/imgaudit/formats/model"
)

// magic starts every lzop file.
var magic = [9]byte{0x89, 'L', 'Z', 'O', 0x00, 0x0d, 0x0a, 0x1a, 0x0a}

// IsLZOP reports whether head starts with the lzop magic.
func IsLZOP(head []byte) bool { return bytes.HasPrefix(head, magic[:]) }

// Header flags (lzop.h).
const (
	FlagAdler32D    = 0x00000001 // Adler-32 of each block's uncompressed data
	FlagAdler32C    = 0x00000002 // Adler-32 of each block's compressed data
	FlagStdin       = 0x00000004
	FlagStdout      = 0x00000008
	FlagNameDefault = 0x00000010
	FlagDosish      = 0x00000020
	FlagExtraField  = 0x00000040 // an extra header field follows
	FlagGMTDiff     = 0x00000080
	FlagCRC32D      = 0x00000100 // CRC-32 of each block's uncompressed data
	FlagCRC32C      = 0x00000200 // CRC-32 of each block's compressed data
	FlagMultipart   = 0x00000400
	FlagFilter      = 0x00000800 // data was run through a filter (not supported)
	FlagHeaderCRC32 = 0x00001000 // header checksum is CRC-32, not Adler-32
	FlagPath        = 0x00002000

	flagMask     = 0x00003fff
	flagOSMask   = 0xff000000
	flagCSMask   = 0x00f00000
	flagReserved = ^uint32(flagMask | flagOSMask | flagCSMask)
)

// Methods: all three are LZO1X streams and decompress alike.
const (
	MethodLZO1X1   = 1
	MethodLZO1X115 = 2
	MethodLZO1X999 = 3
)

const (
	// MaxBlockSize is lzop's own MAX_BLOCK_SIZE; it writes 256 KiB blocks.
	MaxBlockSize = 64 << 20
	// maxExtraField bounds the unused extra header field (lzop never
	// writes one); it is read through, never allocated.
	maxExtraField = 1 << 20
	// versionNeededMax is the newest format lzop 1.04 reads (LZOP_VERSION).
	versionNeededMax = 0x1040
)

// ErrCorrupt is wrapped by every error about malformed lzop data.
var ErrCorrupt = errors.New("corrupt lzop data")

// Header is the decoded lzop file header.
type Header struct {
	Version       uint16 // lzop version that wrote the file
	LibVersion    uint16 // LZO library version
	VersionNeeded uint16 // 0 before format 0x0940
	Method        uint8
	Level         uint8
	Flags         uint32
	Mode          uint32
	MTime         uint64 // seconds since the epoch (low and high words)
	Name          string // original file name; "" when compressed from stdin
}

// Block is one block as stored: Data is the LZO1X stream, or the
// uncompressed bytes themselves when Stored. Data is valid until the
// next call on the Reader.
type Block struct {
	Size   int // uncompressed size
	Stored bool
	Data   []byte
}

// Reader decompresses an lzop stream. Concatenated lzop streams read as
// one, as with lzop -d and gzip.
type Reader struct {
	r   *bufio.Reader
	pos int64 // bytes consumed from the underlying reader
	hdr Header

	src, dst []byte // block buffers, grown to the largest block seen
	out      []byte // undelivered part of dst
	err      error  // sticky
	inMember bool   // inside a member (header read, end marker not yet)
	flags    uint32 // flags of the current member
	sums     blockSums
	dataAt   int64 // stream offset of the current block's data
}

// NewReader reads the first header from r and returns a Reader of the
// decompressed data.
func NewReader(r io.Reader) (*Reader, error) {
	z := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	if err := z.readHeader(); err != nil {
		return nil, err
	}
	return z, nil
}

// Header returns the header of the first member.
func (z *Reader) Header() Header { return z.hdr }

// Offset returns how many bytes of the lzop stream have been consumed.
func (z *Reader) Offset() int64 { return z.pos }

func (z *Reader) corrupt(off int64, format string, args ...any) error {
	return fmt.Errorf("lzop: offset %d: %s: %w", off, fmt.Sprintf(format, args...), ErrCorrupt)
}

// read fills b, counting consumed bytes; a short stream is
// io.ErrUnexpectedEOF.
func (z *Reader) read(b []byte, what string) error {
	n, err := io.ReadFull(z.r, b)
	z.pos += int64(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("lzop: offset %d: %s: %w", z.pos, what, err)
	}
	return nil
}

// readHeader parses a member header (lzop.c p_header) at the current
// position, checking its checksum.
func (z *Reader) readHeader() error {
	start := z.pos
	var m [9]byte
	if err := z.read(m[:], "magic"); err != nil {
		return err
	}
	if m != magic {
		return z.corrupt(start, "no lzop magic")
	}
	// The header checksum covers everything after the magic up to it.
	var raw [64]byte
	buf := raw[:0]
	field := func(n int, what string) ([]byte, error) {
		if err := z.read(raw[len(buf):len(buf)+n], what); err != nil {
			return nil, err
		}
		buf = raw[:len(buf)+n]
		return buf[len(buf)-n:], nil
	}
	be := binary.BigEndian
	var h Header
	b, err := field(4, "header")
	if err != nil {
		return err
	}
	h.Version, h.LibVersion = be.Uint16(b), be.Uint16(b[2:])
	if h.Version < 0x0900 {
		return z.corrupt(start+9, "lzop format version 0x%04x is older than 0x0900", h.Version)
	}
	newFormat := h.Version >= 0x0940
	if newFormat {
		if b, err = field(2, "header"); err != nil {
			return err
		}
		h.VersionNeeded = be.Uint16(b)
		if h.VersionNeeded > versionNeededMax {
			return fmt.Errorf("lzop: offset %d: needs lzop version 0x%04x: %w", start+13, h.VersionNeeded, model.ErrUnsupported)
		}
		if h.VersionNeeded < 0x0900 {
			return z.corrupt(start+13, "version needed 0x%04x", h.VersionNeeded)
		}
	}
	methodAt := start + 9 + int64(len(buf))
	if b, err = field(1, "header"); err != nil {
		return err
	}
	h.Method = b[0]
	if newFormat {
		if b, err = field(1, "header"); err != nil {
			return err
		}
		h.Level = b[0]
	}
	if b, err = field(4, "header"); err != nil {
		return err
	}
	h.Flags = be.Uint32(b)
	if h.Flags&FlagFilter != 0 {
		if _, err = field(4, "header"); err != nil {
			return err
		}
	}
	if b, err = field(4, "header"); err != nil {
		return err
	}
	h.Mode = be.Uint32(b)
	if b, err = field(4, "header"); err != nil {
		return err
	}
	h.MTime = uint64(be.Uint32(b))
	if newFormat {
		if b, err = field(4, "header"); err != nil {
			return err
		}
		h.MTime |= uint64(be.Uint32(b)) << 32
	}
	if b, err = field(1, "header"); err != nil {
		return err
	}
	name := make([]byte, b[0])
	if err := z.read(name, "file name"); err != nil {
		return err
	}
	h.Name = string(name)
	var sum [4]byte
	if err := z.read(sum[:], "header checksum"); err != nil {
		return err
	}
	ck := newChecksum(h.Flags&FlagHeaderCRC32 != 0)
	ck.Write(buf)
	ck.Write(name)
	if ck.Sum32() != be.Uint32(sum[:]) {
		return z.corrupt(z.pos-4, "header checksum mismatch")
	}
	switch {
	case h.Method < MethodLZO1X1 || h.Method > MethodLZO1X999:
		return fmt.Errorf("lzop: offset %d: method %d (only LZO1X methods 1-3): %w", methodAt, h.Method, model.ErrUnsupported)
	case h.Level > 9:
		return z.corrupt(methodAt+1, "compression level %d", h.Level)
	case h.Flags&flagReserved != 0:
		return z.corrupt(start+9, "reserved header flags 0x%08x", h.Flags&flagReserved)
	case h.Flags&FlagFilter != 0:
		return fmt.Errorf("lzop: offset %d: filtered data (lzop --filter): %w", start, model.ErrUnsupported)
	}
	if h.Flags&FlagExtraField != 0 {
		at := z.pos
		ck := newChecksum(h.Flags&FlagHeaderCRC32 != 0)
		if err := z.read(sum[:], "extra field"); err != nil {
			return err
		}
		ck.Write(sum[:])
		n := be.Uint32(sum[:])
		if n > maxExtraField {
			return z.corrupt(at, "extra header field of %d bytes", n)
		}
		m, err := io.CopyN(ck, z.r, int64(n))
		z.pos += m
		if err != nil {
			return fmt.Errorf("lzop: offset %d: extra field: %w", z.pos, io.ErrUnexpectedEOF)
		}
		if err := z.read(sum[:], "extra field checksum"); err != nil {
			return err
		}
		if ck.Sum32() != be.Uint32(sum[:]) {
			return z.corrupt(z.pos-4, "extra field checksum mismatch")
		}
	}
	if start == 0 {
		z.hdr = h
	}
	// Later members may differ in flags; blocks follow this member's.
	z.flags = h.Flags
	z.inMember = true
	return nil
}

func newChecksum(crc bool) hash.Hash32 {
	if crc {
		return crc32.NewIEEE()
	}
	return adler32.New()
}

// NextBlock reads the next block as stored, verifying the checksum of
// its stored form; it returns io.EOF after the last block of the last
// member. It cannot be mixed with Read.
func (z *Reader) NextBlock() (Block, error) {
	if z.err != nil {
		return Block{}, z.err
	}
	if len(z.out) > 0 {
		return Block{}, errors.New("lzop: NextBlock called with decompressed data unread")
	}
	b, err := z.nextBlock()
	if err != nil {
		z.err = err
	}
	return b, err
}

// nextBlock reads one block (lzop.c x_decompress); at an end marker it
// goes on with a following member, if any.
func (z *Reader) nextBlock() (Block, error) {
	be := binary.BigEndian
	for {
		if !z.inMember {
			if _, err := z.r.Peek(1); err == io.EOF {
				return Block{}, io.EOF
			}
			if err := z.readHeader(); err != nil {
				return Block{}, err
			}
		}
		at := z.pos
		var w [4]byte
		if err := z.read(w[:], "block size"); err != nil {
			return Block{}, err
		}
		dstLen := be.Uint32(w[:])
		if dstLen == 0 {
			z.inMember = false
			continue
		}
		if dstLen > MaxBlockSize {
			return Block{}, z.corrupt(at, "block of %d bytes (at most %d)", dstLen, MaxBlockSize)
		}
		if err := z.read(w[:], "compressed block size"); err != nil {
			return Block{}, err
		}
		srcLen := be.Uint32(w[:])
		// LZO1X expands a byte at most 255 times (a zero byte in a
		// match length); refuse claims no stream could meet before
		// allocating for them.
		if srcLen == 0 || srcLen > dstLen || (srcLen < dstLen && uint64(dstLen) > 256*uint64(srcLen)+1024) {
			return Block{}, z.corrupt(at+4, "compressed size %d for a block of %d bytes", srcLen, dstLen)
		}
		var sums blockSums
		if err := sums.read(z, srcLen < dstLen); err != nil {
			return Block{}, err
		}
		dataAt := z.pos
		data, err := z.readData(int(srcLen))
		if err != nil {
			return Block{}, err
		}
		if !sums.checkCompressed(data) {
			return Block{}, z.corrupt(dataAt, "checksum mismatch in compressed block")
		}
		b := Block{Size: int(dstLen), Stored: srcLen == dstLen, Data: data}
		if b.Stored && !sums.checkUncompressed(data) {
			return Block{}, z.corrupt(dataAt, "checksum mismatch in stored block")
		}
		z.sums, z.dataAt = sums, dataAt
		return b, nil
	}
}

// readData reads n bytes into z.src, growing it only as the bytes
// arrive, so a truncated stream cannot make it allocate a whole block.
func (z *Reader) readData(n int) ([]byte, error) {
	z.src = z.src[:0]
	for len(z.src) < n {
		chunk := min(n-len(z.src), 1<<20)
		z.src = slices.Grow(z.src, chunk)[:len(z.src)+chunk]
		if err := z.read(z.src[len(z.src)-chunk:], "block data"); err != nil {
			return nil, err
		}
	}
	return z.src, nil
}

// blockSums holds the checksums a block carries, as its member's flags
// ask.
type blockSums struct {
	dAdler, dCRC     uint32 // of the uncompressed data
	cAdler, cCRC     uint32 // of the compressed data
	dAdlerOK, dCRCOK bool   // present
	cAdlerOK, cCRCOK bool
}

func (s *blockSums) read(z *Reader, compressed bool) error {
	be := binary.BigEndian
	var w [4]byte
	get := func(what string) (uint32, error) {
		if err := z.read(w[:], what); err != nil {
			return 0, err
		}
		return be.Uint32(w[:]), nil
	}
	var err error
	f := z.flags
	if f&FlagAdler32D != 0 {
		if s.dAdler, err = get("block checksum"); err != nil {
			return err
		}
		s.dAdlerOK = true
	}
	if f&FlagCRC32D != 0 {
		if s.dCRC, err = get("block checksum"); err != nil {
			return err
		}
		s.dCRCOK = true
	}
	// lzop writes no compressed checksum for a stored block.
	if compressed && f&FlagAdler32C != 0 {
		if s.cAdler, err = get("block checksum"); err != nil {
			return err
		}
		s.cAdlerOK = true
	}
	if compressed && f&FlagCRC32C != 0 {
		if s.cCRC, err = get("block checksum"); err != nil {
			return err
		}
		s.cCRCOK = true
	}
	return nil
}

func (s *blockSums) checkCompressed(b []byte) bool {
	return (!s.cAdlerOK || adler32.Checksum(b) == s.cAdler) && (!s.cCRCOK || crc32.ChecksumIEEE(b) == s.cCRC)
}

func (s *blockSums) checkUncompressed(b []byte) bool {
	return (!s.dAdlerOK || adler32.Checksum(b) == s.dAdler) && (!s.dCRCOK || crc32.ChecksumIEEE(b) == s.dCRC)
}

// Read implements io.Reader.
func (z *Reader) Read(p []byte) (int, error) {
	for len(z.out) == 0 {
		if z.err != nil {
			return 0, z.err
		}
		if err := z.fill(); err != nil {
			z.err = err
		}
	}
	n := copy(p, z.out)
	z.out = z.out[n:]
	return n, nil
}

// fill decodes the next block into z.out.
func (z *Reader) fill() error {
	b, err := z.nextBlock()
	if err != nil {
		return err
	}
	if b.Stored {
		z.out = b.Data
		return nil
	}
	if cap(z.dst) < b.Size {
		z.dst = make([]byte, b.Size)
	}
	dst := z.dst[:b.Size]
	n, err := lzo.Decompress(b.Data, dst)
	if err != nil {
		return z.corrupt(z.dataAt, "LZO1X block (%d bytes, %d decoded of %d): %v", len(b.Data), n, b.Size, err)
	}
	if n != b.Size {
		return z.corrupt(z.dataAt, "LZO1X block decodes to %d bytes, not %d", n, b.Size)
	}
	if !z.sums.checkUncompressed(dst) {
		return z.corrupt(z.dataAt, "checksum mismatch in decompressed block")
	}
	z.out = dst
	return nil
}
