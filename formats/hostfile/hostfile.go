// Package hostfile opens host files for the image readers without trusting
// the names written inside images. OpenRegular opens a file read-only only
// if it is a regular file, and never blocks (a FIFO, a device or a /proc
// file is refused before it is read). Roots and Sealed are the two
// model.Opener policies: Roots resolves the names an image writes (backing
// files, data files, extents, parents) only to regular files under a set
// of allowed directories; Sealed, for disks found inside a container layer
// or an archive, resolves no name at all.
package hostfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/formats/model"
)

// OpenRegular opens path read-only if it is a regular file. The file is
// checked with stat before it is opened (opening a device can have side
// effects), opened with O_NONBLOCK (opening a FIFO for reading otherwise
// waits for a writer, forever and deaf to signals), and checked again with
// fstat and fstatfs on the open descriptor: a FIFO, device, socket or
// directory, or a file of /proc, /sys or another kernel pseudo file system
// is refused with a *model.RefusedError wrapping model.ErrNotRegular.
func OpenRegular(path string) (*os.File, error) {
	return openRegular(path, path, 0)
}

// OpenTarget is OpenRegular that also opens a block device, read-only:
// for a target the user names (an LVM logical volume, a ZFS zvol, a
// disk), never for a name an image writes.
func OpenTarget(path string) (*os.File, error) {
	return openRegular(path, path, openBlock)
}

// openBlock, among openRegular's flags (no open flag has this bit: it is
// taken off before the open), lets the file be a block device.
const openBlock = 1 << 62

// OpenRegularNoFollow is OpenRegular for a file that must not be a
// symbolic link (a blob of an OCI layout, named by its digest): a link is
// refused, whatever it points at.
func OpenRegularNoFollow(path string) (*os.File, error) {
	return openRegular(path, path, unix.O_NOFOLLOW)
}

// ErrSymlink: a component of a path that must lie inside a directory
// (OpenBeneath) is a symbolic link.
var ErrSymlink = errors.New("is a symlink, not followed: the files read must lie inside the directory")

// OpenBeneath is OpenRegularNoFollow for the file at dir/rel whose every
// component below dir must be what it names, not a symbolic link: the
// files of an OCI layout directory (index.json, blobs/ALG/HEX), which a
// layout whose blobs directory links to another store's would otherwise
// make imgaudit read (and report under the layout's name). dir itself,
// the directory the user named, is followed. The path is walked one
// component at a time from a descriptor of dir (openat with O_NOFOLLOW),
// so that a link swapped in during the walk is refused too; rel's
// components may not be empty, "." or "..". A link is refused with an
// error wrapping ErrSymlink that names its path; a last component that
// is no regular file as OpenRegular refuses it, without opening it.
func OpenBeneath(dir, rel string) (*os.File, error) {
	parts := strings.Split(rel, "/")
	for _, c := range parts {
		if c == "" || c == "." || c == ".." {
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, rel), Err: fs.ErrInvalid}
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	cur := dir
	for _, c := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, c)
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			err = linkError(fd, c, cur, err)
			unix.Close(fd)
			return nil, err
		}
		unix.Close(fd)
		fd = next
	}
	defer unix.Close(fd)
	last := parts[len(parts)-1]
	name := filepath.Join(dir, rel)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, last, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	switch t := st.Mode & unix.S_IFMT; t {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return nil, fmt.Errorf("%s %w", name, ErrSymlink)
	default:
		return nil, &model.RefusedError{Name: name, Path: name, What: whatMode(t), Err: model.ErrNotRegular}
	}
	f, err := unix.Openat(fd, last, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, linkError(fd, last, name, err)
	}
	if err := checkFD(f, name, false); err != nil {
		unix.Close(f)
		return nil, err
	}
	if err := unix.SetNonblock(f, false); err != nil {
		unix.Close(f)
		return nil, &fs.PathError{Op: "fcntl", Path: name, Err: err}
	}
	return os.NewFile(uintptr(f), name), nil
}

