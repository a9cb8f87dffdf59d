package blockmap

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/formats/model"
)

// ErrNoOpener is returned when a parent is needed but Options.Open is nil.
var ErrNoOpener = errors.New("parent not followed: no opener (open through formats.Open)")

// OpenParent opens a parent image through opts.Open, one link deeper, and
// returns it with its current view's disk. parent must come from
// opts.Opener (FindParent); the Opener is passed down the chain.
func OpenParent(ctx context.Context, opts model.Options, self, parent string) (*model.Image, model.Disk, error) {
	if opts.Open == nil {
		return nil, nil, ErrNoOpener
	}
	chain := slices.Clone(opts.Chain)
	if real, err := filepath.EvalSymlinks(self); err == nil {
		if abs, err := filepath.Abs(real); err == nil && !slices.Contains(chain, abs) {
			chain = append(chain, abs)
		}
	}
	im, err := opts.Open(ctx, parent, model.Options{Open: opts.Open, Depth: opts.Depth + 1, Chain: chain, Opener: opts.Opener})
	if err != nil {
		return nil, nil, err
	}
	v, ok := im.Current()
	if !ok {
		im.Close()
		return nil, nil, model.Errorf(parent, -1, "parent image has no current view")
	}
	return im, v.Disk, nil
}

// Adopt appends a parent's views to im as backing views and records the link.
func Adopt(im *model.Image, link model.BackingLink, parent *model.Image) {
	im.Backing = append(im.Backing, link)
	im.Backing = append(im.Backing, parent.Backing...)
	im.Views = append(im.Views, model.AdoptBacking(filepath.Base(im.Path), parent)...)
	im.AddCloser(parent)
}

// UTF16 decodes a NUL-terminated UTF-16 string in the given byte order.
func UTF16(b []byte, bigEndian bool) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		var c uint16
		if bigEndian {
			c = uint16(b[i])<<8 | uint16(b[i+1])
		} else {
			c = uint16(b[i+1])<<8 | uint16(b[i])
		}
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// Named is a parent name as an image wrote it, and the offset where it
// wrote it (for errors).
type Named struct {
	Name string
	Off  int64
}

// Candidates turns parent names as Windows or Unix tools write them
// ("..\dir\base.vhd", "C:\vms\base.vhd", "file:///...") into names for an
// Opener to resolve, relative to the image's directory or absolute; the
// last resort is each base name, next to the image. Duplicates and empty
// names are dropped.
func Candidates(names ...Named) []Named {
	var out []Named
	add := func(n Named) {
		if n.Name != "" && !slices.ContainsFunc(out, func(o Named) bool { return o.Name == n.Name }) {
			out = append(out, n)
		}
	}
	var bases []Named
	for _, n := range names {
		s := strings.TrimSpace(n.Name)
		s = strings.TrimPrefix(s, "file://")
		if s == "" {
			continue
		}
		u := strings.ReplaceAll(s, `\`, "/")
		isWinAbs := len(u) >= 2 && u[1] == ':' || strings.HasPrefix(u, "//")
		switch {
		case isWinAbs:
			// A Windows absolute path cannot be opened here.
		case filepath.IsAbs(u):
			add(Named{filepath.Clean(u), n.Off})
		default:
			add(Named{u, n.Off})
		}
		bases = append(bases, Named{filepath.Base(u), n.Off})
	}
	for _, b := range bases {
		add(b)
	}
	return out
}

// Found is what FindParent found.
type Found struct {
	Path  string // the parent, "" when none matched
	Tried int    // candidates that resolved and were examined
	// Refused is the first candidate the Opener refused (outside the
	// allowed roots, not a regular file), and why: when nothing matched,
	// the likely reason the parent was not found.
	Refused   Named
	RefusedBy error
}

// FindParent resolves each candidate through opener, as names written in
// the file from, and returns the first whose file match accepts. Names the
// policy refuses are never opened.
func FindParent(opener model.Opener, from string, cands []Named, match func(path string) bool) Found {
	var f Found
	for _, c := range cands {
		p, err := opener.Resolve(from, c.Name)
		if err != nil {
			var re *model.RefusedError
			if errors.As(err, &re) && f.RefusedBy == nil {
				f.Refused, f.RefusedBy = c, err
			}
			continue
		}
		f.Tried++
		if match(p) {
			f.Path = p
			return f
		}
	}
	return f
}
