package decode

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/imgaudit/imgaudit/report"
)

// bufSize is the read buffer of each nesting level.
const bufSize = 32 << 10

// maxZeroPad bounds the zero padding skipped between concatenated segments
// (an initramfs pads its early cpio archive to a block).
const maxZeroPad = 1 << 20

// src is one level's byte stream: buffered, and counting the bytes taken
// from it, so that a step's offset is exact. Decoders read br itself: the
// flate decoder has a fast path for a *bufio.Reader (and a generic one,
// three times slower, for any other io.ByteReader).
type src struct {
	br *bufio.Reader
	cr countReader // under br
}

// countReader counts the bytes read from r.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func newSrc(r io.Reader) *src {
	s := &src{cr: countReader{r: r}}
	s.br = bufio.NewReaderSize(&s.cr, bufSize)
	return s
}

// src returns a level's source reading r: one that an earlier level of
// the walk (or of an earlier walk sharing the Scratch) is done with, if
// any, else a new one. A disk's thousands of small containers each open
// two levels or more, and allocating and zeroing a 32 KiB buffer for
// each was a tenth of what decoding cost beside the inflating itself.
func (w *walker) src(r io.Reader) *src {
	n := len(w.scratch.srcs)
	if n == 0 {
		return newSrc(r)
	}
	s := w.scratch.srcs[n-1]
	w.scratch.srcs = w.scratch.srcs[:n-1]
	s.cr = countReader{r: r}
	s.br.Reset(&s.cr)
	return s
}

// freeSrc keeps a source that the walk is done with (nothing reads it
// again) for its next level.
func (w *walker) freeSrc(s *src) {
	s.cr = countReader{}
	s.br.Reset(&s.cr)
	w.scratch.srcs = append(w.scratch.srcs, s)
}

// pos is how many bytes of the stream were taken from s.
func (s *src) pos() int64 { return s.cr.n - int64(s.br.Buffered()) }

func (s *src) Read(p []byte) (int, error) { return s.br.Read(p) }
func (s *src) ReadByte() (byte, error)    { return s.br.ReadByte() }
func (s *src) Peek(n int) ([]byte, error) { return s.br.Peek(n) }

