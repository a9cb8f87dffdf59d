package blockmap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/formats/model"
)

// ErrNoOpener is returned when a parent is needed but Options.Open is nil.
var ErrNoOpener = errors.New("parent not followed: no opener (open through formats.Open)")

// OpenParent opens a parent image through opts.Open, one link deeper, and
// returns it with its current view's disk.
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
	im, err := opts.Open(ctx, parent, model.Options{Open: opts.Open, Depth: opts.Depth + 1, Chain: chain})
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

// Candidates turns parent names as Windows or Unix tools write them
// ("..\dir\base.vhd", "C:\vms\base.vhd", "file:///...") into host paths to
// try, relative names against dir first; the last resort is the base name
// in dir. Duplicates and empty names are dropped.
func Candidates(dir string, names ...string) []string {
	var out []string
	add := func(p string) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	var bases []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		n = strings.TrimPrefix(n, "file://")
		if n == "" {
			continue
		}
		u := strings.ReplaceAll(n, `\`, "/")
		isWinAbs := len(u) >= 2 && u[1] == ':' || strings.HasPrefix(u, "//")
		switch {
		case isWinAbs:
			// A Windows absolute path cannot be opened here.
		case filepath.IsAbs(u):
			add(filepath.Clean(u))
		default:
			add(filepath.Join(dir, u))
		}
		bases = append(bases, filepath.Join(dir, filepath.Base(u)))
	}
	for _, b := range bases {
		add(b)
	}
	return out
}

// Exists says whether path names a regular file.
func Exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
