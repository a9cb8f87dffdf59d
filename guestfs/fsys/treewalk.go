package fsys

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
)

// TreeWalk is the walk that filesystems whose directories name inodes by
// number share (XFS, UFS2), as FS.Walk describes it: from the root, depth
// first, each directory before its entries and subdirectories in entry
// order, a file with several hard links once, under its first path (and
// to Link under each other path).
// Entries naming an inode that is not in use are stale and skipped; what
// cannot be read is skipped and noted, at most MaxNotes times, and Run
// then returns a *PartialError. The walk bounds the entries it visits and
// the depth it descends, and stops when ctx is done.
type TreeWalk[N any] struct {
	Kind string // "xfs", "ufs2": the prefix of its errors
	Name string // the device (a partition or volume), for errors
	Root uint64 // the root directory's inode
	// Visit reads inode ino, found at path p, gives its Entry to the
	// walk's caller and returns the caller's error. ok is false when the
	// inode is no directory, regular file or symlink, or could not be
	// read (Visit notes why with note); dir says whether to descend.
	Visit func(p string, ino uint64, note func(error)) (node N, ok, dir bool, err error)
	// Entries lists a directory's entries. Those read before an error are
	// visited, and the error is noted.
	Entries func(dir N) ([]TreeEntry, error)
	// InUse says whether inode ino is allocated.
	InUse func(ino uint64) bool
	// Link, when set, gives path p as another name of inode ino, a file
	// that Visit gave earlier (a hard link; see Entry.Link).
	Link func(p string, ino uint64) error
	// Notes are problems found before the walk (an unreadable inode map).
	Notes []string
	// MaxDepth, MaxEntries and MaxNotes bound the directories descended,
	// the entries visited and the problems listed.
	MaxDepth, MaxEntries, MaxNotes int
}

// LinkEntry is the Link entry for path p, a further name of inode ino of
// a filesystem whose regular files' IDs are {0, inode}. A hard link to a
// symlink gets one too; it names no regular file's ID, and the index
// drops it.
func LinkEntry(p string, ino uint64) Entry {
	return Entry{Path: p, Mode: 0o644, ID: [2]uint64{0, ino}, Link: true}
}

// TreeEntry is one directory entry: a name and the inode it names.
type TreeEntry struct {
	Name string
	Ino  uint64
}

// Run walks the tree.
func (w *TreeWalk[N]) Run(ctx context.Context) error {
	notes := w.Notes
	skipped := 0
	note := func(err error) {
		if skipped++; skipped <= w.MaxNotes {
			notes = append(notes, err.Error())
		}
	}
	root, ok, dir, err := w.Visit("/", w.Root, note)
	if err != nil {
		return err
	}
	if !ok || !dir {
		return model.Errorf(w.Name, -1, "%s: root inode %d is not a readable directory", w.Kind, w.Root)
	}
	type frame struct {
		path  string
		node  N
		depth int
	}
	// seen says what each visited inode was: a later name of a file
	// given (linkable) is another hard link.
	const (
		visited uint8 = iota + 1
		linkable
	)
	seen := map[uint64]uint8{w.Root: visited}
	stack := []frame{{"/", root, 0}}
	entries := 0
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := w.Entries(fr.node)
		if err != nil {
			note(fmt.Errorf("directory %q: %w", fr.path, err))
		}
		var subdirs []frame
		for _, de := range ents {
			was := seen[de.Ino]
			if !ValidName(de.Name) || was == visited || was == linkable && w.Link == nil {
				continue
			}
			if entries++; entries > w.MaxEntries {
				notes = append(notes, fmt.Sprintf("more than %d entries: walk stopped", w.MaxEntries))
				return &PartialError{Notes: notes}
			}
			p := Join(fr.path, de.Name)
			if was == linkable {
				if err := w.Link(p, de.Ino); err != nil {
					return err
				}
				continue
			}
			if !w.InUse(de.Ino) {
				note(fmt.Errorf("%s: entry names free or unreadable inode %d", p, de.Ino))
				continue
			}
			seen[de.Ino] = visited
			node, ok, dir, err := w.Visit(p, de.Ino, note)
			if err != nil {
				return err
			}
			if ok && !dir {
				seen[de.Ino] = linkable
			}
			if ok && dir && fr.depth < w.MaxDepth {
				subdirs = append(subdirs, frame{p, node, fr.depth + 1})
			}
		}
		// Push in reverse so the walk visits subdirectories in entry order.
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	if skipped > w.MaxNotes {
		notes = append(notes, fmt.Sprintf("and %d more problems", skipped-w.MaxNotes))
	}
	if len(notes) > 0 {
		return &PartialError{Notes: notes}
	}
	return nil
}

// TreeLookup resolves paths in a filesystem whose directories name inodes
// by number (XFS, UFS2), following symlinks inside it (never outside: an
// absolute target starts again at the root, and ".." stops at the root).
type TreeLookup[N any] struct {
	Kind string // "xfs", "ufs2": the prefix of its errors
	Root uint64
	// Inode reads inode ino.
	Inode func(ino uint64) (N, error)
	// IsDir and IsSymlink say what a node is.
	IsDir, IsSymlink func(N) bool
	// Entries lists a directory's entries.
	Entries func(dir N) ([]TreeEntry, error)
	// ReadSymlink returns a symlink's target.
	ReadSymlink func(N) (string, error)
	// MaxSteps bounds the path components resolved, MaxSymlinks the
	// symlinks followed (Linux follows 40).
	MaxSteps, MaxSymlinks int
}

// Lookup resolves absolute path p to its node; followLast says whether
// a symlink in the last component is followed. A missing name gives an
// error that errors.Is fs.ErrNotExist.
func (l *TreeLookup[N]) Lookup(p string, followLast bool) (N, error) {
	var zero N
	links := 0
	cur, err := l.Inode(l.Root)
	if err != nil {
		return zero, err
	}
	var stack []N // the directories above cur, for ".."
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for steps := 0; len(rest) > 0; steps++ {
		if steps > l.MaxSteps {
			return zero, fmt.Errorf("%s: %s: path too deep", l.Kind, p)
		}
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				cur, stack = stack[len(stack)-1], stack[:len(stack)-1]
			}
			continue
		}
		if !l.IsDir(cur) {
			return zero, fmt.Errorf("%s: %s: not a directory", l.Kind, p)
		}
		ents, err := l.Entries(cur)
		if err != nil {
			return zero, err
		}
		var next N
		found := false
		for _, e := range ents {
			if e.Name == name {
				if next, err = l.Inode(e.Ino); err != nil {
					return zero, err
				}
				found = true
				break
			}
		}
		if !found {
			return zero, fmt.Errorf("%s: %s: %w", l.Kind, p, fs.ErrNotExist)
		}
		if l.IsSymlink(next) && (len(rest) > 0 || followLast) {
			if links++; links > l.MaxSymlinks {
				return zero, fmt.Errorf("%s: %s: too many symlinks", l.Kind, p)
			}
			target, err := l.ReadSymlink(next)
			if err != nil {
				return zero, err
			}
			if strings.HasPrefix(target, "/") && len(stack) > 0 {
				cur, stack = stack[0], nil // back to the root
			}
			rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
			continue
		}
		stack = append(stack, cur)
		cur = next
	}
	return cur, nil
}