// linkError is the error of opening c (at path p) under the directory
// descriptor dirfd with O_NOFOLLOW: a link is named as such.
func linkError(dirfd int, c, p string, err error) error {
	var st unix.Stat_t
	if errors.Is(err, unix.ELOOP) || unix.Fstatat(dirfd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s %w", p, ErrSymlink)
	}
	return &fs.PathError{Op: "open", Path: p, Err: err}
}

// openRegular opens path, naming it name in errors; flags are added to the
// open flags (O_NOFOLLOW for a path already resolved).
func openRegular(path, name string, flags int) (*os.File, error) {
	block := flags&openBlock != 0
	flags &^= openBlock
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if what := irregular(st.Mode()); what != "" && !(block && isBlock(st.Mode())) {
		return nil, &model.RefusedError{Name: name, Path: name, What: what, Err: model.ErrNotRegular}
	}
	if real, err := filepath.EvalSymlinks(path); err == nil && pseudoPath(real) {
		return nil, &model.RefusedError{Name: name, Path: name, Real: real, What: "a kernel pseudo file (/proc, /sys)", Err: model.ErrNotRegular}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	if err := checkFD(fd, name, block); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Reads from a regular file never block; the flag goes so that the
	// descriptor behaves as os.Open's does.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkFD refuses an open descriptor that is not a regular file on a real
// file system (the file may have been swapped after the stat).
func checkFD(fd int, name string, block bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: name, Err: err}
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && !(block && t == unix.S_IFBLK) {
		return &model.RefusedError{Name: name, Path: name, What: whatMode(st.Mode & unix.S_IFMT), Err: model.ErrNotRegular}
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err == nil && pseudoFS(int64(sfs.Type)) {
		return &model.RefusedError{Name: name, Path: name, What: "a kernel pseudo file (/proc, /sys)", Err: model.ErrNotRegular}
	}
	return nil
}

// isBlock reports a block device.
func isBlock(m fs.FileMode) bool { return m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0 }

// irregular names what a non-regular file is, or "" for a regular file.
func irregular(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

func whatMode(m uint32) string {
	switch m {
	case unix.S_IFIFO:
		return "a named pipe (FIFO)"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFDIR:
		return "a directory"
	}
	return "not a regular file"
}

// pseudoPath reports whether a resolved path lies under /proc or /sys,
// whose "regular" files are kernel state with sizes that lie.
func pseudoPath(real string) bool {
	for _, d := range []string{"/proc", "/sys"} {
		if real == d || strings.HasPrefix(real, d+"/") {
			return true
		}
	}
	return false
}

// pseudoFS reports kernel pseudo file systems by their magic numbers
// (statfs(2)), wherever they are mounted.
func pseudoFS(t int64) bool {
	switch t {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC,
		unix.SECURITYFS_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC, unix.EFIVARFS_MAGIC,
		unix.BPF_FS_MAGIC:
		return true
	}
	return false
}

// Log records every name an Opener was asked for. It is safe for
// concurrent use; a nil *Log records nothing.
type Log struct {
	mu   sync.Mutex
	uses []model.NameUse
	held map[string]int // open handles, by the file's real name (Hold)
	also *Log           // records every request too (Tee)
}

// Tee returns a new Log that records every request in itself and in l: a
// scan keeps one per target, to know which host files that target's image
// was allowed (Allowed), while l sees the whole run's.
func (l *Log) Tee() *Log { return &Log{also: l} }

// Allowed returns the host files the policy allowed (resolved or opened,
// whether or not the image could then read them), as each request named
// them (Path) and after symlinks (Real), without repeats.
func (l *Log) Allowed() []string {
	var out []string
	seen := map[string]bool{}
	for _, u := range l.Uses() {
		if u.Err != nil {
			continue
		}
		for _, p := range []string{u.Path, u.Real} {
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// Hold records that the file real is open, until the returned release
// is called (once; later calls do nothing): an Opener whose files can
// say when they are closed (an archive's members) tells a file an image
// kept (a parent, an extent) from one it opened to look at and closed
// (a VDI's parent candidates, compared by UUID).
func (l *Log) Hold(real string) (release func()) {
	if l == nil {
		return func() {}
	}
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]int{}
	}
	l.held[real]++
	l.mu.Unlock()
	return sync.OnceFunc(func() {
		l.mu.Lock()
		if l.held[real]--; l.held[real] <= 0 {
			delete(l.held, real)
		}
		l.mu.Unlock()
	})
}

// Holds reports whether the file real is open (Hold).
func (l *Log) Holds(real string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[real] > 0
}

// Add records one request; Openers outside this package (an archive's
// index) record theirs here too.
func (l *Log) Add(u model.NameUse) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.uses = append(l.uses, u)
	l.mu.Unlock()
	l.also.Add(u)
}

// Uses returns the requests recorded so far, in order.
func (l *Log) Uses() []model.NameUse {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]model.NameUse(nil), l.uses...)
}

// root is an allowed directory, as given (absolute) and after symlinks.
type root struct{ abs, real string }

// Roots allows the regular files under a set of directories: by default
// the directory of the target (or the scanned directory), plus each
// --backing-root.
type Roots struct {
	roots []root
	log   *Log
}

var _ model.Opener = (*Roots)(nil)

// NewRoots returns the policy that allows the regular files under dirs,
// each of which must be an existing directory.
func NewRoots(dirs ...string) (*Roots, error) {
	r := &Roots{}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(real)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", d)
		}
		if !r.has(real) {
			r.roots = append(r.roots, root{abs: abs, real: real})
		}
	}
	if len(r.roots) == 0 {
		return nil, errors.New("hostfile: no allowed root")
	}
	return r, nil
}

