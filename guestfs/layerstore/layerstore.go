// Package layerstore finds the container image layers that a container
// engine keeps inside a guest filesystem, and reads a layer's files as
// the container sees them: its own directory over the layers below it.
//
// A VM that runs containers holds every image it pulled as directories of
// plain files: Docker's overlay2 driver under /var/lib/docker/overlay2/<id>/diff,
// Podman's and CRI-O's (containers/storage) under
// /var/lib/containers/storage/overlay/<id>/diff, either's vfs driver under
// vfs/dir/<id>, and containerd's overlayfs snapshotter (Docker 29's default
// image store) under io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/fs.
// The package records that vouch for those files (a Debian image's dpkg
// database) are the layer's own, not the VM's: this package maps a guest
// path to its layer and the path inside it, and gives the package readers
// a filesystem rooted at the layer.
//
// Everything here is read from the guest filesystem the caller passes;
// nothing names a host file. The overlay drivers' lower-layer lists are
// guest data, so they are bounded and checked (see Chain).
package layerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Kind names a storage layout.
type Kind string

const (
	// DockerOverlay2 is Docker's overlay2 graph driver.
	DockerOverlay2 Kind = "docker-overlay2"
	// ContainersOverlay is containers/storage's overlay driver (Podman,
	// Buildah, CRI-O).
	ContainersOverlay Kind = "containers-overlay"
	// VFS is the vfs driver of Docker and of containers/storage: each
	// layer is a whole copy of the image's filesystem up to it.
	VFS Kind = "vfs"
	// ContainerdOverlayfs is containerd's overlayfs snapshotter. Its
	// snapshots' parents are kept in containerd's metadata database,
	// which is not read: a snapshot is read alone.
	ContainerdOverlayfs Kind = "containerd-overlayfs"
)

// Layer is one layer directory of a container store in a guest
// filesystem.
type Layer struct {
	Kind  Kind
	Store string // the driver's directory, e.g. /var/lib/docker/overlay2
	ID    string // the layer's name in Store
	Dir   string // the layer's files, e.g. Store/ID/diff
}

// Split returns the layer that holds the file at absolute guest path p,
// and p's path inside the layer ("/etc/passwd"). ok is false for a path
// in no layer directory, or for a layer directory itself.
func Split(p string) (l Layer, inner string, ok bool) {
	p = path.Clean("/" + p)
	parts := strings.Split(p[1:], "/")
	// The innermost match wins: a layer that holds a container store of
	// its own (docker-in-docker) is that store's.
	for i := len(parts) - 1; i >= 0; i-- {
		switch parts[i] {
		case "overlay2", "overlay":
			// STORE/ID/diff/INNER
			if i+3 < len(parts) && parts[i+2] == "diff" && overlayID(parts[i+1]) {
				k := DockerOverlay2
				if parts[i] == "overlay" {
					k = ContainersOverlay
				}
				return layerAt(k, parts, i, i+1, i+3)
			}
		case "vfs":
			// vfs/dir/ID/INNER
			if i+3 < len(parts) && parts[i+1] == "dir" && safeName(parts[i+2]) {
				return layerAt(VFS, parts, i+1, i+2, i+3)
			}
		case "io.containerd.snapshotter.v1.overlayfs":
			// …/snapshots/N/fs/INNER
			if i+4 < len(parts) && parts[i+1] == "snapshots" && digits(parts[i+2]) && parts[i+3] == "fs" {
				return layerAt(ContainerdOverlayfs, parts, i+1, i+2, i+4)
			}
		}
	}
	return Layer{}, "", false
}

// layerAt builds the layer whose store is parts[:store+1], whose ID is
// parts[id], and whose files start at parts[inner].
func layerAt(k Kind, parts []string, store, id, inner int) (Layer, string, bool) {
	l := Layer{
		Kind:  k,
		Store: "/" + strings.Join(parts[:store+1], "/"),
		ID:    parts[id],
		Dir:   "/" + strings.Join(parts[:inner], "/"),
	}
	return l, "/" + strings.Join(parts[inner:], "/"), true
}

// overlayID reports whether name is an overlay layer's directory name:
// 64 hex digits (a chain ID's or a random ID), Docker's container init
// layers adding "-init".
func overlayID(name string) bool {
	name = strings.TrimSuffix(name, "-init")
	if len(name) != 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// safeName reports whether s can name a directory entry of a store.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 255 && !strings.ContainsAny(s, "/\x00")
}

