// Package model is the small data model every format reader produces: a guest
// byte space (Disk) with its allocated extents, and an Image made of named
// views of such spaces. Every package uses it directly (readers, formats,
// guestfs, scanner...): formats imports the readers and guestfs, so they
// could not use a re-export of it from formats.
package model

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Kind says what a view is, and so which exposure class its bytes imply.
type Kind string

const (
	KindCurrent      Kind = "current"      // what the guest sees now
	KindSnapshot     Kind = "snapshot"     // an internal snapshot's disk state
	KindBacking      Kind = "backing"      // a backing file / parent layer
	KindUnreferenced Kind = "unreferenced" // host bytes no table references
	KindMemory       Kind = "memory"       // saved guest RAM
	KindLayer        Kind = "layer"        // a container image layer
)

// Source says where an extent's bytes physically come from.
type Source int

const (
	// SourceData: the bytes are stored as-is at File+FileOffset.
	SourceData Source = iota
	// SourceCompressed: the extent is the decompressed form of a stream that
	// starts at File+FileOffset; FileLength is the stored (compressed) length.
	SourceCompressed
	// SourceZero: the extent reads as zeros. Readers may report such extents
	// for completeness but scanners never read them.
	SourceZero
	// SourceDerived: the bytes are produced by decoding (e.g. a memory stream)
	// and have no single host location; FileOffset is the best-known anchor.
	SourceDerived
)

func (s Source) String() string {
	switch s {
	case SourceData:
		return "data"
	case SourceCompressed:
		return "compressed"
	case SourceZero:
		return "zero"
	case SourceDerived:
		return "derived"
	}
	return fmt.Sprintf("source(%d)", int(s))
}

// Extent is a run of allocated guest bytes and where they physically live.
type Extent struct {
	Offset int64  // guest offset
	Length int64  // guest length
	Source Source // how the bytes are stored
	File   string // host file that holds them ("" when not file-backed)
	// FileOffset is the host offset of guest byte Offset for SourceData, the
	// start of the compressed stream for SourceCompressed, and -1 if unknown.
	FileOffset int64
	// FileLength is the number of host bytes behind the extent (equal to
	// Length for SourceData, the compressed size for SourceCompressed).
	FileLength int64
}

// End is the guest offset just past the extent.
func (e Extent) End() int64 { return e.Offset + e.Length }

// Disk is a guest byte space. ReadAt reads guest bytes (holes read as zeros);
// Extents yields the allocated extents in increasing guest offset order.
// Holes and zero extents are never worth reading.
type Disk interface {
	io.ReaderAt
	Size() int64
	Extents(ctx context.Context) iter.Seq2[Extent, error]
}

// View is one place where guest bytes live inside an image.
type View struct {
	ID      string    // stable, e.g. "web01.qcow2#snapshot:golden"
	Kind    Kind      // current, snapshot, backing, ...
	Name    string    // snapshot name, backing file name, ...
	Created time.Time // zero when unknown
	Disk    Disk
	// Notes are facts a person should know about this view ("refcounts
	// distrusted: dirty bit set"). They never contain guest data.
	Notes []string
	// Attrs are small, format-specific facts (vm_state_size, disk_size, ...).
	Attrs map[string]string
	// Incomplete says why part of the view's data could not be read: a
	// reader's bound cut it (a saved VM state that repeats its own host
	// bytes, a gzip disk inflated past its bound) or its stream breaks
	// off. What Disk holds is still scanned; the scanner reports this as
	// the view's error, so the target counts as incomplete (docs/report.md,
	// "Completeness"). It names the file and the offset (a *FormatError).
	Incomplete error
}

// AttrArchiveFile marks, with "true", a view that is a file an archive
// ships beside its disks (a Vagrantfile, an OVA's .ovf): bytes of the
// archive, in no disk, no partition and no point in time of its own.
const AttrArchiveFile = "archive_file"

// BackingLink is one link of a backing chain as recorded in an image header.
type BackingLink struct {
	Name   string // the name as written in the image
	Path   string // resolved host path ("" if it could not be resolved)
	Format string // declared or detected format
	Err    error  // why it could not be opened, if it could not
}