func (r *Roots) has(real string) bool {
	for _, x := range r.roots {
		if x.real == real {
			return true
		}
	}
	return false
}

// WithLog returns the same policy recording each request in l.
func (r *Roots) WithLog(l *Log) *Roots {
	c := *r
	c.log = l
	return &c
}

// Dirs returns the allowed roots after symlinks.
func (r *Roots) Dirs() []string {
	var out []string
	for _, x := range r.roots {
		out = append(out, x.real)
	}
	return out
}

// Resolve implements model.Opener.
func (r *Roots) Resolve(from, name string) (string, error) {
	u, err := r.resolve(from, name)
	r.log.Add(u)
	if err != nil {
		return "", err
	}
	return u.Path, nil
}

// Open implements model.Opener. The file is opened by its resolved path,
// with O_NOFOLLOW, so that what is opened is what was checked.
func (r *Roots) Open(from, name string) (model.File, string, error) {
	u, err := r.resolve(from, name)
	var f *os.File
	if err == nil {
		f, err = openRegular(u.Real, u.Path, unix.O_NOFOLLOW)
		u.Opened, u.Err = err == nil, err
	}
	r.log.Add(u)
	if err != nil {
		return nil, "", err
	}
	return f, u.Path, nil
}

// List implements model.Opener: the regular files of the directory dir
// names, relative to from's directory. The directory is resolved under
// the policy first (EvalSymlinks): one outside the roots is refused
// unread, so that an image never makes imgaudit list, or name in an
// error, what lies beside the roots. Listing is not opening: the names it
// returns are each resolved by Open under the policy, which refuses those
// outside the roots.
func (r *Roots) List(from, dir string) ([]string, error) {
	if dir == "" || strings.ContainsRune(dir, 0) {
		return nil, &model.RefusedError{Name: dir, Err: model.ErrBadName}
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(from), dir)
	}
	real, err := r.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// maxLinks bounds the symbolic links EvalSymlinks follows for one path
