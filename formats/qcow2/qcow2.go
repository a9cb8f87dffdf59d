// Package qcow2 reads QEMU qcow2 images (v2 and v3) read-only, following
// docs/interop/qcow2.txt: the current state through the backing chain, each
// internal snapshot and its saved VM state, and the host bytes that no table
// references any more (freed clusters, clusters behind zero-flag entries,
// slack around compressed data).
package qcow2

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

const magic = "QFI\xfb"

// Probe reports whether head starts with the qcow2 magic.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	return len(head) >= 4 && string(head[:4]) == magic
}

// opened is the state shared by the views of one open image.
type opened struct {
	path     string
	f        io.ReaderAt
	fileSize int64
	h        *header
	m        *mapper

	dataFile model.File // external data file, or nil
	dataPath string
	dataSize int64

	activeL1     func() ([]uint64, error)
	snaps        []snapState
	snapTableLen int64
	refBlocks    []uint64 // refcount table: host offsets of refcount blocks
}

type snapState struct {
	snapshot
	l1 func() ([]uint64, error)
}

// Open opens the qcow2 image at path read-only, with its backing chain
// (through opts.Open) unless opts.NoBacking is set or opts.Open is nil.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "qcow2", path, opts, New)
}

// New reads the qcow2 image that f holds, size bytes; name names it in
// views, errors and extents, and anchors relative backing and data file
// names, which opts.Opener resolves (none when it is nil).
func New(ctx context.Context, f io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	opts, err := hostfile.Enter(f, name, opts)
	if err != nil {
		return nil, err
	}
	path := name
	// The header, its extensions and the backing name lie in the first
	// cluster (the name may end up to 1023 bytes past it).
	probe := make([]byte, min(size, 4096))
	if _, err := f.ReadAt(probe, 0); err != nil && err != io.EOF {
		return nil, model.Wrapf(err, path, 0, "read header")
	}
	if !Probe(probe, f, size) {
		return nil, model.Wrapf(model.ErrUnknownFormat, path, 0, "not a qcow2 image")
	}
	headLen := int64(len(probe))
	if len(probe) >= 24 {
		if cb := binary.BigEndian.Uint32(probe[20:]); cb >= minClusterBits && cb <= maxClusterBits {
			headLen = min(size, int64(1)<<cb+maxBackingName+1)
		}
	}
	head := probe
	if headLen > int64(len(probe)) {
		head = make([]byte, headLen)
		if _, err := f.ReadAt(head, 0); err != nil && err != io.EOF {
			return nil, model.Wrapf(err, path, 0, "read header cluster")
		}
	}
	h, err := parseHeader(path, head, size)
	if err != nil {
		return nil, err
	}
	o := &opened{path: path, f: f, fileSize: size, h: h, m: newMapper(path, f, size, h)}
	im := &model.Image{Path: path, Format: "qcow2", VirtualSize: int64(h.size), Attrs: o.attrs()}
	closeAll := true
	defer func() {
		if closeAll {
			im.Close()
		}
	}()

	opener := opts.Opener
	if h.hasDataFile() {
		if err := o.openDataFile(opener); err != nil {
			return nil, err
		}
		im.AddCloser(o.dataFile)
	}
	o.activeL1 = lazyL1(o.m, h.l1Off, h.l1Size, "active")
	if _, err := o.activeL1(); err != nil {
		return nil, err
	}
	if err := o.readRefcountTable(); err != nil {
		return nil, err
	}
	if h.nbSnapshots > 0 {
		sr := io.NewSectionReader(f, int64(h.snapshotsOff), size-int64(h.snapshotsOff))
		snaps, n, err := parseSnapshots(path, sr, int64(h.snapshotsOff), int(h.nbSnapshots))
		o.snapTableLen = n
		if err != nil {
			im.Errors = append(im.Errors, err)
		}
		for _, s := range snaps {
			o.snaps = append(o.snaps, snapState{s, lazyL1(o.m, s.l1Off, s.l1Size, "snapshot "+strconv.Quote(printable(s.name)))})
		}
	}

	backing, bim := o.openBacking(ctx, opts, opener, im)
	im.Views = append(im.Views, model.View{
		ID: model.ViewID(path, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current",
		Disk: &mapDisk{m: o.m, l1: o.activeL1, size: int64(h.size), backing: backing},
	})
	im.Views = append(im.Views, o.snapshotViews(backing, im)...)
	if bim != nil {
		im.Views = append(im.Views, model.AdoptBacking(filepath.Base(path), bim)...)
	}
	im.Views = append(im.Views, o.unreferencedViews(ctx)...)
	closeAll = false
	return im, nil
}

func (o *opened) attrs() map[string]string {
	h := o.h
	compat := "0.10"
	if h.version == 3 {
		compat = "1.1"
	}
	a := map[string]string{
		"version":          strconv.Itoa(int(h.version)),
		"compat":           compat,
		"cluster_size":     strconv.FormatInt(h.clusterSize(), 10),
		"dirty":            strconv.FormatBool(h.dirty()),
		"corrupt":          strconv.FormatBool(h.corrupt()),
		"lazy_refcounts":   strconv.FormatBool(h.compat&compatLazyRefcounts != 0),
		"compression_type": map[uint8]string{compressionZlib: "zlib", compressionZstd: "zstd"}[h.compression],
		"extended_l2":      strconv.FormatBool(h.extendedL2()),
		"refcount_bits":    strconv.FormatInt(h.refcountBits(), 10),
		"snapshots":        strconv.Itoa(int(h.nbSnapshots)),
		"l1_size":          strconv.Itoa(int(h.l1Size)),
	}
	if h.hasDataFile() {
		a["data_file"] = printableName(h.dataFile)
		a["data_file_raw"] = strconv.FormatBool(h.dataFileRaw())
	}
	if h.backingName != "" {
		a["backing_file"] = printableName(h.backingName)
	}
	if h.backingFormat != "" {
		a["backing_format"] = printable(h.backingFormat)
	}
	if h.bitmaps != nil {
		a["bitmaps"] = strconv.Itoa(int(h.bitmaps.count))
	}
	return a
}

// hasProtocol reports whether QEMU would read name as a protocol
// ("nbd:host:port", "json:{...}", "http://..."): a colon before any slash.
func hasProtocol(name string) bool {
	i := strings.IndexAny(name, ":/\\")
	return i >= 0 && name[i] == ':'
}

// resolve turns a name from the image into a host path the way QEMU does,
// without any check: relative names are relative to the image's own
// directory. It only names a link that is not followed (NoBacking).
func (o *opened) resolve(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(o.path), name)
}