// FS is the read access to a guest filesystem that Chain and Merged
// need; guestfs.Files provides it.
type FS interface {
	ReadFile(path string) ([]byte, error)
	ReadDir(path string) ([]fs.DirEntry, error)
	Readlink(path string) (string, error)
}

// Bounds on an overlay layer's list of lower layers: the kernel's
// overlayfs takes at most 500 lower directories, and Docker and
// containers/storage stop at 128 layers. The list names each layer by a
// 26-character link, so 500 of them take 14 KB.
const (
	MaxLowers    = 500
	maxLowerFile = 64 << 10
)

// Chain returns the directories whose union is the layer's filesystem,
// the layer's own first, then each layer below it, as the overlay driver
// mounts them. For an overlay driver, they are read from the layer's
// "lower" file: a colon-separated list of "l/LINK", where Store/l/LINK is
// a symlink to "../ID/diff". Each must lead to a layer directory of the
// same store: the list is guest data, and a name that leads elsewhere is
// an error, as is a list over MaxLowers entries or one that repeats a
// layer. A layer with no "lower" file is a bottom layer. Other kinds are
// read alone.
func Chain(fsys FS, l Layer) ([]string, error) {
	dirs := []string{l.Dir}
	if l.Kind != DockerOverlay2 && l.Kind != ContainersOverlay {
		return dirs, nil
	}
	lowerPath := path.Join(l.Store, l.ID, "lower")
	b, err := readSmall(fsys, path.Join(l.Store, l.ID), "lower", maxLowerFile)
	if errors.Is(err, fs.ErrNotExist) {
		return dirs, nil
	}
	if err != nil {
		return dirs, err
	}
	links, err := ParseLower(b)
	if err != nil {
		return dirs, fmt.Errorf("%s: %w", lowerPath, err)
	}
	seen := map[string]bool{l.ID: true}
	for i, link := range links {
		target, err := fsys.Readlink(path.Join(l.Store, link))
		if err != nil {
			return dirs, fmt.Errorf("%s: entry %d (%s): %w", lowerPath, i+1, link, err)
		}
		id, ok := lowerTarget(target)
		if !ok {
			return dirs, fmt.Errorf("%s: entry %d (%s) leads to %q, not a layer of %s", lowerPath, i+1, link, target, l.Store)
		}
		if seen[id] {
			return dirs, fmt.Errorf("%s: entry %d (%s): layer %s appears twice in the chain", lowerPath, i+1, link, id)
		}
		seen[id] = true
		dirs = append(dirs, path.Join(l.Store, id, "diff"))
	}
	return dirs, nil
}

// ParseLower parses an overlay layer's "lower" file: "l/LINK:l/LINK…",
// topmost lower layer first. It accepts only links inside the store's l/
// directory, at most MaxLowers of them.
func ParseLower(b []byte) ([]string, error) {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	entries := strings.Split(s, ":")
	if len(entries) > MaxLowers {
		return nil, fmt.Errorf("%d lower layers, over the cap of %d", len(entries), MaxLowers)
	}
	out := make([]string, 0, len(entries))
	for i, e := range entries {
		name, ok := strings.CutPrefix(e, "l/")
		if !ok || !safeName(name) || len(name) > 64 {
			return nil, fmt.Errorf("entry %d: %q is not a link in the store's l/ directory", i+1, e)
		}
		out = append(out, e)
	}
	return out, nil
}

// lowerTarget returns the layer ID of a link's target "../ID/diff".
func lowerTarget(t string) (string, bool) {
	rest, ok := strings.CutPrefix(t, "../")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "/diff")
	return id, ok && overlayID(id)
}

