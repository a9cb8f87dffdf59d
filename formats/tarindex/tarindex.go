// Package tarindex reads a tar archive held in an io.ReaderAt in place: an
// uncompressed container layer, an OVA. Build reads the members' headers
// only, seeking over their data, and records where each member's data
// lies; Member opens a regular member as a section of the archive, never a
// copy. An Index is also the model.Opener for the files that an image
// inside the archive names (a qcow2 overlay's backing file, a VMDK's
// extents): a name resolves, lexically and through the archive's own
// links, to another member of the same archive, and a name or link that
// climbs out of it is refused. No name ever reaches a host file.
package tarindex

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// maxLinkHops bounds the links one name may go through (Linux's
// MAXSYMLINKS is 40).
const maxLinkHops = 40

// Entry is one member of the archive.
type Entry struct {
	Name     string // cleaned and rooted: "./disk/a.qcow2" is "/disk/a.qcow2"
	Raw      string // the name as the header writes it
	Type     byte   // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, ...
	Linkname string // for links
	Header   int64  // offset of the member's header
	Offset   int64  // offset of its data
	Size     int64  // bytes of data
	// Sparse marks a GNU or PAX sparse member: its data is not stored
	// contiguously, so it cannot be read in place.
	Sparse bool
	// R, when set, holds the member's bytes from its offset 0, instead of
	// the archive at Offset (FromMembers).
	R io.ReaderAt
}

// Index is the member list of a tar archive read in place.
type Index struct {
	r       io.ReaderAt
	size    int64
	name    string // the archive, in errors and in Member.Name
	entries []Entry
	last    map[string]int // cleaned name -> its last entry: what extraction leaves
	log     *hostfile.Log
}

var _ model.Opener = (*Index)(nil)

// Cursor reads an archive held in an io.ReaderAt from its start, as a tar
// reader wants it: it knows its position, so that once the reader has read
// a member's header the member's data offset is known, and it seeks, so
// that the reader skips the data it does not read.
type Cursor struct {
	r    io.ReaderAt
	size int64
	pos  int64
	// block is where the first read of a whole 512-byte block began
	// since it was last set to -1: the first header block that
	// tar.Reader.Next reads, once it has skipped the previous member's
	// data (a seek and reads of one byte) and padding (under 512 bytes).
	block int64
	// ahead, when ReadAhead set it, holds aheadN bytes of the archive
	// from aheadAt, read at once for the reads smaller than it.
	ahead   []byte
	aheadAt int64
	aheadN  int
}

// NewCursor returns a Cursor at the start of the size bytes r holds.
func NewCursor(r io.ReaderAt, size int64) *Cursor {
	return &Cursor{r: r, size: size}
}

// ReadAhead makes each read smaller than n bytes read n at once, and the
// reads after it take their bytes from those. It is for a walk that reads
// every member (a layer scanned file by file): a tar reader reads each
// header on its own, and a small file in a few reads, each a system call
// on a file (12 % of a one-layer image's scan, 2026-12-07). A walk that
// seeks over the members' data (Build) is better without it.
func (c *Cursor) ReadAhead(n int) {
	c.ahead, c.aheadN = make([]byte, n), 0
}

// Pos is the offset of the next byte Read returns.
func (c *Cursor) Pos() int64 { return c.pos }

// Read reads like an io.SectionReader of the archive: at its end it
// returns io.EOF, and an error of the ReaderAt as it comes.
func (c *Cursor) Read(p []byte) (int, error) {
	if c.block == -1 && len(p) == 512 {
		c.block = c.pos
	}
	if c.pos >= c.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.aheadN > 0 && c.pos >= c.aheadAt && c.pos < c.aheadAt+int64(c.aheadN) {
		n := copy(p, c.ahead[c.pos-c.aheadAt:c.aheadN])
		c.pos += int64(n)
		return n, nil
	}
	if len(p) < len(c.ahead) {
		want := min(int64(len(c.ahead)), c.size-c.pos)
		n, err := c.r.ReadAt(c.ahead[:want], c.pos)
		c.aheadAt, c.aheadN = c.pos, n
		if n == 0 {
			return 0, err
		}
		// An error after n bytes comes again at the next read past them.
		k := copy(p, c.ahead[:n])
		c.pos += int64(k)
		return k, nil
	}
	p = p[:min(int64(len(p)), c.size-c.pos)]
	n, err := c.r.ReadAt(p, c.pos)
	c.pos += int64(n)
	return n, err
}

// Seek sets the position as io.SectionReader's Seek does.
func (c *Cursor) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += c.pos
	case io.SeekEnd:
		off += c.size
	default:
		return 0, errWhence
	}
	if off < 0 {
		return 0, errOffset
	}
	c.pos = off
	return off, nil
}

var (
	errWhence = errors.New("tarindex: Seek: invalid whence")
	errOffset = errors.New("tarindex: Seek: invalid offset")
)