// openDataFile opens the external data file through the Opener: a name
// outside the allowed roots, or one that is not a regular file, is refused.
func (o *opened) openDataFile(opener model.Opener) error {
	h := o.h
	name := h.dataFile
	if name == "" || hasProtocol(name) {
		return model.Wrapf(model.ErrUnsupported, o.path, h.dataFileOff, "external data file %q is not a local file name", printableName(name))
	}
	df, p, err := opener.Open(o.path, name)
	if err != nil {
		return model.Wrapf(err, o.path, h.dataFileOff, "external data file %q", printableName(name))
	}
	st, err := df.Stat()
	if err != nil {
		df.Close()
		return model.Wrapf(err, p, -1, "stat external data file")
	}
	o.dataPath = p
	o.dataFile, o.dataSize = df, st.Size()
	o.m.data, o.m.dataName, o.m.hasDataFile = df, o.dataPath, true
	return nil
}

func (o *opened) readRefcountTable() error {
	h := o.h
	n := int64(h.rtClusters) * o.m.clusterSize / 8
	if n == 0 {
		return nil
	}
	buf := make([]byte, n*8)
	if _, err := o.f.ReadAt(buf, int64(h.rtOff)); err != nil {
		return model.Wrapf(err, o.path, int64(h.rtOff), "read refcount table")
	}
	o.refBlocks = make([]uint64, n)
	for i := range o.refBlocks {
		o.refBlocks[i] = binary.BigEndian.Uint64(buf[8*i:]) &^ 0x1ff
	}
	return nil
}

