package decode

import (
	"bufio"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/report"
)

// Decoder memory, as charged against Limits.MaxDecoderMemory: what each
// decoder holds at most besides its input buffer.
const (
	// memInflate is decode/inflate's reader: a 128 KiB buffer and the
	// decode tables, about 150 KiB (gzip and raw deflate).
	memInflate = 160 << 10
	memBzip2   = 4 << 20 // 900k block, its tables and output
	memLZ4     = 8 << 20 // two 4 MiB blocks
)

// stream decodes one compressed stream starting at s's position and walks
// what it holds as the next level.
func (w *walker) stream(kind string, s *src, start int64, depth int) (more bool, err error) {
	dec, cost, exact, err := w.open(kind, s)
	if err != nil {
		return false, err
	}
	defer func() {
		if c, ok := dec.(io.Closer); ok {
			c.Close()
		}
		w.release(dec)
		w.unhold(cost)
	}()
	g := &guard{w: w, r: dec, in: s, inStart: start, kind: kind}
	inMember := len(w.chain) > 0 && w.chain[len(w.chain)-1].Member != ""
	w.push(Step{Codec: kind, Offset: start})
	sub := w.src(g)
	if inMember && moduleCodec(kind) {
		// An archive's member that decodes to a kernel module is left
		// here, without reading the stream to its end (kmod.go).
		if head, _ := sub.Peek(SniffLen); relocatableELF(head) {
			w.freeSrc(sub)
			w.pop()
			w.res.skip(SkippedKernelModule)
			return false, nil
		}
	}
	err = w.segments(sub, depth+1, false)
	w.freeSrc(sub)
	w.pop()
	if err != nil {
		return false, err
	}
	if g.err != nil && !errors.Is(g.err, io.EOF) {
		return false, nil // counted by the level that met it
	}
	if !exact {
		return false, nil
	}
	// Another segment may follow: read this stream to its end first,
	// within the same caps.
	if _, err := io.Copy(io.Discard, g); err != nil {
		return false, err
	}
	return true, nil
}

// open starts the decoder of kind on s. cost is the memory it is charged;
// exact says that it reads s no further than its stream's end.
func (w *walker) open(kind string, s *src) (r io.Reader, cost int64, exact bool, err error) {
	charge := func(n int64) error {
		if w.mem+n > w.lim.MaxDecoderMemory {
			return &capError{reason: fmt.Sprintf("%s decoder would need %s, over the %s decoder memory cap", kind, report.HumanBytes(n), report.HumanBytes(w.lim.MaxDecoderMemory))}
		}
		return w.hold(n)
	}
	switch kind {
	case Gzip:
		// One member: the next, if any, is the next segment.
		if err := charge(memInflate); err != nil {
			return nil, 0, false, err
		}
		z, err := w.gzipReader(s.br)
		if err != nil {
			w.unhold(memInflate)
			return nil, 0, false, err
		}
		return z, memInflate, true, nil
	case Deflate:
		if err := charge(memInflate); err != nil {
			return nil, 0, false, err
		}
		return w.inflater(s.br), memInflate, true, nil
	case Bzip2:
		if err := charge(memBzip2); err != nil {
			return nil, 0, false, err
		}
		return &bzip2Reader{r: bzip2.NewReader(s.br)}, memBzip2, false, nil
	case LZ4:
		if err := charge(memLZ4); err != nil {
			return nil, 0, false, err
		}
		z := lz4.NewReader(s.br)
		if err := z.Apply(lz4.ConcurrencyOption(1)); err != nil {
			w.unhold(memLZ4)
			return nil, 0, false, err
		}
		return z, memLZ4, false, nil
	case Zstd:
		// The window is what the decoder holds: it is charged the window
		// its first frame's header asks for (zstdWindow), so that what
		// the stream holds can be decoded too (a .tar.zst of .gz files,
		// an initramfs's .ko.xz modules: charging all that was left, as
		// before, failed every stream inside on the memory cap). A later
		// frame that asks for more fails with ErrWindowSizeExceeded.
		left := w.lim.MaxDecoderMemory - w.mem
		head, _ := s.Peek(zstdMaxFrameHeader)
		win := max(zstdWindow(head), zstd.MinWindowSize)
		if win > left {
			return nil, 0, false, &capError{reason: fmt.Sprintf("zstd decoder would need %s, over the %s decoder memory cap", report.HumanBytes(win), report.HumanBytes(w.lim.MaxDecoderMemory))}
		}
		win = min(win, zstd.MaxWindowSize)
		if err := w.hold(win); err != nil {
			return nil, 0, false, err
		}
		z, err := zstd.NewReader(s.br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(uint64(win)))
		if err != nil {
			w.unhold(win)
			return nil, 0, false, err
		}
		return &zstdReader{d: z}, win, false, nil
	case BtrfsZlib, BtrfsLZO, BtrfsZstd:
		return w.openBtrfs(kind, s)
	case NTFSLZNT1:
		return s.br, 0, false, nil
	case Xz:
		x, err := newXzReader(s, charge)
		if err != nil {
			return nil, 0, false, err
		}
		x.w = w
		return x, 0, true, nil // x releases its dictionaries' charge itself
	}
	return nil, 0, false, fmt.Errorf("decode: %s is not a stream", kind)
}

// inflater returns a DEFLATE reader of br that stops exactly at its
// stream's end: one that an earlier stream of the walk released, if any
// (a reader holds a 128 KiB buffer, worth keeping for the many small
// streams that a walk meets), else a new one.
func (w *walker) inflater(br *bufio.Reader) *inflate.Reader {
	if n := len(w.scratch.inflaters); n > 0 {
		r := w.scratch.inflaters[n-1]
		w.scratch.inflaters = w.scratch.inflaters[:n-1]
		r.Reset(br)
		return r
	}
	return inflate.NewReader(br)
}

