package decode

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/decode/inflate"
)

// tarMembers walks the regular files of a tar archive.
func (w *walker) tarMembers(s *src, depth int) error {
	tr := tar.NewReader(tarSrc{s})
	for n := 0; ; n++ {
		if err := w.check(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse {
			continue
		}
		if w.tooMany(n) {
			return nil
		}
		at := s.pos()
		g := &tarGuard{r: tr, s: s, start: at, lim: w.lim}
		if err := memberError(w.member(Tar, cleanName(hdr.Name), at, hdr.Size, g, depth)); err != nil {
			return err
		}
	}
}

// tarSrc is s for archive/tar, which skips a member's unread data by
// seeking when its reader is an io.Seeker: where s is the container itself,
// src.Discard then seeks over it rather than reading it.
type tarSrc struct{ *src }

func (t tarSrc) Seek(off int64, whence int) (int64, error) {
	if _, ok := t.cr.r.(*io.SectionReader); !ok || whence != io.SeekCurrent || off < 0 {
		return 0, errors.ErrUnsupported // tar reads past instead
	}
	if _, err := t.Discard(off); err != nil {
		// Short: the archive is cut inside the member, which reading
		// past it reports as such.
		return t.pos(), io.ErrUnexpectedEOF
	}
	return t.pos(), nil
}

// tarGuard bounds a tar member's data by the archive bytes read for it:
// archive/tar fills a sparse member's holes with zeros, so that 6 KiB of
// headers can stand for 60 GiB of them (Go's own archive/tar testdata
// does). A member past the ratio cap ends there; its holes hold nothing
// but zeros, and the members after it are still walked.
type tarGuard struct {
	r     io.Reader
	s     *src
	start int64
	out   int64
	lim   Limits
}

func (g *tarGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.out += int64(n)
	if g.out > g.lim.RatioFloor && g.out > g.lim.MaxRatio*(g.s.pos()-g.start+1) {
		return n, &capError{reason: fmt.Sprintf("tar member over the %d:1 expansion ratio cap (a sparse file's holes)", g.lim.MaxRatio)}
	}
	return n, err
}

// cpio header sizes: "new ASCII" (newc, and crc with a checksum) and the
// portable "old ASCII" (odc).
const (
	newcHeaderLen = 110
	odcHeaderLen  = 76
	maxCpioName   = 4096
)

// cpioMembers walks the regular files of one cpio archive (up to its
// TRAILER!!! entry); what follows it is the caller's.
func (w *walker) cpioMembers(s *src, depth int) error {
	start := s.pos()
	var hdr [newcHeaderLen]byte
	for n := 0; ; n++ {
		if err := w.check(); err != nil {
			return err
		}
		if _, err := io.ReadFull(s, hdr[:6]); err != nil {
			return io.ErrUnexpectedEOF
		}
		var mode, size, nameLen uint64
		var err error
		align := int64(1)
		switch string(hdr[:6]) {
		case "070701", "070702":
			if _, err := io.ReadFull(s, hdr[6:newcHeaderLen]); err != nil {
				return io.ErrUnexpectedEOF
			}
			field := func(i int) uint64 {
				v, e := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
				if e != nil && err == nil {
					err = fmt.Errorf("cpio: bad header field at offset %d", s.pos()-newcHeaderLen+int64(6+8*i))
				}
				return v
			}
			mode, size, nameLen = field(1), field(6), field(11)
			align = 4
		case "070707":
			if _, err := io.ReadFull(s, hdr[6:odcHeaderLen]); err != nil {
				return io.ErrUnexpectedEOF
			}
			oct := func(a, b int) uint64 {
				v, e := strconv.ParseUint(string(hdr[a:b]), 8, 64)
				if e != nil && err == nil {
					err = fmt.Errorf("cpio: bad header field at offset %d", s.pos()-odcHeaderLen+int64(a))
				}
				return v
			}
			mode, nameLen, size = oct(18, 24), oct(59, 65), oct(65, 76)
		default:
			return fmt.Errorf("cpio: bad magic at offset %d", s.pos()-6)
		}
		if err != nil {
			return err
		}
		if nameLen == 0 || nameLen > maxCpioName {
			return fmt.Errorf("cpio: name of %d bytes", nameLen)
		}
		name := make([]byte, nameLen)
		if _, err := io.ReadFull(s, name); err != nil {
			return io.ErrUnexpectedEOF
		}
		name = bytes.TrimRight(name, "\x00")
		if _, err := s.Discard(pad(s.pos()-start, align)); err != nil {
			return io.ErrUnexpectedEOF
		}
		if string(name) == "TRAILER!!!" {
			return nil
		}
		dataStart := s.pos()
		if mode&0o170000 == 0o100000 && size > 0 {
			if w.tooMany(n) {
				return nil
			}
			if err := memberError(w.member(Cpio, cleanName(string(name)), dataStart, int64(size), io.LimitReader(s, int64(size)), depth)); err != nil {
				return err
			}
		}
		if _, err := s.Discard(dataStart + int64(size) - s.pos()); err != nil {
			return io.ErrUnexpectedEOF
		}
		if _, err := s.Discard(pad(s.pos()-start, align)); err != nil {
			return io.ErrUnexpectedEOF
		}
	}
}

// pad is the padding that brings n to a multiple of align.
func pad(n, align int64) int64 { return (align - n%align) % align }

// Zip local file header fields.
const (
	zipLocalLen     = 30
	zipFlagCrypt    = 1
	zipFlagDescr    = 8
	zipStore        = 0
	zipDeflate      = 8
	zipBzip2        = 12
	zipZstd         = 93
	zipXz           = 95
	zipMaxNameExtra = 2 * 65535
)

// zipMembers walks a zip archive by its local headers, in order, the way
// it is written: no central directory is needed (a zip carved from free
// space has none), and members that the directory no longer lists are
// read too. It ends at the first byte that is no local header.
func (w *walker) zipMembers(s *src, depth int) error {
	var h [zipLocalLen]byte
	for n := 0; ; n++ {
		if err := w.check(); err != nil {
			return err
		}
		if b, _ := s.Peek(4); !bytes.Equal(b, magicZip) {
			return nil // the central directory, or the end
		}
		if _, err := io.ReadFull(s, h[:]); err != nil {
			return io.ErrUnexpectedEOF
		}
		le := binary.LittleEndian
		flags, method := le.Uint16(h[6:]), le.Uint16(h[8:])
		csize, usize := uint64(le.Uint32(h[18:])), uint64(le.Uint32(h[22:]))
		nameLen, extraLen := int(le.Uint16(h[26:])), int(le.Uint16(h[28:]))
		ne := make([]byte, nameLen+extraLen)
		if _, err := io.ReadFull(s, ne); err != nil {
			return io.ErrUnexpectedEOF
		}
		name := cleanName(string(ne[:nameLen]))
		zip64 := false
		for x := ne[nameLen:]; len(x) >= 4; {
			id, l := le.Uint16(x), int(le.Uint16(x[2:]))
			if 4+l > len(x) {
				break
			}
			if id == 1 {
				zip64 = true
				d := x[4 : 4+l]
				if usize == 0xffffffff && len(d) >= 8 {
					usize, d = le.Uint64(d), d[8:]
				}
				if csize == 0xffffffff && len(d) >= 8 {
					csize = le.Uint64(d)
				}
			}
			x = x[4+l:]
		}
		dataStart := s.pos()
		sized := flags&zipFlagDescr == 0 || csize != 0
		if csize >= 1<<62 {
			return fmt.Errorf("zip: member %q claims %d bytes", name, csize)
		}
		dir := strings.HasSuffix(name, "/")
		switch {
		case dir:
		case flags&zipFlagCrypt != 0:
			w.res.skip("encrypted zip member")
		case w.tooMany(n):
			return nil
		default:
			if !sized && method != zipDeflate {
				w.res.skip(fmt.Sprintf("zip member of unknown size (data descriptor) with method %d: the rest of the archive", method))
				return nil
			}
			var in io.Reader = s
			if sized {
				in = io.LimitReader(s, int64(csize))
			}
			// The local header's size of the member's data, once
			// decompressed: zero, and so unknown, with a data descriptor.
			size := int64(-1)
			if sized && usize < 1<<62 {
				size = int64(usize)
			}
			if err := w.zipMember(s, in, method, name, dataStart, size, depth); err != nil {
				return err
			}
		}
		if sized {
			if _, err := s.Discard(dataStart + int64(csize) - s.pos()); err != nil {
				return io.ErrUnexpectedEOF
			}
		} else if dir || flags&zipFlagCrypt != 0 {
			return nil // its end cannot be found
		}
		if flags&zipFlagDescr != 0 {
			if b, _ := s.Peek(4); bytes.Equal(b, []byte{'P', 'K', 7, 8}) {
				s.Discard(4)
			}
			n := int64(12)
			if zip64 {
				n = 20
			}
			if _, err := s.Discard(n); err != nil {
				return io.ErrUnexpectedEOF
			}
		}
	}
}

// zipMember decodes one member's data from in (which s underlies) and walks
// it. A member of unknown size is read to the end of its compressed data,
// so that the next header can be found.
func (w *walker) zipMember(s *src, in io.Reader, method uint16, name string, dataStart, size int64, depth int) error {
	var dec io.Reader
	var cost int64
	switch method {
	case zipStore:
		dec = in
	case zipDeflate:
		if w.mem+memInflate > w.lim.MaxDecoderMemory {
			w.res.skip("zip member's deflate decoder over the decoder memory cap")
			return nil
		}
		cost = memInflate
		var z *inflate.Reader
		if _, sized := in.(*io.LimitedReader); sized {
			// Read ahead within the member's bytes only.
			sub := w.src(in)
			defer w.freeSrc(sub)
			z = w.inflater(sub.br)
		} else {
			z = w.inflater(s.br) // exactly to the stream's end
		}
		defer w.release(z)
		dec = z
	case zipBzip2:
		if w.mem+memBzip2 > w.lim.MaxDecoderMemory {
			w.res.skip("zip member's bzip2 decoder over the decoder memory cap")
			return nil
		}
		dec, cost = bzip2.NewReader(in), memBzip2
	case zipZstd, zipXz:
		kind := map[uint16]string{zipZstd: Zstd, zipXz: Xz}[method]
		sub := w.src(in)
		defer w.freeSrc(sub)
		r, c, _, err := w.open(kind, sub)
		if err != nil {
			return w.zipError(err)
		}
		defer func() {
			if cl, ok := r.(io.Closer); ok {
				cl.Close()
			}
			w.unhold(c)
		}()
		dec = r
	default:
		w.res.skip(fmt.Sprintf("zip member compressed with method %d (not supported)", method))
		return nil
	}
	if err := w.hold(cost); err != nil {
		return err
	}
	defer w.unhold(cost)
	g := &guard{w: w, r: dec, in: s, inStart: dataStart, kind: Zip}
	err := memberError(w.member(Zip, name, dataStart, size, g, depth))
	if err != nil {
		return err
	}
	if g.err != nil && !errors.Is(g.err, io.EOF) {
		return g.zipEnd()
	}
	// Read what the member's level left, so that s reaches the next
	// header (sized members are skipped by the caller instead).
	if _, ok := in.(*io.LimitedReader); !ok && method != zipStore {
		if _, err := io.Copy(io.Discard, g); err != nil {
			return w.zipError(err)
		}
	}
	return nil
}

// zipEnd: a member whose data failed to decode, counted where it failed;
// a member of unknown size leaves no way to the next header.
func (g *guard) zipEnd() error {
	var c *capError
	if errors.As(g.err, &c) && c.whole {
		return g.err
	}
	return nil
}

// zipError counts a member's decoder error and goes on with the archive.
func (w *walker) zipError(err error) error {
	var c *capError
	switch {
	case errors.As(err, &c) && c.whole, isStop(err):
		return err
	case errors.As(err, &c):
		w.res.skip(c.reason)
	default:
		w.res.skip(corruptReason(Zip))
	}
	return nil
}

// ar (Unix archive, .deb) header fields.
const (
	arHeaderLen = 60
	maxArNames  = 1 << 20 // the GNU long-name table
	maxArName   = 4096    // one name in it, as cpio's
)

// arLongName is the name that starts rest, a suffix of the GNU long-name
// table: up to its "/\n", or to the table's end, and at most maxArName
// bytes (a longer one is cut there; its member is still read). Only the
// name is copied: a string of the rest of the table, for each member,
// made 2,000 members named "/0" in a 1 MiB table 2 GB (main until
// 2026-12-08), and the names kept for findings held each copy.
func arLongName(rest []byte) string {
	rest = rest[:min(len(rest), maxArName+2)]
	if j := bytes.Index(rest, []byte("/\n")); j >= 0 {
		rest = rest[:j]
	}
	return string(rest[:min(len(rest), maxArName)])
}

// arMembers walks the members of an ar archive (a .deb: debian-binary,
// control.tar.*, data.tar.*), with GNU and BSD long names.
func (w *walker) arMembers(s *src, depth int) error {
	if _, err := s.Discard(int64(len(magicAr))); err != nil {
		return io.ErrUnexpectedEOF
	}
	var names []byte
	var h [arHeaderLen]byte
	for n := 0; ; n++ {
		if err := w.check(); err != nil {
			return err
		}
		k, err := io.ReadFull(s, h[:])
		if k == 0 && err == io.EOF {
			return nil
		}
		if err != nil {
			return io.ErrUnexpectedEOF
		}
		if h[58] != '`' || h[59] != '\n' {
			return fmt.Errorf("ar: bad header at offset %d", s.pos()-arHeaderLen)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(string(h[48:58])), 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("ar: bad member size at offset %d", s.pos()-12)
		}
		name := strings.TrimRight(string(h[:16]), " ")
		dataStart := s.pos()
		switch {
		case name == "//":
			if size > maxArNames {
				return fmt.Errorf("ar: long-name table of %d bytes", size)
			}
			names = make([]byte, size)
			if _, err := io.ReadFull(s, names); err != nil {
				return io.ErrUnexpectedEOF
			}
			name = ""
		case name == "/" || name == "/SYM64/" || name == "__.SYMDEF":
			name = "" // symbol tables
		case strings.HasPrefix(name, "#1/"):
			l, err := strconv.ParseInt(name[3:], 10, 64)
			if err != nil || l < 0 || l > maxCpioName || l > size {
				return fmt.Errorf("ar: bad BSD name at offset %d", s.pos()-arHeaderLen)
			}
			b := make([]byte, l)
			if _, err := io.ReadFull(s, b); err != nil {
				return io.ErrUnexpectedEOF
			}
			name = string(bytes.TrimRight(b, "\x00"))
		case len(name) > 1 && name[0] == '/' && names != nil:
			i, err := strconv.Atoi(name[1:])
			if err != nil || i < 0 || i >= len(names) {
				return fmt.Errorf("ar: bad long name at offset %d", s.pos()-arHeaderLen)
			}
			name = arLongName(names[i:])
		default:
			name = strings.TrimSuffix(name, "/")
		}
		end := dataStart + size
		if name != "" && end > s.pos() {
			if w.tooMany(n) {
				return nil
			}
			if err := memberError(w.member(Ar, cleanName(name), s.pos(), end-s.pos(), io.LimitReader(s, end-s.pos()), depth)); err != nil {
				return err
			}
		}
		if _, err := s.Discard(end - s.pos() + size%2); err != nil {
			if s.pos() >= end {
				return nil // the last member's padding byte may be missing
			}
			return io.ErrUnexpectedEOF
		}
	}
}