// openBacking opens the backing file through the Opener and reads it
// through opts.Open. Problems, a refused name among them, are
// recorded in im (the backing link's Err and im.Errors) and the image reads
// zeros where the backing file would have supplied data.
func (o *opened) openBacking(ctx context.Context, opts model.Options, opener model.Opener, im *model.Image) (model.Disk, *model.Image) {
	h := o.h
	if h.backingName == "" {
		return nil, nil
	}
	name := h.backingName
	link := model.BackingLink{Name: name, Format: h.backingFormat}
	fail := func(err error) (model.Disk, *model.Image) {
		link.Err = err
		im.Backing = append(im.Backing, link)
		im.Errors = append(im.Errors, err)
		return nil, nil
	}
	if hasProtocol(name) {
		return fail(model.Wrapf(model.ErrUnsupported, o.path, int64(h.backingOff),
			"backing file %q names a protocol or URL; only local files are followed", printableName(name)))
	}
	if opts.NoBacking || opts.Open == nil {
		link.Path = o.resolve(name)
		im.Backing = append(im.Backing, link)
		return nil, nil
	}
	if opts.Depth+1 > model.MaxChainDepth {
		return fail(model.Errorf(o.path, int64(h.backingOff), "backing chain deeper than %d", model.MaxChainDepth))
	}
	f, p, err := opener.Open(o.path, name)
	if err != nil {
		return fail(model.Wrapf(err, o.path, int64(h.backingOff), "backing file %q", printableName(name)))
	}
	link.Path = p
	bim, err := model.OpenLinked(ctx, opts, f, p, h.backingFormat)
	if err != nil {
		return fail(model.Wrapf(err, o.path, int64(h.backingOff), "open backing file %q", printableName(name)))
	}
	cur, ok := bim.Current()
	if !ok {
		bim.Close()
		return fail(model.Errorf(o.path, int64(h.backingOff), "backing file %q has no current view", printableName(name)))
	}
	im.AddCloser(bim)
	if link.Format == "" {
		link.Format = bim.Format
	}
	im.Backing = append(append(im.Backing, link), bim.Backing...)
	im.Errors = append(im.Errors, bim.Errors...)
	return cur.Disk, bim
}

// snapshotViews builds a snapshot view per internal snapshot and a memory
// view per snapshot with saved VM state.
func (o *opened) snapshotViews(backing model.Disk, im *model.Image) []model.View {
	var snaps, mems []model.View
	seen := map[string]bool{}
	for _, s := range o.snaps {
		name := s.name
		if seen[name] {
			name += "@" + s.id // QEMU keeps names unique; a hostile table may not
		}
		seen[name] = true
		diskSize := int64(o.h.size)
		if s.hasDiskSize {
			diskSize = int64(s.diskSize)
		}
		if diskSize < 0 {
			im.Errors = append(im.Errors, model.Errorf(o.path, s.entryOff, "snapshot %q: disk size %d is invalid", printable(s.name), s.diskSize))
			continue
		}
		attrs := map[string]string{
			"id":            printable(s.id),
			"disk_size":     strconv.FormatInt(diskSize, 10),
			"vm_state_size": strconv.FormatUint(s.vmStateSize, 10),
			"vm_clock_nsec": strconv.FormatUint(s.vmClockNsec, 10),
			"l1_size":       strconv.Itoa(int(s.l1Size)),
		}
		created := time.Unix(int64(s.dateSec), int64(s.dateNsec)).UTC()
		snaps = append(snaps, model.View{
			ID: model.ViewID(o.path, model.KindSnapshot, name), Kind: model.KindSnapshot, Name: name,
			Created: created, Attrs: attrs,
			Disk: &mapDisk{m: o.m, l1: s.l1, size: diskSize, backing: backing},
		})
		if s.vmStateSize == 0 {
			continue
		}
		cover := o.h.l1Coverage()
		vmOff := ceilDiv(diskSize, cover) * cover
		if vmOff < 0 || int64(s.vmStateSize) < 0 || vmOff > 1<<62-int64(s.vmStateSize) {
			im.Errors = append(im.Errors, model.Errorf(o.path, s.entryOff, "snapshot %q: vm state of %d bytes is out of range", printable(s.name), s.vmStateSize))
			continue
		}
		mems = append(mems, model.View{
			ID: model.ViewID(o.path, model.KindMemory, name), Kind: model.KindMemory, Name: name,
			Created: created,
			Attrs:   map[string]string{"vm_state_size": strconv.FormatUint(s.vmStateSize, 10), "vm_state_offset": strconv.FormatInt(vmOff, 10)},
			Disk:    &mapDisk{m: o.m, l1: s.l1, base: vmOff, size: int64(s.vmStateSize)},
		})
	}
	return append(snaps, mems...)
}

