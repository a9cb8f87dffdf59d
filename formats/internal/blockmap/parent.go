package blockmap

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/formats/model"
)

// ErrNoOpener is returned when a parent is needed but Options.Open is nil.
var ErrNoOpener = errors.New("parent not followed: no opener (open through formats.Open)")

// OpenParent reads f, the parent FindParent found and opened as parent,
// through opts.Open one link deeper, and returns it with its current
// view's disk. The Opener is passed down the chain; f is closed with the
// image, or at once on an error.
func OpenParent(ctx context.Context, opts model.Options, f model.File, parent string) (*model.Image, model.Disk, error) {
	if opts.Open == nil {
		f.Close()
		return nil, nil, ErrNoOpener
	}
	im, err := model.OpenLinked(ctx, opts, f, parent, "")
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

// Adopt appends a parent's views to im as backing views and records the
// link. The parent's errors become im's: a grandparent that could not be
// opened leaves the chain short, so im was not read completely (before,
// only the nearest parent's failure reached the image, and a scan of a
// three-image chain whose root was missing passed as complete).
func Adopt(im *model.Image, link model.BackingLink, parent *model.Image) {
	im.Backing = append(im.Backing, link)
	im.Backing = append(im.Backing, parent.Backing...)
	im.Views = append(im.Views, model.AdoptBacking(filepath.Base(im.Path), parent)...)
	for _, e := range parent.Errors {
		im.Errors = append(im.Errors, fmt.Errorf("parent %s: %w", filepath.Base(parent.Path), e))
	}
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
	File  model.File // the parent, open; nil when none matched
	Path  string     // its name, as the Opener forms it
	Tried int        // candidates that opened and were examined
	// Refused is the first candidate the Opener refused (outside the
	// allowed roots, not a regular file), and why: when nothing matched,
	// the likely reason the parent was not found.
	Refused   Named
	RefusedBy error
}

// FindParent opens each candidate through opener, as names written in the
// file from, and returns the first whose content match accepts, still
// open; the others are closed. Names the policy refuses are never opened.
func FindParent(opener model.Opener, from string, cands []Named, match func(f model.File, path string) bool) Found {
	var found Found
	for _, c := range cands {
		f, p, err := opener.Open(from, c.Name)
		if err != nil {
			var re *model.RefusedError
			if errors.As(err, &re) && found.RefusedBy == nil {
				found.Refused, found.RefusedBy = c, err
			}
			continue
		}
		found.Tried++
		if match(f, p) {
			found.File, found.Path = f, p
			return found
		}
		f.Close()
	}
	return found
}