// Image is an opened image: its format, its views and what went wrong while
// opening it without making it unusable.
type Image struct {
	Path        string
	Format      string
	VirtualSize int64
	Backing     []BackingLink // nearest first
	Views       []View
	// Errors are non-fatal problems: a missing backing file, a snapshot whose
	// table could not be read. The other views still work.
	Errors []error
	// Attrs are format-level facts (cluster_size, compat, dirty, ...).
	Attrs   map[string]string
	closers []io.Closer
}

// AddCloser registers something to close with the image.
func (im *Image) AddCloser(c io.Closer) { im.closers = append(im.closers, c) }

// Close releases every file the image holds open.
func (im *Image) Close() error {
	var errs []error
	for i := len(im.closers) - 1; i >= 0; i-- {
		if err := im.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	im.closers = nil
	return errors.Join(errs...)
}

// View returns the view with the given ID. It also takes the ID a report
// gives the view when several scanned files share a name: the image's ID
// with parent directories of the image's path in front
// ("a/disk.qcow2#current" for .../a/disk.qcow2, "x.ova/disk1.vmdk#current"
// for the disk of .../x.ova).
func (im *Image) View(id string) (View, bool) {
	for _, v := range im.Views {
		if v.ID == id {
			return v, true
		}
	}
	head, rest, ok := strings.Cut(id, "#")
	dir, base := path.Split(head)
	if !ok || dir == "" {
		return View{}, false
	}
	p := filepath.ToSlash(im.Path)
	if a, err := filepath.Abs(im.Path); err == nil {
		p = filepath.ToSlash(a)
	}
	short := base + "#" + rest
	switch {
	case strings.HasSuffix("/"+p, "/"+head):
	case strings.HasSuffix("/"+p, "/"+strings.TrimSuffix(dir, "/")):
	default:
		return View{}, false
	}
	for _, v := range im.Views {
		if v.ID == short {
			return v, true
		}
	}
	return View{}, false
}

// Current returns the current view, if the image has one.
func (im *Image) Current() (View, bool) {
	for _, v := range im.Views {
		if v.Kind == KindCurrent {
			return v, true
		}
	}
	return View{}, false
}

// OpenFunc reads the image that r holds, size bytes of it, in the style of
// debug/elf.NewFile: each reader's New, or formats.New for any format. name
// names the image in view IDs, extents and errors, and the names the image
// writes are resolved relative to it (through Options.Opener); r is never
// reopened by name. The image does not own r: whoever opened r closes it,
// after the image.
type OpenFunc func(ctx context.Context, r io.ReaderAt, size int64, name string, opts Options) (*Image, error)

// Options control how an image is opened.
type Options struct {
	// Open reads a backing or parent file of any format, once Opener has
	// opened it. formats.New and formats.Open set it to formats.New; when
	// nil, readers do not follow backing files.
	Open OpenFunc
	// Format, when set, is the format a parent declared for this file
	// ("raw", "qcow2", "vmdk"); readers still check magic bytes.
	Format string
	// Depth is the number of backing links followed to reach this file.
	Depth int
	// Chain identifies the files above this one, to refuse cycles (see
	// EnterChain).
	Chain []string
	// NoBacking opens the image alone, without its backing chain.
	NoBacking bool
	// Opener resolves and opens every file the image names (backing and
	// data files, extents, parents) under one policy; it is passed down
	// the chain unchanged. When nil, the path-based Open functions use
	// hostfile.Roots of the image's own directory for a top-level image
	// and refuse every name below one (hostfile.For); the io.ReaderAt
	// constructors (New) refuse every name, since nothing says where r
	// came from.
	Opener Opener
	// MaxInflate bounds the bytes the compressed disks inside one archive
	// (the gzip disks of an OVA) inflate to, all together; 0: the
	// reader's default. Past it a disk is cut, and its view says so
	// (View.Incomplete).
	MaxInflate int64
	// BlockDevice lets the top-level path be a block device (an LVM
	// logical volume, a ZFS zvol, a disk), opened read-only: set for a
	// target the user named, never for a file an image names, which
	// Opener refuses unless it is a regular file.
	BlockDevice bool
}

// MaxChainDepth bounds backing chains; QEMU itself has no hard limit but a
// deeper chain from an untrusted image is far more likely an attack.
const MaxChainDepth = 64