// gzipReader reads a gzip member's header from br and returns a reader of
// the member, kept from an earlier stream of the walk if it can be.
func (w *walker) gzipReader(br *bufio.Reader) (*inflate.GzipReader, error) {
	z := new(inflate.GzipReader)
	if n := len(w.scratch.gzips); n > 0 {
		z = w.scratch.gzips[n-1]
		w.scratch.gzips = w.scratch.gzips[:n-1]
	}
	if err := z.Reset(br); err != nil {
		w.scratch.gzips = append(w.scratch.gzips, z)
		return nil, err
	}
	return z, nil
}

// release keeps a decoder that the walk is done with for its next stream.
// The walk reads one stream of a level at a time, so it keeps at most a
// few: one for each level of nesting.
func (w *walker) release(dec io.Reader) {
	switch d := dec.(type) {
	case *inflate.Reader:
		w.scratch.inflaters = append(w.scratch.inflaters, d)
	case *inflate.GzipReader:
		w.scratch.gzips = append(w.scratch.gzips, d)
	}
}

// zstdReader turns the decoder's window error into a cap, and bytes that
// are no frame after a whole frame into the stream's end: frames follow
// each other, and a stream found in free space is followed by whatever
// the space holds.
type zstdReader struct {
	d   *zstd.Decoder
	out int64
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	z.out += int64(n)
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded):
		err = &capError{reason: "zstd window over the decoder memory cap"}
	case errors.Is(err, zstd.ErrMagicMismatch) && z.out > 0:
		err = io.EOF
	}
	return n, err
}

func (z *zstdReader) Close() error { z.d.Close(); return nil }

// bzip2Reader turns bytes that are no stream after a whole stream into the
// end (compress/bzip2 reads on to a next stream).
type bzip2Reader struct {
	r   io.Reader
	out int64
}

func (b *bzip2Reader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.out += int64(n)
	if err != nil && b.out > 0 && strings.Contains(err.Error(), "continuation file") {
		err = io.EOF
	}
	return n, err
}

// guard reads a decoder's output within the caps: the stream's expansion
// ratio, the walk's, and the walk's time.
type guard struct {
	w       *walker
	r       io.Reader
	in      counter // the compressed input
	inStart int64
	out     int64
	kind    string
	err     error
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if err := g.w.check(); err != nil {
		g.err = err
		return 0, err
	}
	n, err := g.r.Read(p)
	g.out += int64(n)
	g.w.decoded += int64(n)
	lim := g.w.lim
	switch {
	case g.out > lim.RatioFloor && g.out > lim.MaxRatio*(g.in.pos()-g.inStart+1):
		err = &capError{reason: fmt.Sprintf("%s stream over the %d:1 expansion ratio cap", g.kind, lim.MaxRatio)}
	case g.w.decoded > lim.RatioFloor && g.w.decoded > lim.MaxRatio*(g.w.consumed()+1):
		err = &capError{reason: fmt.Sprintf("container over the %d:1 expansion ratio cap (nested archives)", lim.MaxRatio), whole: true}
	}
	if err != nil {
		g.err = err
		if errors.Is(err, io.EOF) {
			return n, io.EOF
		}
		var c *capError
		if !errors.As(err, &c) && !isStop(err) {
			g.err = &streamError{kind: g.kind, err: err}
		}
		return n, g.err
	}
	return n, nil
}

// counter is a reader's position: how much compressed input a decoder
// took so far.
type counter interface{ pos() int64 }

// consumed is how many bytes of the container the walk has read.
func (w *walker) consumed() int64 { return w.rootSrc.pos() + w.atRead }

// streamError is a corrupt or truncated stream: what decoded before it was
// walked.
type streamError struct {
	kind string
	err  error
}

func (e *streamError) Error() string { return fmt.Sprintf("%s: %v", e.kind, e.err) }
func (e *streamError) Unwrap() error { return e.err }

// zstdMaxFrameHeader is the longest zstd frame header: magic, descriptor,
// window descriptor, a 4-byte dictionary ID, an 8-byte content size.
const zstdMaxFrameHeader = 4 + 1 + 1 + 4 + 8

// zstdWindow is the window that the zstd frame whose header starts head
// declares (RFC 8878, 3.1.1.1): its window descriptor, or for a single
// segment its content size. A header it cannot read gives 8 MiB, what
// the zstd tool's levels up to 19 use at most.
func zstdWindow(head []byte) int64 {
	const fallback = 8 << 20
	if len(head) < 6 || string(head[:4]) != string(magicZstd) {
		return fallback
	}
	fhd := head[4]
	if fhd&0x20 == 0 { // a window descriptor
		exp, mant := int64(head[5]>>3), int64(head[5]&7)
		base := int64(1) << (10 + exp)
		return base + base/8*mant
	}
	// Single segment: the window is the content size.
	at := 5 + []int{0, 1, 2, 4}[fhd&3]
	switch fhd >> 6 {
	case 0:
		if len(head) >= at+1 {
			return int64(head[at])
		}
	case 1:
		if len(head) >= at+2 {
			return int64(binary.LittleEndian.Uint16(head[at:])) + 256
		}
	case 2:
		if len(head) >= at+4 {
			return int64(binary.LittleEndian.Uint32(head[at:]))
		}
	case 3:
		if len(head) >= at+8 {
			if v := binary.LittleEndian.Uint64(head[at:]); v < 1<<62 {
				return int64(v)
			}
			return 1 << 62
		}
	}
	return fallback
}
