package scanner

import (
	"context"
	"io"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
)

// Reader is a target that is no host file: an image inside a container
// layer or an archive, read in place (a section of the layer) or from a
// spool. Nothing of it is looked up on the host by name: its extents are
// read through R, never mapped by file name, and the names it writes
// (backing files, extents) resolve through Opener only.
type Reader struct {
	// Name is where the image lies in its layer or archive
	// ("/disk/disk.qcow2"): the target's path in the report, the file of
	// its extents and locations, and the start of its view IDs
	// ("/disk/disk.qcow2#current"), since the layer's files are one tree.
	Name string
	R    io.ReaderAt
	Size int64
	// Opener resolves the names the image writes: the members of the
	// same layer or archive (tarindex), the files of the same guest
	// filesystem; nil resolves none.
	Opener model.Opener
	// Inside, for an image found as a file in a guest filesystem, says
	// where (the report's target.inside).
	Inside *report.Containment
	// alone: an archive of images found in a guest filesystem, whose
	// reader may spool its disks to temporary files; scanNested scans it
	// on its own, after the others.
	alone bool
}

// ScanReaders scans images read from io.ReaderAts (see Reader) as Scan
// scans image files.
func (s *Scanner) ScanReaders(ctx context.Context, rs []Reader) (*report.Report, error) {
	return s.scan(ctx, func() ([]*target, []report.Skipped, []walked) { return s.openReaders(ctx, rs), nil, nil })
}

// openReaders opens the targets of ScanReaders (each one's error its own).
func (s *Scanner) openReaders(ctx context.Context, rs []Reader) []*target {
	var ts []*target
	for i := range rs {
		t := &target{path: rs[i].Name, src: &rs[i]}
		if err := ctx.Err(); err != nil {
			t.err = err
		} else {
			t.img, t.err = s.openImage(ctx, t)
		}
		ts = append(ts, t)
	}
	return ts
}

// openReader opens a target of ScanReaders and names its views by the
// target's full name.
func (s *Scanner) openReader(ctx context.Context, t *target) (*model.Image, error) {
	opener := t.src.Opener
	if opener == nil {
		opener = hostfile.Sealed{Log: s.opts.Names}
	}
	im, err := formats.New(ctx, t.src.R, t.src.Size, t.src.Name, model.Options{Opener: opener, MaxInflate: s.opts.MaxInflate})
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(t.src.Name)
	for i, v := range im.Views {
		if strings.HasPrefix(v.ID, base+"#") {
			im.Views[i].ID = dir + v.ID
		}
	}
	return im, nil
}

// hostFile is the canonical name of the file an extent of t's views lies
// in, which tells physical copies apart, and whether it is a host file:
// the real path of the target or of a host file its image was allowed to
// open (a backing file, an extent); for any other name (an archive's
// member, "/disk-flat.vmdk" in an OVA, or a spool), a name of it inside
// the target that no host file has. Such a name is never a host path:
// an archive that names a member after a host file must neither hide
// that file's bytes as already scanned nor have it mapped, and two
// archives with members of one name are two files. For a target that is
// no host file, the name as the reader gives it (never a host file).
func (t *target) hostFile(canon canonicalizer, file string) (string, bool) {
	if t.src != nil || file == "" {
		return file, false
	}
	if t.hostNames[file] {
		return canon.path(file), true
	}
	return "inside:" + canon.path(t.path) + "!" + file, false
}