// (filepath.EvalSymlinks's bound).
const maxLinks = 255

// EvalSymlinks is filepath.EvalSymlinks for a path that must lead inside
// the roots, and that never touches the file system outside them. p is
// made absolute and cleaned, and checked lexically against the roots (as
// given and after symlinks) before any system call: a path outside them
// is refused without a stat, a readlink or a mount being triggered, and
// the refusal names no host path but p. A path inside is then resolved
// one component at a time from its root's resolved directory; a component
// is looked at (lstat, readlink) only if it lies under a root or is one
// of the directories above a root, so a symbolic link inside a root that
// leads out (to /etc, to an automounted /net/host) is refused before its
// target is looked at, with the path it leads to as written (Real). The
// refusal is a *model.RefusedError wrapping model.ErrOutsideRoots; other
// errors (a missing file) are the file system's, about a path inside the
// roots.
func (r *Roots) EvalSymlinks(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	refuse := func(real string) (string, error) {
		return "", &model.RefusedError{Name: p, Path: abs, Real: real, Err: model.ErrOutsideRoots}
	}
	dest, rest, ok := r.lexical(abs)
	if !ok {
		return refuse("")
	}
	for links := 0; rest != ""; {
		var comp string
		comp, rest, _ = strings.Cut(strings.TrimLeft(rest, "/"), "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			// dest has no symbolic link: its parent is lexical.
			dest = filepath.Dir(dest)
			continue
		}
		next := filepath.Join(dest, comp)
		if !r.mayLook(next) {
			return refuse(filepath.Join(next, rest))
		}
		st, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			dest = next
			continue
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "lstat", Path: abs, Err: unix.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			dest = "/"
		}
		rest = target + "/" + rest
	}
	if !r.inside(dest) {
		return refuse(dest)
	}
	return dest, nil
}

// lexical finds the root abs (absolute and clean) lies under, lexically:
// the root's resolved directory, and what remains of abs below it.
func (r *Roots) lexical(abs string) (dir, rest string, ok bool) {
	for _, x := range r.roots {
		if under(abs, x.real) {
			return x.real, strings.TrimPrefix(abs, x.real), true
		}
	}
	for _, x := range r.roots {
		if under(abs, x.abs) {
			return x.real, strings.TrimPrefix(abs, x.abs), true
		}
	}
	return "", "", false
}

// mayLook reports whether EvalSymlinks may look at p (absolute, clean,
// its directory free of symbolic links): p lies under a root after
// symlinks, or is a directory above one (whose every component NewRoots
// has already resolved).
func (r *Roots) mayLook(p string) bool {
	for _, x := range r.roots {
		if under(p, x.real) || under(x.real, p) {
			return true
		}
	}
	return false
}

func (r *Roots) resolve(from, name string) (model.NameUse, error) {
	u := model.NameUse{From: from, Name: name}
	refuse := func(reason error, what string) (model.NameUse, error) {
		err := &model.RefusedError{Name: name, Path: u.Path, Real: u.Real, What: what, Err: reason}
		u.Err = err
		return u, err
	}
	if name == "" || strings.ContainsRune(name, 0) {
		return refuse(model.ErrBadName, "")
	}
	p := name
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(from), p)
	}
	u.Path = filepath.Clean(p)
	abs, err := filepath.Abs(u.Path)
	if err != nil {
		u.Err = err
		return u, err
	}
	// A name outside the roots is refused before any system call (a stat
	// or readlink of /etc/localtime, an automount under /net), and its
	// refusal names nothing the host resolved: whether a file outside the
	// roots exists, or where it leads, is none of the image's business.
	// A name inside that leads out through a symbolic link is refused
	// with where the link leads (a link under a root is the host's, not
	// the image's), before that target is looked at.
	real, err := r.EvalSymlinks(abs)
	if err != nil {
		var re *model.RefusedError
		if errors.As(err, &re) {
			u.Real = re.Real
			return refuse(re.Err, "")
		}
		u.Err = err
		return u, err
	}
	u.Real = real
	if pseudoPath(real) {
		return refuse(model.ErrNotRegular, "a kernel pseudo file (/proc, /sys)")
	}
	st, err := os.Stat(real)
	if err != nil {
		u.Err = err
		return u, err
	}
	if what := irregular(st.Mode()); what != "" {
		return refuse(model.ErrNotRegular, what)
	}
	return u, nil
}