// readSmall reads dir/name when it is a regular file of at most max
// bytes (the size is the listing's, where the filesystem gives one).
func readSmall(fsys FS, dir, name string, max int) ([]byte, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name() != name {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s: not a regular file", path.Join(dir, name))
		}
		if info, err := e.Info(); err == nil && info.Size() > int64(max) {
			return nil, fmt.Errorf("%s: %d bytes, over the %d-byte cap", path.Join(dir, name), info.Size(), max)
		}
		b, err := fsys.ReadFile(path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if len(b) > max {
			return nil, fmt.Errorf("%s: %d bytes, over the %d-byte cap", path.Join(dir, name), len(b), max)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s: %w", path.Join(dir, name), fs.ErrNotExist)
}

// Merged is the union of layer directories, read as overlayfs merges
// them: a path is the topmost layer's that has it, and a whiteout (a
// character device where a lower layer has a file or directory) hides
// the lower layers' entry. Opaque directories (an overlay xattr) are not
// seen: their lower layers' entries show through. It implements the
// package readers' filesystem (pkgdb.FS and pkgdb.LinkReader).
type Merged struct {
	fsys   FS
	dirs   []string
	budget *Budget
}

// Budget bounds the lookups that Merged filesystems make in their layer
// directories: a file that the upper layers lack is looked up in each of
// them, so a chain of hundreds of layers (a guest's lower lists say how
// many) multiplies what the package readers cost. NewBudget gives one;
// nil allows any number. It is not safe for concurrent use.
type Budget struct{ left int64 }

// NewBudget allows n lookups.
func NewBudget(n int64) *Budget { return &Budget{left: n} }

// ErrLookups is the error of a read past the Budget.
var ErrLookups = errors.New("over the budget of lookups in container layer directories")

// take spends one lookup, false once the budget is spent.
func (b *Budget) take() bool {
	if b == nil {
		return true
	}
	if b.left <= 0 {
		return false
	}
	b.left--
	return true
}

// NewMerged returns the union of dirs, topmost first; each lookup in one
// of them spends one of budget's (nil: unbounded).
func NewMerged(fsys FS, dirs []string, budget *Budget) *Merged {
	return &Merged{fsys: fsys, dirs: dirs, budget: budget}
}

// ReadFile reads the topmost layer's file at p.
func (m *Merged) ReadFile(p string) ([]byte, error) { return m.readFile(p, m.fsys.ReadFile) }

// ReadFileLimit is ReadFile with a cap of limit bytes, where the
// underlying FS has a ReadFileLimit (guestfs.Files does); else ReadFile.
func (m *Merged) ReadFileLimit(p string, limit int64) ([]byte, error) {
	lf, ok := m.fsys.(interface {
		ReadFileLimit(string, int64) ([]byte, error)
	})
	if !ok {
		return m.ReadFile(p)
	}
	return m.readFile(p, func(name string) ([]byte, error) { return lf.ReadFileLimit(name, limit) })
}

func (m *Merged) readFile(p string, read func(string) ([]byte, error)) ([]byte, error) {
	p = path.Clean("/" + p)
	for _, d := range m.dirs {
		if !m.budget.take() {
			return nil, &fs.PathError{Op: "read", Path: p, Err: ErrLookups}
		}
		b, err := read(path.Join(d, p))
		if err == nil {
			return b, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if m.whiteout(d, p) {
			break
		}
		return nil, err
	}
	return nil, &fs.PathError{Op: "read", Path: p, Err: fs.ErrNotExist}
}

// whiteout reports whether layer directory d hides p or a directory
// above it with a whiteout, or holds a non-directory where p needs one.
// Only called when reading p there failed other than by its absence.
func (m *Merged) whiteout(d, p string) bool {
	for q := p; q != "/"; q = path.Dir(q) {
		if !m.budget.take() {
			return true // no more lookups: read nothing below
		}
		ents, err := m.fsys.ReadDir(path.Join(d, path.Dir(q)))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.Name() == path.Base(q) {
				if e.Type()&fs.ModeCharDevice != 0 || q != p && !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
					return true
				}
				break
			}
		}
	}
	return false
}

// ReadDir lists the union of the layers' directory p.
func (m *Merged) ReadDir(p string) ([]fs.DirEntry, error) {
	p = path.Clean("/" + p)
	var out []fs.DirEntry
	seen := map[string]bool{}
	found := false
	for _, d := range m.dirs {
		if !m.budget.take() {
			return nil, &fs.PathError{Op: "readdir", Path: p, Err: ErrLookups}
		}
		ents, err := m.fsys.ReadDir(path.Join(d, p))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if m.whiteout(d, p) {
				break
			}
			return nil, err
		}
		found = true
		for _, e := range ents {
			if seen[e.Name()] {
				continue
			}
			seen[e.Name()] = true
			if e.Type()&fs.ModeCharDevice == 0 {
				out = append(out, e)
			}
		}
	}
	if !found {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	return out, nil
}

// Readlink returns the target of the topmost layer's symlink at p.
func (m *Merged) Readlink(p string) (string, error) {
	p = path.Clean("/" + p)
	for _, d := range m.dirs {
		if !m.budget.take() {
			return "", &fs.PathError{Op: "readlink", Path: p, Err: ErrLookups}
		}
		t, err := m.fsys.Readlink(path.Join(d, p))
		if err == nil {
			return t, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return "", err
	}
	return "", &fs.PathError{Op: "readlink", Path: p, Err: fs.ErrNotExist}
}