// unreferencedViews walks every table, compares with the refcounts and
// returns the unreferenced view of the qcow2 file (and of the external data
// file, if any).
func (o *opened) unreferencedViews(ctx context.Context) []model.View {
	u := o.walkTables(ctx)
	st := o.compareRefcounts(u.qcow)
	attrs := map[string]string{
		"referenced_refcount_zero":    strconv.FormatInt(st.usedButZero, 10),
		"leaked_clusters":             strconv.FormatInt(st.leaked, 10),
		"zero_flag_host_clusters":     strconv.FormatInt(st.zeroHeld, 10),
		"clusters_beyond_refcounts":   strconv.FormatInt(st.beyondCoverage, 10),
		"references_past_end_of_file": strconv.FormatInt(u.qcow.pastEOF, 10),
	}
	var notes []string
	if o.h.dirty() {
		notes = append(notes, "refcounts distrusted: the dirty bit is set (lazy refcounts not yet repaired)")
	}
	if o.h.corrupt() {
		notes = append(notes, "the image is marked corrupt")
	}
	if st.leaked > 0 {
		notes = append(notes, fmt.Sprintf("%d clusters have a refcount but no table references them (leaked)", st.leaked))
	}
	if st.usedButZero > 0 {
		notes = append(notes, fmt.Sprintf("%d clusters are referenced by tables but have refcount 0", st.usedButZero))
	}
	if st.zeroHeld > 0 {
		notes = append(notes, fmt.Sprintf("%d host clusters are kept only behind zero-flag entries", st.zeroHeld))
	}
	if st.beyondCoverage > 0 {
		notes = append(notes, fmt.Sprintf("%d clusters lie past the area the refcount table covers", st.beyondCoverage))
	}
	for _, err := range append(u.errs, st.errs...) {
		notes = append(notes, "table walk: "+err.Error())
	}
	views := []model.View{{
		ID: model.ViewID(o.path, model.KindUnreferenced, ""), Kind: model.KindUnreferenced, Name: filepath.Base(o.path),
		Notes: notes, Attrs: attrs,
		Disk: &residueDisk{FileDisk: model.FileDisk{R: o.f, Name: o.path, Len: o.fileSize}, use: u.qcow},
	}}
	if u.data != nil {
		base := filepath.Base(o.dataPath)
		views = append(views, model.View{
			ID: model.ViewID(o.path, model.KindUnreferenced, base), Kind: model.KindUnreferenced, Name: base,
			Attrs: map[string]string{"references_past_end_of_file": strconv.FormatInt(u.data.pastEOF, 10)},
			Disk:  &residueDisk{FileDisk: model.FileDisk{R: o.dataFile, Name: o.dataPath, Len: o.dataSize}, use: u.data},
		})
	}
	return views
}