// inside reports whether p (resolved) lies under a root after symlinks.
func (r *Roots) inside(p string) bool {
	for _, x := range r.roots {
		if under(p, x.real) {
			return true
		}
	}
	return false
}

func under(p, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// Sealed resolves no name: the policy for a disk found inside a container
// layer or an archive (an OVA member, a spooled layer file), whose backing
// and extent names mean files of that layer or archive, never of this
// host. A disk read in place inside a layer or an archive resolves them
// through a tar index instead (formats/tarindex); a disk spooled out of a
// compressed stream has no such index, and Sealed refuses every name.
type Sealed struct {
	Log *Log // records the refusals; may be nil
}

var _ model.Opener = Sealed{}

// Resolve implements model.Opener: always model.ErrSealed.
func (s Sealed) Resolve(from, name string) (string, error) {
	err := &model.RefusedError{Name: name, Err: model.ErrSealed}
	s.Log.Add(model.NameUse{From: from, Name: name, Err: err})
	return "", err
}

// Open implements model.Opener: always model.ErrSealed.
func (s Sealed) Open(from, name string) (model.File, string, error) {
	_, err := s.Resolve(from, name)
	return nil, "", err
}

// List implements model.Opener: always model.ErrSealed.
func (s Sealed) List(from, dir string) ([]string, error) {
	_, err := s.Resolve(from, dir)
	return nil, err
}

// For returns the Opener a reader uses: opts.Opener when set; for a
// top-level image opened without one, Roots of the image's own directory;
// below the top (a backing file reached without an Opener passed down),
// Sealed, so that a reader that forgets to pass the policy on fails
// closed.
func For(opts model.Options, path string) model.Opener {
	if opts.Opener != nil {
		return opts.Opener
	}
	if opts.Depth == 0 {
		if r, err := NewRoots(filepath.Dir(path)); err == nil {
			return r
		}
	}
	return Sealed{}
}

// OpenImage opens the regular file at path and reads the image in it with
// newImage, a reader's io.ReaderAt constructor (qcow2.New, ...): the
// path-based Open of every reader. The file is closed with the image. The
// files the image names are resolved through opts.Opener, by default For's
// policy. what, when set, prefixes the errors of opening the file
// ("qcow2: ...").
func OpenImage(ctx context.Context, what, path string, opts model.Options, newImage model.OpenFunc) (*model.Image, error) {
	fail := func(err error) (*model.Image, error) {
		if what != "" {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return nil, err
	}
	open := OpenRegular
	if opts.BlockDevice {
		open = OpenTarget
	}
	f, err := open(path)
	if err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fail(err)
	}
	size := st.Size()
	if isBlock(st.Mode()) {
		// A block device's size is where it ends, not its inode's.
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return fail(&fs.PathError{Op: "seek", Path: path, Err: err})
		}
	}
	opts.Opener = For(opts, path)
	im, err := newImage(ctx, f, size, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	im.AddCloser(f)
	return im, nil
}

// Enter is what a reader's io.ReaderAt constructor (New) does first when
// its image may name other files: model.EnterChain (depth and cycles), and
// when opts has no Opener, Sealed: nothing says where r came from, so none
// of its names resolves.
func Enter(r io.ReaderAt, name string, opts model.Options) (model.Options, error) {
	opts, err := model.EnterChain(r, name, opts)
	if opts.Opener == nil {
		opts.Opener = Sealed{}
	}
	return opts, err
}
