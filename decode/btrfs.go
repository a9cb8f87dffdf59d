package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	lzo "github.com/anchore/go-lzo"
	"github.com/klauspost/compress/zlib"
)

// Streams that btrfs stores for a compressed extent (its transparent
// compression, which Fedora turns on by default): the file's bytes are
// only in them. They have no magic of their own; the filesystem's extent
// records say which is which, so they are only decoded as a container of
// that codec (Options.Codec).
const (
	BtrfsZlib = "btrfs-zlib" // one zlib stream (RFC 1950)
	BtrfsLZO  = "btrfs-lzo"  // btrfs's own framing of LZO1X segments
	BtrfsZstd = "btrfs-zstd" // one zstd frame
)

// Magicless reports codecs that have no magic number: a container of one
// is only decoded as that codec (Options.Codec), never found by Sniff.
func Magicless(codec string) bool {
	switch codec {
	case Deflate, BtrfsZlib, BtrfsLZO, BtrfsZstd:
		return true
	}
	return false
}

// btrfsSector is the unit of btrfs's LZO framing: each segment decodes to
// at most one sector, and a segment's header never crosses a sector
// boundary. btrfs's sector size is 4 KiB on x86 and on most arm64
// systems; a filesystem made with another one decodes as corrupt after
// its first sector.
const btrfsSector = 4096

// btrfsLZOMaxSegment is the largest segment btrfs writes:
// lzo1x_worst_compress(4096).
const btrfsLZOMaxSegment = btrfsSector + btrfsSector/16 + 64 + 3

// memBtrfsLZO is what the LZO reader holds: a segment and its sector.
const memBtrfsLZO = btrfsLZOMaxSegment + btrfsSector

// openBtrfs starts the decoder of a btrfs compressed extent's stream.
func (w *walker) openBtrfs(kind string, s *src) (r io.Reader, cost int64, exact bool, err error) {
	switch kind {
	case BtrfsZlib:
		z, err := zlib.NewReader(s.br)
		if err != nil {
			return nil, 0, false, err
		}
		return z, 0, false, nil
	case BtrfsZstd:
		return w.open(Zstd, s)
	case BtrfsLZO:
		if w.mem+memBtrfsLZO > w.lim.MaxDecoderMemory {
			return nil, 0, false, &capError{reason: "btrfs-lzo decoder over the decoder memory cap"}
		}
		w.mem += memBtrfsLZO
		return &btrfsLZOReader{s: s, start: s.pos()}, memBtrfsLZO, false, nil
	}
	return nil, 0, false, fmt.Errorf("decode: %s is not a btrfs stream", kind)
}

// errBtrfsLZO is corrupt LZO framing.
var errBtrfsLZO = errors.New("corrupt btrfs lzo framing")

// btrfsLZOReader decodes btrfs's LZO framing (fs/btrfs/lzo.c): a 32-bit
// little-endian total length (header included), then segments, each a
// 32-bit length and that many bytes of LZO1X that decode to at most a
// sector; where fewer than 4 bytes are left in a sector, the next header
// starts at the next sector.
type btrfsLZOReader struct {
	s      *src
	start  int64 // the stream's first byte, in s
	total  int64 // from the header; 0 until read
	seg    []byte
	out    []byte // the decoded sector
	outLen int
	outPos int
}

func (l *btrfsLZOReader) Read(p []byte) (int, error) {
	for l.outPos == l.outLen {
		if err := l.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, l.out[l.outPos:l.outLen])
	l.outPos += n
	return n, nil
}

// next decodes the next segment into out, or returns io.EOF past the last.
func (l *btrfsLZOReader) next() error {
	at := func() int64 { return l.s.pos() - l.start }
	u32 := func() (int64, error) {
		var b [4]byte
		if _, err := io.ReadFull(l.s, b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		return int64(binary.LittleEndian.Uint32(b[:])), nil
	}
	if l.total == 0 {
		t, err := u32()
		if err != nil {
			return err
		}
		if t < 8 {
			return fmt.Errorf("%w: total length %d", errBtrfsLZO, t)
		}
		l.total = t
		l.out = make([]byte, btrfsSector)
		l.seg = make([]byte, btrfsLZOMaxSegment)
	}
	if left := btrfsSector - at()%btrfsSector; left < 4 {
		if _, err := l.s.Discard(left); err != nil {
			return io.ErrUnexpectedEOF
		}
	}
	if at()+4 > l.total {
		return io.EOF
	}
	n, err := u32()
	if err != nil {
		return err
	}
	if n == 0 || n > btrfsLZOMaxSegment || at()+n > l.total {
		return fmt.Errorf("%w: segment of %d bytes at offset %d", errBtrfsLZO, n, at()-4)
	}
	if _, err := io.ReadFull(l.s, l.seg[:n]); err != nil {
		return io.ErrUnexpectedEOF
	}
	k, err := lzo.Decompress(l.seg[:n], l.out)
	if err != nil && !errors.Is(err, lzo.ErrInputNotConsumed) {
		return fmt.Errorf("%w: segment at offset %d: %v", errBtrfsLZO, at()-n-4, err)
	}
	l.outLen, l.outPos = k, 0
	return nil
}