// Build indexes the tar archive that r holds, size bytes, named name in
// errors and member names. It reads at most maxEntries headers; a member
// whose data runs past the end of the archive is an error.
func Build(ctx context.Context, r io.ReaderAt, size int64, name string, maxEntries int) (*Index, error) {
	x := &Index{r: r, size: size, name: name, last: map[string]int{}}
	c := NewCursor(r, size)
	tr := tar.NewReader(c)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Next skips what is left of the previous member before it reads
		// this one's header: the header starts where its first block is
		// read, not where the cursor stands now (in a member's data, since
		// nothing reads it).
		at := c.pos
		c.block = -1
		h, err := tr.Next()
		if c.block >= 0 {
			at = c.block
		}
		if err == io.EOF {
			return x, nil
		}
		if err != nil {
			return nil, model.Wrapf(err, name, at, "tar header")
		}
		if len(x.entries) >= maxEntries {
			return nil, model.Errorf(name, at, "more than %d tar members", maxEntries)
		}
		e := Entry{Name: Clean(h.Name), Raw: h.Name, Type: h.Typeflag, Linkname: h.Linkname, Header: at, Offset: c.pos, Size: h.Size, Sparse: IsSparse(h)}
		if e.regular() && !e.Sparse && (h.Size < 0 || c.pos+h.Size > size) {
			return nil, model.Errorf(name, at, "tar member %.80q runs past the end of the file", h.Name)
		}
		x.last[e.Name] = len(x.entries)
		x.entries = append(x.entries, e)
	}
}

// FromMembers indexes regular members whose bytes are not read in place
// from a tar: members decompressed from a stream to temporary files, or
// a zip's, each with its bytes in R (Name as it is written, Offset where
// the member is in the archive, for errors). The names the files in it
// write (a VMDK descriptor's extents, an overlay's base) then resolve to
// the others under the same policy as in a tar, and to nothing else.
func FromMembers(archive string, members []Entry) *Index {
	x := &Index{name: archive, last: map[string]int{}}
	for _, e := range members {
		e.Raw, e.Name, e.Type, e.Sparse = e.Name, Clean(e.Name), tar.TypeReg, false
		x.last[e.Name] = len(x.entries)
		x.entries = append(x.entries, e)
	}
	return x
}

// IsSparse reports a GNU or PAX sparse member, whose data is not stored
// in one piece (and so cannot be read in place).
func IsSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// Clean turns a member name into the cleaned, rooted name the index uses
// ("./etc/x", "etc/x/" and "/etc/x" are all "/etc/x").
func Clean(name string) string { return path.Clean("/" + name) }

func (e Entry) regular() bool {
	return e.Type == tar.TypeReg || e.Type == tar.TypeRegA
}

// Entries returns every member, in archive order.
func (x *Index) Entries() []Entry { return x.entries }

// WithLog returns the same index recording each name it is asked for in l.
func (x *Index) WithLog(l *hostfile.Log) *Index {
	c := *x
	c.log = l
	return &c
}

// Member is a regular member of the archive, read in place: a section of
// the archive (model.File).
type Member struct {
	*io.SectionReader
	info fs.FileInfo
	id   string
	// release, for a member opened through a logged Index, records its
	// closing in the log (hostfile.Log.Hold).
	release func()
}

// Name identifies the member: the archive's name, "!", and the member's
// cleaned name (model.EnterChain knows a file by it).
func (m *Member) Name() string { return m.id }

// Stat returns the member's size and mode.
func (m *Member) Stat() (fs.FileInfo, error) { return m.info, nil }

// Close releases the member's hold on a logged Index's log; the archive
// stays open.
func (m *Member) Close() error {
	if m.release != nil {
		m.release()
	}
	return nil
}

// At opens the regular member whose data starts at offset off of the
// archive: the very copy a walk of the archive found there, even where a
// later copy of the same name replaces it.
func (x *Index) At(off int64) (*Member, error) {
	i, ok := slices.BinarySearchFunc(x.entries, off, func(e Entry, off int64) int { return cmp.Compare(e.Offset, off) })
	for ; ok && i < len(x.entries) && x.entries[i].Offset == off; i++ {
		if e := x.entries[i]; e.regular() && !e.Sparse {
			return x.member(e), nil
		}
	}
	return nil, model.Errorf(x.name, off, "no regular member's data starts here")
}

func (x *Index) member(e Entry) *Member {
	r, off := x.r, e.Offset
	if e.R != nil {
		r, off = e.R, 0
	}
	return &Member{SectionReader: io.NewSectionReader(r, off, e.Size), info: model.NewFileInfo(path.Base(e.Name), e.Size), id: x.name + "!" + e.Name}
}

// Member opens the regular member at the cleaned, rooted name p, after the
// archive's links.
func (x *Index) Member(p string) (*Member, error) {
	real, err := x.follow(p)
	if err != nil {
		return nil, err
	}
	return x.open(p, real)
}