// Discard skips n bytes. Where s reads the container itself (the walk's
// first level, a section of it), what lies past the buffer is skipped by
// seeking rather than read: SkipStoredLeaves skips whole the plain members
// of an uncompressed archive, which the raw scan has covered, and reading
// them only to drop them was 5 % of a Debian server install's scan (Go's
// ar archives). The bytes skipped count as taken from s all the same.
func (s *src) Discard(n int64) (int64, error) {
	if sec, ok := s.cr.r.(*io.SectionReader); ok && n > int64(s.br.Buffered()) {
		done, _ := s.br.Discard(s.br.Buffered())
		at, err := sec.Seek(0, io.SeekCurrent)
		if err != nil {
			return int64(done), err
		}
		skip := max(0, min(n-int64(done), sec.Size()-at))
		if _, err := sec.Seek(skip, io.SeekCurrent); err != nil {
			return int64(done), err
		}
		s.cr.n += skip
		if int64(done)+skip < n {
			return int64(done) + skip, io.EOF
		}
		return n, nil
	}
	var done int64
	for done < n {
		k, err := s.br.Discard(int(min(n-done, 1<<30)))
		done += int64(k)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// walker is the state of one walk.
type walker struct {
	parent context.Context // the caller's
	ctx    context.Context // parent, bounded by MaxTime
	lim    Limits
	budget *Budget
	res    *Result
	fn     func(Leaf) error
	chain  []Step
	// root is the container, for archives that need random access
	// (squashfs) at its first level; rootSrc counts what the walk read.
	root     io.ReaderAt
	rootSize int64
	rootSrc  *src
	codec    string // Options.Codec, for the first level
	// skipStored is Options.SkipStoredLeaves, headOnly Options.HeadOnly.
	skipStored, headOnly bool
	// packaged is Options.Packaged; packagedHeld says that a member is
	// held in scratch.packaged while it is walked.
	packaged     PackagedFiles
	packagedHeld bool
	atRead       int64        // container bytes read at random (squashfs)
	mem          int64        // decoder memory held
	gate         *Reservation // nil: no gate
	decoded      int64        // bytes all streams of the walk decoded
	// scratch keeps the DEFLATE and gzip readers that streams are done
	// with (Options.Scratch, or the walk's own).
	scratch *Scratch
}

// Walk decodes the container in r (size bytes: a file, a partition, or the
// rest of a view from a signature on) and calls fn for every leaf. The
// container must be one that Sniff names (or Options.Codec); anything else
// yields no leaf. An error from fn stops the walk and is returned; caps
// and corrupt data end the affected stream (counted in the Result), and a
// cap on the whole walk (time, the budget) ends it without error.
func Walk(parent context.Context, r io.ReaderAt, size int64, opts Options, fn func(Leaf) error) (Result, error) {
	var res Result
	lim := opts.Limits.withDefaults()
	ctx, cancel := deadline(parent, lim)
	defer cancel()
	w := &walker{parent: parent, ctx: ctx, lim: lim, budget: opts.Budget, res: &res, fn: fn, root: r, rootSize: size, codec: opts.Codec, skipStored: opts.SkipStoredLeaves, headOnly: opts.HeadOnly, packaged: opts.Packaged, scratch: opts.Scratch}
	defer w.reserve(opts, ctx)()
	if w.scratch == nil {
		w.scratch = new(Scratch)
	}
	top := w.src(io.NewSectionReader(r, 0, size))
	w.rootSrc = top
	err := w.segments(top, 0, true)
	res.Consumed = top.pos()
	w.freeSrc(top)
	return res, w.outcome(err)
}

// WalkStream is Walk over a stream (a file of a container layer): the
// same, except that a squashfs image is read into memory first (up to
// Limits.MaxSpool).
func WalkStream(parent context.Context, r io.Reader, opts Options, fn func(Leaf) error) (Result, error) {
	var res Result
	lim := opts.Limits.withDefaults()
	ctx, cancel := deadline(parent, lim)
	defer cancel()
	w := &walker{parent: parent, ctx: ctx, lim: lim, budget: opts.Budget, res: &res, fn: fn, codec: opts.Codec, skipStored: opts.SkipStoredLeaves, headOnly: opts.HeadOnly, packaged: opts.Packaged, scratch: opts.Scratch}
	defer w.reserve(opts, ctx)()
	if w.scratch == nil {
		w.scratch = new(Scratch)
	}
	top := w.src(r)
	w.rootSrc = top
	err := w.segments(top, 0, true)
	res.Consumed = top.pos()
	w.freeSrc(top)
	return res, w.outcome(err)
}

// outcome turns a walk's error into Walk's: a cap that ends the walk is
// counted and is no error; the callback's errors and the caller's
// cancellation are.
func (w *walker) outcome(err error) error {
	if err == nil || isStop(err) {
		return err
	}
	var c *capError
	if errors.As(err, &c) {
		w.res.skip(c.reason) // a cap on the whole walk
		return nil
	}
	return w.counted(err, w.codec)
}

// reserve sets the walk's standing at its gate (Options.Reservation, or
// one of its own at Options.Gate), whose waits pause clock; the function
// it returns undoes that as the walk ends.
func (w *walker) reserve(opts Options, clock *walkClock) func() {
	r := opts.Reservation
	if r == nil {
		r = opts.Gate.Reserve()
	}
	if r == nil {
		return func() {}
	}
	w.gate = r
	prev := r.wg.clock
	r.wg.clock = clock
	return func() { r.wg.clock = prev }
}

// hold charges n more bytes of decoder memory to the walk, once its gate
// lets it (the walk's own cap is checked where each decoder is opened).
func (w *walker) hold(n int64) error {
	if err := w.gate.Hold(w.ctx, n); err != nil {
		return err
	}
	w.mem += n
	return nil
}

// unhold gives back n bytes of decoder memory.
func (w *walker) unhold(n int64) {
	w.mem -= n
	w.gate.Release(n)
}

// callbackError wraps an error returned by the callback, which ends the
// walk as it is.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

// check returns the cap error for a walk past its time, or the caller's
// cancellation.
func (w *walker) check() error {
	if err := w.parent.Err(); err != nil {
		return err
	}
	if w.ctx.Err() != nil {
		return &capError{reason: fmt.Sprintf("over the %s time cap", w.lim.MaxTime), whole: true}
	}
	return nil
}

// segments reads one level: a leaf, or containers back to back
// (concatenated cpio archives and compressed streams, as an initramfs
// holds them). root marks the container itself, which is never a leaf: its
// raw bytes are scanned by the caller.
func (w *walker) segments(s *src, depth int, root bool) error {
	for first := true; ; first = false {
		if err := w.check(); err != nil {
			return err
		}
		head, perr := s.Peek(SniffLen)
		if len(head) == 0 {
			if perr != nil && !errors.Is(perr, io.EOF) {
				return perr // a cap or a corrupt stream: the level above counts it
			}
			return nil
		}
		kind := Sniff(head)
		if root && first && w.codec != "" {
			kind = w.codec
		}
		if kind == "" {
			if first && !root {
				if w.skipStored && w.stored() {
					w.res.StoredSkipped++
					return nil // the caller reads past the member
				}
				return w.counted(w.leaf(s), "")
			}
			return nil
		}
		if depth >= w.lim.MaxDepth {
			w.res.skip(fmt.Sprintf("nested deeper than %d levels", w.lim.MaxDepth))
			return nil
		}
		more, err := w.container(kind, s, depth, root && first)
		if err != nil {
			return w.counted(err, kind)
		}
		if !more {
			return nil
		}
		if err := skipZeros(s); err != nil {
			return nil
		}
	}
}

// counted counts an error that ends a level (a cap, corrupt data in a
// stream of kind) and returns nil, or returns an error that ends the walk
// (a cap on the whole walk, the callback's error, cancellation).
func (w *walker) counted(err error, kind string) error {
	if err == nil {
		return nil
	}
	var c *capError
	var se *streamError
	switch {
	case errors.As(err, &c) && c.whole, isStop(err):
		return err
	case errors.As(err, &c):
		w.res.skip(c.reason)
	case errors.As(err, &se):
		w.res.skip(corruptReason(se.kind))
	case kind != "":
		w.res.skip(corruptReason(kind))
	default:
		w.res.skip("unreadable data")
	}
	return nil
}

// isStop reports errors that end the walk: the callback's, and the
// caller's cancellation.
func isStop(err error) bool {
	var cb callbackError
	return errors.As(err, &cb) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func corruptReason(kind string) string {
	return "corrupt or truncated " + kind + " data (what decoded before the damage was scanned)"
}

// skipZeros skips the zero padding between segments; an error (or too
// much padding) ends the level.
func skipZeros(s *src) error {
	var skipped int64
	for skipped < maxZeroPad {
		b, err := s.Peek(512)
		if len(b) == 0 {
			return io.EOF
		}
		n := 0
		for n < len(b) && b[n] == 0 {
			n++
		}
		if n == 0 {
			return nil
		}
		s.Discard(int64(n))
		skipped += int64(n)
		if n < len(b) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errors.New("too much zero padding")
}

// leaf hands s's bytes to the callback. The callback should return the
// error its reads met (a cap, a corrupt stream), or nil; the walker
// counts those itself.
func (w *walker) leaf(s *src) error {
	start := s.pos()
	lr := &leafReader{w: w, r: s.br}
	w.res.Leaves++
	err := w.fn(Leaf{Chain: w.chain, R: lr})
	w.res.Decoded += s.pos() - start
	if err == nil {
		return lr.err
	}
	var c *capError
	var se *streamError
	if errors.As(err, &c) || errors.As(err, &se) {
		return err
	}
	return callbackError{err}
}

// leafReader reads a leaf within the walk's budget, and keeps the first
// error other than the end.
type leafReader struct {
	w   *walker
	r   io.Reader
	err error
}

func (l *leafReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	if n > 0 && !l.w.budget.Take(int64(n)) {
		l.err = &capError{reason: fmt.Sprintf("over the %s decoded cap", report.HumanBytes(l.w.budget.Max())), whole: true}
		return n, l.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		l.err = err
	}
	return n, err
}

// stored reports whether the current member's bytes are the container's
// own: every step of the chain is a member of an uncompressed archive
// (tar, ar, cpio), so no stream changed them.
func (w *walker) stored() bool {
	for _, st := range w.chain {
		if st.Codec != Tar && st.Codec != Ar && st.Codec != Cpio {
			return false
		}
	}
	return len(w.chain) > 0
}

// push and pop maintain the chain.
func (w *walker) push(st Step) { w.chain = append(w.chain, st) }
func (w *walker) pop()         { w.chain = w.chain[:len(w.chain)-1] }

// container decodes one container that starts at s's position. more says
// whether the container's end is known exactly, so that another may
// follow it.
func (w *walker) container(kind string, s *src, depth int, first bool) (more bool, err error) {
	start := s.pos()
	switch kind {
	case Gzip, Xz, Zstd, Bzip2, LZ4, Deflate, BtrfsZlib, BtrfsLZO, BtrfsZstd, NTFSLZNT1:
		return w.stream(kind, s, start, depth)
	case Tar:
		return true, w.tarMembers(s, depth)
	case Cpio:
		return true, w.cpioMembers(s, depth)
	case Zip:
		return false, w.zipMembers(s, depth)
	case Ar:
		return false, w.arMembers(s, depth)
	case Squashfs:
		return false, w.squashfs(s, start, depth, first)
	case Apport:
		return false, w.apportMembers(s, depth)
	}
	return false, fmt.Errorf("decode: unknown codec %q", kind)
}

// member walks one archive member whose data r reads, as the next level;
// size is the member's size where its archive says (-1 where not). A
// compressed kernel module is counted and left (kmod.go), and so is a
// compressed package file (Options.Packaged).
func (w *walker) member(kind, name string, off, size int64, r io.Reader, depth int) error {
	sub := w.src(r)
	defer w.freeSrc(sub)
	level, isModule := sub, false
	if w.rereadable(off) {
		isModule = w.rootMemberIsModule(off)
	} else if head, _ := sub.Peek(SniffLen); Sniff(head) == Xz {
		level = w.probeSrc(sub)
		defer w.freeProbeSrc(level)
		isModule = w.bufferedIsModule(level)
	}
	if isModule {
		w.res.skip(SkippedKernelModule)
		return nil
	}
	if w.packaged != nil && !w.packagedHeld && size <= MaxPackagedMember && (size < 0 || w.packaged.HasSize(size)) {
		if head, _ := level.Peek(SniffLen); Sniff(head) != "" {
			held, packaged := w.packagedMember(level)
			if packaged {
				w.res.PackagedMembers++
				return nil
			}
			defer w.freeSrc(held)
			w.packagedHeld = true
			defer func() { w.packagedHeld = false }()
			level = held
		}
	}
	w.push(Step{Codec: kind, Member: name, Offset: off})
	defer w.pop()
	return w.segments(level, depth+1, false)
}

// MaxPackagedMember is the largest archive member that Options.Packaged
// checks: Debian's compressed man pages, changelogs and test data are
// smaller, and a walk holds one such member at a time.
const MaxPackagedMember = 2 << 20

// packagedMember reads the member that s holds, up to MaxPackagedMember
// bytes, and reports whether Options.Packaged holds it; if not,
// it returns a source that reads the member again from its start (past
// the cap, the bytes held and then the rest of s, unchecked).
func (w *walker) packagedMember(s *src) (*src, bool) {
	if w.scratch.packaged == nil {
		w.scratch.packaged = make([]byte, MaxPackagedMember+1)
	}
	buf := w.scratch.packaged
	n, err := io.ReadFull(s, buf)
	var r io.Reader = bytes.NewReader(buf[:n])
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if w.packaged.Has(int64(n), md5.Sum(buf[:n])) {
			return nil, true
		}
	case err == nil:
		r = io.MultiReader(r, s)
	default:
		r = io.MultiReader(r, errorReader{err})
	}
	return w.src(r), false
}

// errorReader returns err, a read error met while a member was held.
type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

// counter counts members against MaxMembers.
func (w *walker) tooMany(n int) bool {
	if n >= w.lim.MaxMembers {
		w.res.skip(fmt.Sprintf("archive cut after %d members (the members cap)", w.lim.MaxMembers))
		return true
	}
	return false
}

// memberError decides what an error from a member's level means for the
// archive: a cap on the whole walk or a stop ends it, anything else was
// counted where it happened.
func memberError(err error) error {
	if err == nil {
		return nil
	}
	var c *capError
	if errors.As(err, &c) && c.whole || isStop(err) {
		return err
	}
	return nil
}

// cleanName makes an archive member's name fit for a report: no leading
// "./" or "/", no control characters, no invalid UTF-8, at most 1 KiB.
// A name longer than that is copied, so that what a finding keeps of it
// never holds the rest alive (a tar's PAX path can be 1 MiB, a zip's
// name 64 KiB).
func cleanName(n string) string {
	whole := len(n)
	n = strings.TrimLeft(strings.TrimPrefix(n, "./"), "/")
	if len(n) > 1024 {
		n = n[:1024]
	}
	if whole > 1024 {
		n = strings.Clone(n)
	}
	if !utf8.ValidString(n) {
		n = strings.ToValidUTF8(n, "?")
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, n)
}
