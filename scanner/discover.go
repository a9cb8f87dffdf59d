package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// walked is one entry of a scanned directory. Every entry ends up as a
// target, as a file read through another target (a backing file, an
// extent), or in the report's skipped list: nothing is dropped silently.
type walked struct {
	path string // as found under the directory
	real string // resolved path of a regular file or a followed symlink
	link bool   // path is a symlink to real
	// under is the --backing-root a followed symlink leads into ("" for
	// the scanned directory).
	under string
	skip  string // why it is not scanned; "" for files to classify
	err   error  // it could not be read: a failed target
}

// walkDir lists every entry under dir except directories. Symlinks are
// followed to regular files inside dir or one of the extra allowed roots
// (the --backing-root directories): the path stays the link's, and the
// target gets a note naming where the link leads; any other symlink, FIFO,
// socket or device is skipped with the reason. A subdirectory or entry
// that cannot be read is an entry with its error. Only an unreadable dir
// itself is an error.
func walkDir(ctx context.Context, dir string, extra []string) ([]walked, error) {
	roots := allowedLinkRoots{scanned: realPath(dir)}
	dirs := []string{dir}
	for _, r := range extra {
		roots.extra = append(roots.extra, realPath(r))
		if st, err := os.Stat(r); err == nil && st.IsDir() {
			dirs = append(dirs, r)
		}
	}
	names, err := hostfile.NewRoots(dirs...)
	if err != nil {
		return nil, err
	}
	roots.names = names
	var out []walked
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			out = append(out, walked{path: p, err: err})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		switch t := d.Type(); {
		case t.IsDir():
		case t.IsRegular():
			out = append(out, walked{path: p, real: realPath(p)})
		case t&fs.ModeSymlink != 0:
			out = append(out, followLink(roots, p))
		default:
			out = append(out, walked{path: p, skip: "not a regular file: " + fileKind(t)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A link to a file that is scanned under its own name, or through an
	// earlier link, is not scanned twice.
	byReal := map[string]string{}
	for _, w := range out {
		if w.real != "" && !w.link {
			byReal[w.real] = w.path
		}
	}
	for i := range out {
		w := &out[i]
		if !w.link {
			continue
		}
		if other, ok := byReal[w.real]; ok {
			w.skip = fmt.Sprintf("symlink to %s, which is scanned as %s", w.real, other)
			continue
		}
		byReal[w.real] = w.path
	}
	return out, nil
}

// allowedLinkRoots are the directories a symlink of a directory scan may
// lead into: the scanned directory, and the --backing-root directories
// (resolved).
type allowedLinkRoots struct {
	scanned string
	extra   []string
	// names resolves a link under the same policy as the names an image
	// writes: the same roots, checked before the file system is asked.
	names *hostfile.Roots
}

// where returns the allowed root that holds dst (resolved) and whether
// it is the scanned directory; ok is false outside every root.
func (r allowedLinkRoots) where(dst string) (root string, scanned, ok bool) {
	if within(r.scanned, dst) {
		return r.scanned, true, true
	}
	for _, x := range r.extra {
		if within(x, dst) {
			return x, false, true
		}
	}
	return "", false, false
}

// within reports whether p lies under dir (both absolute and resolved).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// followLink decides about a symlink of a scanned directory: only a
// regular file inside an allowed root is followed; one under a
// --backing-root says so in its note. The link is resolved by
// hostfile.Roots.EvalSymlinks, which looks at nothing outside the roots:
// a link that leads out (to /etc, to an automounted /net/host) is skipped
// without its target being looked at, whether or not that target exists.
func followLink(roots allowedLinkRoots, p string) walked {
	outside := func() walked {
		if len(roots.extra) > 0 {
			return walked{path: p, skip: "symlink to a file outside the scanned directory and every --backing-root: not followed"}
		}
		return walked{path: p, skip: "symlink to a file outside the scanned directory: not followed"}
	}
	dst, err := roots.names.EvalSymlinks(p)
	switch {
	case errors.Is(err, model.ErrOutsideRoots):
		return outside()
	case err != nil:
		return walked{path: p, skip: "broken symlink: not followed"}
	}
	root, scanned, ok := roots.where(dst)
	if !ok {
		return outside()
	}
	st, err := os.Stat(dst)
	switch {
	case err != nil:
		return walked{path: p, err: err}
	case st.IsDir():
		return walked{path: p, skip: "symlink to a directory: not followed"}
	case !st.Mode().IsRegular():
		return walked{path: p, skip: "symlink to a " + fileKind(st.Mode().Type()) + ": not a regular file"}
	}
	w := walked{path: p, real: dst, link: true}
	if !scanned {
		w.under = root
	}
	return w
}

// linkNote is the note of a target reached through a followed symlink.
func linkNote(w walked) string {
	if w.under != "" {
		return "symlink to " + w.real + " (under --backing-root " + w.under + "), followed"
	}
	return "symlink to " + w.real + ", followed"
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeIrregular != 0:
		return "irregular file"
	}
	return "special file"
}

// classify decides about a regular file of a plain directory: a target,
// or skipped with the reason. Any recognised format other than raw is an
// image; raw files are images when their name or content says so (an
// image extension, a partition table, an ext superblock). A file whose
// name promises an image format its content lacks is scanned as raw bytes
// (nameNotes says so) rather than skipped.
func classify(w walked) (*target, string) {
	t := &target{path: w.path}
	if w.link {
		t.notes = append(t.notes, linkNote(w))
	}
	m, err := formats.ProbeFile(w.path)
	if err != nil {
		t.err = err
		return t, ""
	}
	if _, named := formatOfExtension(w.path); named || m.Name != "raw" || m.Evidence != "" || hasRawImageExt(w.path) {
		return t, ""
	}
	return nil, "not an image: " + describeContent(w.path)
}

// nameNotes says when a file's extension names an image format that its
// content, read as format, is not.
func nameNotes(path, format string) []string {
	want, named := formatOfExtension(path)
	switch {
	case !named || format == want:
		return nil
	case format == "raw":
		return []string{fmt.Sprintf("named %s, content is %s: not an image; scanned as raw bytes", extOf(path), describeContent(path))}
	}
	return []string{fmt.Sprintf("named %s, content is %s", extOf(path), format)}
}

// formatOfExtension maps the extensions that name one image format to
// the name formats.Probe gives it.
func formatOfExtension(p string) (string, bool) {
	f, ok := map[string]string{
		".qcow2": "qcow2", ".qcow": "qcow2", ".vmdk": "vmdk", ".vdi": "vdi", ".hds": "parallels", ".qed": "qed", ".vhd": "vpc", ".vhdx": "vhdx",
		".ova": "ova", ".vma": "vma", ".lime": "lime", ".vmss": "vmware-state", ".vmsn": "vmware-state",
	}[extOf(p)]
	return f, ok
}

func extOf(p string) string { return strings.ToLower(filepath.Ext(p)) }

// describeContent names what a file that is no image holds, from its
// first bytes: "text", "zip archive", "empty file", ... or "data".
func describeContent(p string) string {
	// Opened as a regular file only, without blocking: the walk saw a
	// regular file, but one swapped for a FIFO since would block os.Open.
	f, err := hostfile.OpenRegular(p)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(f, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "unreadable: " + err.Error()
	}
	return contentKind(head[:n])
}

func contentKind(head []byte) string {
	magics := []struct {
		at    int
		magic string
		kind  string
	}{
		{0, "PK\x03\x04", "a zip archive"}, {0, "PK\x05\x06", "a zip archive"},
		{0, "\x1f\x8b", "gzip data"}, {0, "\xfd7zXZ\x00", "xz data"}, {0, "\x28\xb5\x2f\xfd", "zstd data"},
		{0, "BZh", "bzip2 data"}, {257, "ustar", "a tar archive"}, {0, "\x7fELF", "an ELF file"},
		{0, "%PDF-", "a PDF document"}, {0, "\x89PNG", "a PNG image"}, {0, "\xff\xd8\xff", "a JPEG image"},
		{0, "SQLite format 3\x00", "an SQLite database"},
	}
	if len(head) == 0 {
		return "an empty file"
	}
	for _, m := range magics {
		if len(head) >= m.at+len(m.magic) && string(head[m.at:m.at+len(m.magic)]) == m.magic {
			return m.kind
		}
	}
	if isText(head) {
		return "text"
	}
	return "data"
}

// isText: valid UTF-8 (a rune cut at the end of the sample is fine) with
// no NUL and few control characters.
func isText(b []byte) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	if !utf8.Valid(b) {
		return false
	}
	ctl := 0
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' {
			ctl++
		}
	}
	return ctl*100 <= len(b)
}