func (x *Index) open(p, real string) (*Member, error) {
	i, ok := x.last[real]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: real, Err: errNotInArchive}
	}
	e := x.entries[i]
	if !e.regular() || e.Sparse {
		what := kindOf(e)
		return nil, &model.RefusedError{Name: p, Path: p, Real: real, What: what, Err: model.ErrNotRegular}
	}
	return x.member(e), nil
}

func kindOf(e Entry) string {
	switch {
	case e.Sparse:
		return "a sparse member (its data is not stored in one piece)"
	case e.Type == tar.TypeDir:
		return "a directory"
	case e.Type == tar.TypeChar:
		return "a character device"
	case e.Type == tar.TypeBlock:
		return "a block device"
	case e.Type == tar.TypeFifo:
		return "a named pipe (FIFO)"
	}
	return fmt.Sprintf("a tar member of type %q", e.Type)
}

// join resolves name, written in a file of the directory dir (both of the
// archive), lexically: it reports false when the name climbs above the
// archive's root.
func join(dir, name string) (string, bool) {
	cur := dir
	if path.IsAbs(name) {
		cur = "/"
	}
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			if cur == "/" {
				return "", false
			}
			cur = path.Dir(cur)
		default:
			cur = path.Join(cur, c)
		}
	}
	return cur, true
}

// follow resolves the links of the archive along p, component by
// component, as a path lookup in the extracted tree would.
func (x *Index) follow(p string) (string, error) {
	hops := 0
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		next, _ := join(cur, c)
		i, ok := x.last[next]
		if !ok {
			cur = next
			continue
		}
		e := x.entries[i]
		switch e.Type {
		case tar.TypeSymlink:
			target, ok := join(cur, e.Linkname)
			if !ok {
				return "", &model.RefusedError{Name: p, Path: p, Real: next + " -> " + e.Linkname, Err: model.ErrOutsideArchive}
			}
			rest = append(strings.Split(strings.TrimPrefix(target, "/"), "/"), rest...)
			cur = "/"
		case tar.TypeLink:
			if len(rest) > 0 {
				cur = next // a hard link to a directory is no directory
				continue
			}
			target, ok := join("/", e.Linkname)
			if !ok {
				return "", &model.RefusedError{Name: p, Path: p, Real: next + " -> " + e.Linkname, Err: model.ErrOutsideArchive}
			}
			rest = strings.Split(strings.TrimPrefix(target, "/"), "/")
			cur = "/"
		default:
			cur = next
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", model.Errorf(x.name, e.Header, "%s: more than %d links", p, maxLinkHops)
		}
	}
	return cur, nil
}

// resolve applies the policy to name, written in the member from.
func (x *Index) resolve(from, name string) (model.NameUse, error) {
	u := model.NameUse{From: from, Name: name}
	refuse := func(reason error) (model.NameUse, error) {
		u.Err = &model.RefusedError{Name: name, Path: u.Path, Err: reason}
		return u, u.Err
	}
	if name == "" || strings.ContainsRune(name, 0) {
		return refuse(model.ErrBadName)
	}
	p, ok := join(path.Dir(Clean(from)), name)
	if !ok {
		return refuse(model.ErrOutsideArchive)
	}
	u.Path = p
	real, err := x.follow(p)
	if err != nil {
		u.Err = err
		return u, err
	}
	u.Real = real
	return u, nil
}

// Resolve implements model.Opener: name, as written in the member from,
// is the member it names in this archive.
func (x *Index) Resolve(from, name string) (string, error) {
	u, err := x.resolve(from, name)
	if err == nil {
		_, err = x.open(u.Path, u.Real)
		u.Err = err
	}
	x.log.Add(u)
	return u.Path, err
}

// Open implements model.Opener: the member name names, read in place.
func (x *Index) Open(from, name string) (model.File, string, error) {
	u, err := x.resolve(from, name)
	var m *Member
	if err == nil {
		m, err = x.open(u.Path, u.Real)
		u.Opened, u.Err = err == nil, err
		if err == nil && x.log != nil {
			m.release = x.log.Hold(u.Real)
		}
	}
	x.log.Add(u)
	if err != nil {
		return nil, "", err
	}
	return m, u.Path, nil
}

// List implements model.Opener: the regular members directly in the
// directory dir names.
func (x *Index) List(from, dir string) ([]string, error) {
	u, err := x.resolve(from, dir)
	x.log.Add(u)
	if err != nil {
		return nil, err
	}
	var out []string
	for n, i := range x.last {
		if path.Dir(n) == u.Real && n != "/" && x.entries[i].regular() {
			out = append(out, path.Base(n))
		}
	}
	slices.Sort(out)
	return out, nil
}

// errNotInArchive is fs.ErrNotExist for a name that resolves, inside the
// archive, to no member.
var errNotInArchive = fmt.Errorf("no such member in the layer or archive: %w", fs.ErrNotExist)
