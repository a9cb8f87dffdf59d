// Package ova reads VM disks shipped in archives. OVA exports (a tar
// holding an OVF descriptor and its disks) are read in place: disk members
// are read through section readers over the tar, never extracted.
// Compressed (ovf:compression="gzip") disks are decompressed to a bounded,
// already-unlinked temporary file, because a disk needs random access and
// gzip offers none; such views say so. Tarballs of disks without an OVF or
// compressed whole (a GCE image, a Vagrant box: tarball.go), zips of disks
// (zip.go) and disks compressed whole (disk.raw.xz: compressed.go) are
// read the same way.
package ova

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/formats/tarindex"
	"github.com/imgaudit/imgaudit/formats/vmdk"
	"github.com/imgaudit/imgaudit/internal/spool"
)

const maxMembers = 100000

// Config controls spooling of compressed disks.
type Config struct {
	TempDir    string // "" = os.TempDir()
	SpoolLimit int64  // bytes one decompressed disk may take; 0 = DefaultSpoolLimit
	// MaxInflate bounds the decompressed bytes of all the gzip-compressed
	// disks of one OVA together; 0 = the Options' MaxInflate, or
	// DefaultMaxInflate.
	MaxInflate int64
}

// DefaultSpoolLimit bounds one decompressed disk unless the OVF gives a
// smaller capacity.
const DefaultSpoolLimit = 64 << 30

// DefaultMaxInflate bounds what the gzip disks of one OVA inflate to: a
// 10 MB OVA can claim a disk of any capacity and inflate to it, at about
// 2 GB/s of one core. 8 GiB is more than the gzip disks of the exports seen
// in practice (a compressed disk is usually a streamOptimized VMDK, already
// compressed grain by grain) and keeps such a bomb to a few seconds.
const DefaultMaxInflate = 8 << 30

// Probe reports whether a file is a tar (ustar magic at 257) with an .ovf
// member among its first entries.
func Probe(head []byte, r io.ReaderAt, size int64) bool {
	if len(head) < 512 || !bytes.Equal(head[257:262], []byte("ustar")) {
		return false
	}
	tr := tar.NewReader(io.NewSectionReader(r, 0, size))
	for range 16 {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if strings.EqualFold(path.Ext(h.Name), ".ovf") {
			return true
		}
	}
	return false
}

// Open opens an OVA with the default Config.
func Open(ctx context.Context, p string, opts model.Options) (*model.Image, error) {
	return OpenWith(ctx, p, opts, Config{})
}

// New reads the OVA that r holds, size bytes, named name, with the default
// Config.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	return NewWith(ctx, r, size, name, opts, Config{})
}

type member struct {
	name      string
	off, size int64
}

// members lists the regular members of the tar with their data offsets,
// and the names of the GNU sparse ones apart: their data is not stored in
// one piece, so it cannot be read in place (an OVA is a ustar archive,
// which has none; one that holds them is an error for each).
func members(ctx context.Context, f io.ReaderAt, size int64, file string) ([]member, []member, *tarindex.Index, error) {
	x, err := tarindex.Build(ctx, f, size, file, maxMembers)
	if err != nil {
		return nil, nil, nil, err
	}
	var out, sparse []member
	for _, e := range x.Entries() {
		if e.Type == tar.TypeReg || e.Type == tar.TypeRegA || e.Sparse {
			m := member{name: strings.TrimPrefix(e.Raw, "./"), off: e.Offset, size: e.Size}
			if e.Sparse {
				sparse = append(sparse, m)
			} else {
				out = append(out, m)
			}
		}
	}
	return out, sparse, x, nil
}

// OpenWith opens the OVA at path (see NewWith).
func OpenWith(ctx context.Context, p string, opts model.Options, cfg Config) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "ova", p, opts, func(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
		return NewWith(ctx, r, size, name, opts, cfg)
	})
}

// NewWith reads the OVA that r holds, size bytes, named name. Each disk of
// the OVF's DiskSection (or, without one, each referenced file that is a
// VMDK) becomes a set of views with IDs like "export.ova#current:disk1.vmdk".
// A disk that cannot be read is an Image.Errors entry; the other disks
// still open. The disks' own names resolve to nothing.
func NewWith(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options, cfg Config) (*model.Image, error) {
	im := &model.Image{Path: name, Format: "ova", Attrs: map[string]string{}}
	if cfg.MaxInflate <= 0 {
		cfg.MaxInflate = cmp.Or(opts.MaxInflate, DefaultMaxInflate)
	}
	if err := openInto(ctx, im, r, size, opts, cfg); err != nil {
		im.Close()
		return nil, err
	}
	return im, nil
}

func openInto(ctx context.Context, im *model.Image, f io.ReaderAt, size int64, opts model.Options, cfg Config) error {
	p := im.Path
	ms, sparse, idx, err := members(ctx, f, size, p)
	if err != nil {
		return err
	}
	for _, m := range sparse {
		im.Errors = append(im.Errors, model.Errorf(p, m.off, "member %.80q is a GNU sparse file, which an OVA does not hold: not read", m.name))
	}
	// The members the disks open by name (a VMDK's extents or parent) are
	// theirs, not files to scan again on their own.
	opened := &hostfile.Log{}
	idx = idx.WithLog(opened)
	// A name the tar holds twice is the later copy's, as extracting the
	// tar leaves it and as tarindex opens it; the earlier copy is scanned
	// as a file of its own (below).
	byName := map[string]member{}
	var ovf *member
	for i, m := range ms {
		byName[m.name] = m
		if ovf == nil && strings.EqualFold(path.Ext(m.name), ".ovf") {
			ovf = &ms[i]
		}
	}
	if ovf == nil {
		return model.Errorf(p, -1, "no .ovf descriptor in the archive")
	}
	if ovf.size > maxOVFSize {
		return model.Errorf(p, ovf.off, "OVF descriptor %.80q is larger than %d bytes", ovf.name, maxOVFSize)
	}
	text := make([]byte, ovf.size)
	if _, err := f.ReadAt(text, ovf.off); err != nil {
		return model.Wrapf(err, p, ovf.off, "read OVF descriptor")
	}
	env, err := ParseOVF(text)
	if err != nil {
		return model.Wrapf(err, p, ovf.off, "%s", ovf.name)
	}
	im.Attrs["ovf"] = ovf.name
	im.Attrs["files"] = strconv.Itoa(len(env.Files))
	im.Attrs["disks"] = strconv.Itoa(len(env.Disks))

	files := map[string]File{}
	for _, fl := range env.Files {
		files[fl.ID] = fl
	}
	type target struct {
		file     File
		capacity int64
	}
	var targets []target
	if len(env.Disks) > 0 {
		for _, d := range env.Disks {
			fl, ok := files[d.FileRef]
			if !ok {
				im.Errors = append(im.Errors, model.Errorf(p, ovf.off, "disk %.80q refers to unknown file id %.80q", d.DiskID, d.FileRef))
				continue
			}
			targets = append(targets, target{fl, d.Capacity})
		}
	} else {
		for _, fl := range env.Files {
			if strings.EqualFold(path.Ext(fl.Href), ".vmdk") {
				targets = append(targets, target{fl, -1})
			}
		}
	}
	inflate := &inflateBudget{left: cfg.MaxInflate}
	for _, tg := range targets {
		if err := ctx.Err(); err != nil {
			return err
		}
		views, err := openDisk(ctx, im, f, byName, idx, tg.file, tg.capacity, opts, cfg, inflate)
		if err != nil {
			im.Errors = append(im.Errors, err)
			continue
		}
		im.Views = append(im.Views, views...)
		if v, ok := firstCurrent(views); ok && im.VirtualSize == 0 {
			im.VirtualSize = v.Disk.Size()
		}
	}
	if len(im.Views) == 0 && len(im.Errors) > 0 {
		return fmt.Errorf("ova: no disk could be opened: %w", errors.Join(im.Errors...))
	}
	// The descriptor is scanned too (vApp properties can hold the
	// passwords given when the VM was deployed), and so is every other
	// member no disk reads (a manifest, an NVRAM file, an ISO).
	// What the disks read is known by name; the member each name opens
	// is its last copy. Every other member, earlier copies of a name
	// included, is scanned as a file (before, a name's later copy was
	// never read: a second notes.txt, or a second disk1.vmdk).
	lastOf := map[string]int64{}
	for _, m := range ms {
		lastOf[tarindex.Clean(m.name)] = m.off
	}
	used := map[int64]bool{ovf.off: true}
	markUsed := func(name string) {
		if off, ok := lastOf[tarindex.Clean(name)]; ok {
			used[off] = true
		}
	}
	for _, tg := range targets {
		markUsed(tg.file.Href)
		for i := 0; tg.file.ChunkSize > 0 && i < maxMembers; i++ {
			chunk := fmt.Sprintf("%s.%09d", tg.file.Href, i)
			if _, ok := byName[chunk]; !ok {
				break
			}
			markUsed(chunk)
		}
	}
	for _, u := range opened.Uses() {
		if u.Opened {
			markUsed(u.Real)
		}
	}
	others := &archiveFiles{}
	others.inPlace(p, ovf.name, f, ovf.off, ovf.size)
	for _, m := range ms {
		if !used[m.off] {
			used[m.off] = true
			others.inPlace(p, m.name, f, m.off, m.size)
		}
	}
	others.finish(im, nil)
	uniqueViewIDs(im.Views)
	return nil
}

func firstCurrent(vs []model.View) (model.View, bool) {
	for _, v := range vs {
		if v.Kind == model.KindCurrent {
			return v, true
		}
	}
	return model.View{}, false
}

// piece is a run of the disk's stored bytes inside the tar.
type piece struct {
	at   int64 // offset in the stored disk stream
	off  int64 // offset in the tar
	size int64
}

// pieces is an io.ReaderAt over the concatenation of tar members (a chunked
// disk), read in place.
type pieces struct {
	r     io.ReaderAt
	parts []piece
	size  int64
}

func (c *pieces) ReadAt(p []byte, off int64) (int, error) {
	if off >= c.size {
		return 0, io.EOF
	}
	done := 0
	for done < len(p) && off < c.size {
		i := sort.Search(len(c.parts), func(i int) bool { return c.parts[i].at+c.parts[i].size > off })
		pc := c.parts[i]
		n := min(int64(len(p)-done), pc.at+pc.size-off)
		k, err := c.r.ReadAt(p[done:done+int(n)], pc.off+off-pc.at)
		done += k
		off += int64(k)
		if err != nil && !(err == io.EOF && int64(k) == n) {
			return done, err
		}
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// hostOffset maps an offset in the stored stream to (tar offset, bytes left
// in that piece).
func (c *pieces) hostOffset(off int64) (int64, int64, bool) {
	i := sort.Search(len(c.parts), func(i int) bool { return c.parts[i].at+c.parts[i].size > off })
	if i >= len(c.parts) || off < 0 {
		return 0, 0, false
	}
	pc := c.parts[i]
	return pc.off + off - pc.at, pc.at + pc.size - off, true
}

func openDisk(ctx context.Context, im *model.Image, f io.ReaderAt, byName map[string]member, idx *tarindex.Index, fl File, capacity int64, opts model.Options, cfg Config, inflate *inflateBudget) ([]model.View, error) {
	p := im.Path
	st := &pieces{r: f}
	if fl.ChunkSize > 0 {
		for i := 0; ; i++ {
			m, ok := byName[fmt.Sprintf("%s.%09d", fl.Href, i)]
			if !ok {
				break
			}
			if i >= maxMembers {
				return nil, model.Errorf(p, m.off, "disk %.80q has too many chunks", fl.Href)
			}
			st.parts = append(st.parts, piece{at: st.size, off: m.off, size: m.size})
			st.size += m.size
		}
		if len(st.parts) == 0 {
			return nil, model.Errorf(p, -1, "chunked disk %.80q: no member %s.000000000", fl.Href, fl.Href)
		}
		// A chunk missing in the middle ends the disk there; the chunks
		// after it are scanned as files, but the disk is short: an error,
		// so that the run is incomplete (it passed as complete before).
		for name, m := range byName {
			n, ok := strings.CutPrefix(name, fl.Href+".")
			if i, err := strconv.Atoi(n); ok && err == nil && len(n) == 9 && i > len(st.parts) {
				return nil, model.Errorf(p, m.off, "chunked disk %.80q: chunk %s.%09d is missing, and later chunks (%s) are not", fl.Href, fl.Href, len(st.parts), name)
			}
		}
	} else {
		m, ok := byName[fl.Href]
		if !ok {
			return nil, model.Errorf(p, -1, "disk file %.80q is not in the archive", fl.Href)
		}
		st.parts = []piece{{at: 0, off: m.off, size: m.size}}
		st.size = m.size
	}
	var notes []string
	var r io.ReaderAt = st
	size := st.size
	hostName := p
	mapOff := st.hostOffset
	if fl.ChunkSize > 0 {
		notes = append(notes, fmt.Sprintf("disk stored in %d chunks of %s, read in place", len(st.parts), fl.Href))
	} else {
		notes = append(notes, fmt.Sprintf("disk read in place from the archive member at offset %d", st.parts[0].off))
	}
	// cut says why a gzip disk was not inflated to its end.
	var cut error
	if fl.Compression == "gzip" {
		sp, err := spoolGzip(ctx, st, cfg, capacity, inflate)
		if err != nil {
			return nil, model.Wrapf(err, p, st.parts[0].off, "decompress %.80q", fl.Href)
		}
		n := sp.stats.Size
		if sp.bound != "" {
			// Stopped at its bound: what came out is still a disk to
			// scan; the rest is unread, which the view says.
			at := int64(-1)
			if h, _, ok := st.hostOffset(min(sp.consumed, st.size-1)); ok {
				at = h
			}
			cut = model.Errorf(p, at, "gzip-compressed disk %.80q cut after %d decompressed bytes, at %s: the rest is not inflated or scanned", fl.Href, n, sp.bound)
		}
		im.AddCloser(sp.file)
		r, size = sp.file, n
		hostName = p + "!" + fl.Href
		mapOff = func(off int64) (int64, int64, bool) { return off, n - off, true }
		notes = append(notes, fmt.Sprintf("gzip-compressed disk: decompressed (%d bytes) to an unlinked temporary file for random access, %d bytes written and the zero blocks left as holes; extent offsets are offsets in the decompressed %s", n, sp.stats.Written, fl.Href))
	}

	head := make([]byte, min(size, 4096))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, model.Wrapf(err, p, -1, "read disk %.80q", fl.Href)
	}
	var sub *model.Image
	allocd := model.ExtentList{{Length: size, File: fl.Href, FileLength: size}}
	if _, ok := r.(*os.File); ok {
		// The spool leaves zero blocks as holes: only its data is read.
		if ext, err := raw.Extents(r, fl.Href, size); err == nil {
			allocd = ext
		}
	}
	if vmdk.Probe(head, r, size) {
		var err error
		// A parent the VMDK names is another member of the OVA
		// (tarindex resolves names inside the archive only); one that is
		// not there is an error of the image, so the run is incomplete
		// rather than the delta passing for the disk.
		sub, err = vmdk.New(ctx, r, size, fl.Href, model.Options{Open: opts.Open, Depth: opts.Depth, Chain: opts.Chain, Opener: idx})
		if err != nil {
			if cut != nil {
				// The cut is why the VMDK does not open: say it first.
				return nil, fmt.Errorf("%w; %s: disk %s: %w", cut, p, fl.Href, err)
			}
			return nil, fmt.Errorf("%s: disk %s: %w", p, fl.Href, err)
		}
		im.AddCloser(sub)
		for _, e := range sub.Errors {
			im.Errors = append(im.Errors, fmt.Errorf("%s: disk %s: %w", p, fl.Href, e))
		}
	} else {
		sub = &model.Image{Path: fl.Href, Format: "raw", Views: []model.View{{
			ID: model.ViewID(fl.Href, model.KindCurrent, ""), Kind: model.KindCurrent,
			Disk: &model.FileDisk{R: r, Name: fl.Href, Len: size, Allocd: allocd},
		}}}
		notes = append(notes, "disk is not a VMDK: read as raw")
	}
	out := renameViews(p, fl.Href, sub, notes, hostName, mapOff)
	if len(out) > 0 && out[0].Incomplete == nil {
		// One reason per cut: on the disk's first (current) view.
		out[0].Incomplete = cut
	}
	return out, nil
}

// renameViews gives the views of the disk in archive member href of the
// archive at p IDs like "export.ova#current:disk1.vmdk", notes before
// their own, the disk's attributes, and extents in the archive's terms:
// host, at the offset mapOff gives.
func renameViews(p, href string, sub *model.Image, notes []string, host string, mapOff func(int64) (int64, int64, bool)) []model.View {
	base := filepath.Base(p)
	var out []model.View
	for _, v := range sub.Views {
		nv := v
		nv.Name = href
		nv.ID = base + "#" + string(v.Kind) + ":" + href
		// The disk's own view ID says what tells its views of one kind
		// apart ("disk1.vmdk#unreferenced:stale-grains", an OVA's
		// "vm.ova#current:disk1.vmdk" in a zip); its Name may say more
		// (the file an unreferenced view's clusters are in).
		// A view of a backing file keeps all of its own ID's rest
		// ("ovl.qcow2#backing:base.img#unreferenced"), so that it stays
		// apart from the disk's own view of that kind.
		_, rest, _ := strings.Cut(v.ID, "#")
		sfx, ok := strings.CutPrefix(rest, string(v.Kind)+":")
		if !ok && rest == string(v.Kind) {
			sfx = ""
		}
		if sfx != "" {
			nv.ID += "#" + sfx
			nv.Name += "#" + sfx
		}
		nv.Notes = append(append([]string{}, notes...), v.Notes...)
		nv.Disk = &hostMapped{Disk: v.Disk, member: href, host: host, mapOff: mapOff}
		nv.Attrs = map[string]string{}
		for k, a := range v.Attrs {
			nv.Attrs[k] = a
		}
		for k, a := range sub.Attrs {
			nv.Attrs[k] = a
		}
		nv.Attrs["href"] = href
		out = append(out, nv)
	}
	return out
}

// inflateBudget is what the gzip disks of one OVA may still inflate to.
type inflateBudget struct{ left int64 }

// spooled is a gzip disk inflated into an unlinked temporary file.
type spooled struct {
	file  *os.File
	stats spool.Stats
	// bound names the bound that stopped the inflating ("" when the
	// stream ended first); consumed is how far into the stored stream
	// the gzip reader had read by then.
	bound    string
	consumed int64
}

// spoolGzip inflates a gzip-compressed disk into an unlinked temporary
// file, stopping at the lowest of its bounds: the OVF's capacity (exactly,
// for a raw disk; for a sparse VMDK, its header's capacity plus room for
// its tables), what is left of the OVA's inflate budget, and the spool
// limit. A stream that goes on past its bound is cut there, not refused:
// what came out is scanned and the caller reports the cut. The time an
// inflating takes follows the bytes it yields (about 2 GB/s), so these
// bounds are what bounds the time of a gzip bomb.
func spoolGzip(ctx context.Context, src *pieces, cfg Config, capacity int64, budget *inflateBudget) (spooled, error) {
	cr := tarindex.NewCursor(src, src.size) // counts what the gzip reader consumed
	// decode/inflate: about 2.4 times klauspost's rate. What it has
	// consumed is what the cursor gave less what br still holds.
	br := bufio.NewReaderSize(cr, 1<<20)
	zr, err := inflate.NewMultiGzipReader(br)
	if err != nil {
		return spooled{}, err
	}
	defer zr.Close()
	head := make([]byte, 4096)
	n, err := io.ReadFull(zr, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return spooled{}, fmt.Errorf("decompressed disk: %w", err)
	}
	head = head[:n]
	limit, bound := inflateBound(head, capacity, cfg.SpoolLimit, budget.left)
	tmp, st, err := spool.Sparse(ctx, cfg.TempDir, "imgaudit-ova-*.spool", io.MultiReader(bytes.NewReader(head), zr), limit)
	sp := spooled{file: tmp, stats: st, consumed: cr.Pos() - int64(br.Buffered())}
	if errors.Is(err, spool.ErrLimit) {
		// One block past the bound came out: keep the bound's bytes.
		if terr := tmp.Truncate(limit); terr != nil {
			tmp.Close()
			return spooled{}, terr
		}
		sp.stats.Size, sp.bound = limit, bound
		sp.stats.Written = min(sp.stats.Written, limit)
		err = nil
	}
	if err != nil {
		if tmp != nil {
			tmp.Close()
		}
		return spooled{}, fmt.Errorf("decompressed disk: %w", err)
	}
	budget.left -= sp.stats.Size
	return sp, nil
}

// inflateBound is the number of bytes a gzip disk whose first bytes are
// head may inflate to, and the bound's name for the cut's error.
func inflateBound(head []byte, capacity, spoolLimit, budget int64) (int64, string) {
	limit, bound := max(budget, 0), fmt.Sprintf("the OVA's inflate bound (--max-inflate, %d bytes for all its gzip disks)", budget)
	if spoolLimit <= 0 {
		spoolLimit = DefaultSpoolLimit
	}
	if spoolLimit < limit {
		limit, bound = spoolLimit, fmt.Sprintf("the spool limit of %d bytes", spoolLimit)
	}
	// A sparse VMDK is its grains plus tables: never much more than its
	// capacity. A raw disk is its capacity.
	slack := func(c int64) int64 { return c + c/8 + 16<<20 }
	if c, ok := vmdkCapacity(head); ok {
		if b := slack(c); b < limit {
			limit, bound = b, fmt.Sprintf("the VMDK header's capacity of %d bytes (plus room for its tables)", c)
		}
		if capacity > 0 && slack(capacity) < limit {
			limit, bound = slack(capacity), fmt.Sprintf("the OVF's capacity of %d bytes (plus room for the VMDK's tables)", capacity)
		}
	} else if capacity > 0 && capacity < limit {
		limit, bound = capacity, fmt.Sprintf("the OVF's capacity of %d bytes", capacity)
	}
	return limit, bound
}

// vmdkCapacity reads the capacity (bytes) of a hosted sparse VMDK header.
func vmdkCapacity(head []byte) (int64, bool) {
	if len(head) < 20 || string(head[:4]) != "KDMV" {
		return 0, false
	}
	sectors := binary.LittleEndian.Uint64(head[12:20])
	if sectors > 1<<40 {
		return 0, false // the VMDK reader refuses it
	}
	return int64(sectors) * 512, true
}

// hostMapped rewrites extents of a member disk so that (File, FileOffset)
// name the bytes in the OVA itself, splitting data extents at chunk
// boundaries.
type hostMapped struct {
	model.Disk
	member string
	host   string
	mapOff func(int64) (int64, int64, bool)
}

func (h *hostMapped) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		for e, err := range h.Disk.Extents(ctx) {
			if err != nil || e.File != h.member || e.FileOffset < 0 {
				if !yield(e, err) {
					return
				}
				continue
			}
			if e.Source != model.SourceData {
				if off, left, ok := h.mapOff(e.FileOffset); ok {
					e.File, e.FileOffset = h.host, off
					if e.Source == model.SourceCompressed && e.FileLength > left {
						// The stream crosses a chunk boundary: its host
						// bytes are not contiguous in the archive.
						e.Source = model.SourceDerived
					}
				}
				if !yield(e, nil) {
					return
				}
				continue
			}
			for e.Length > 0 {
				off, left, ok := h.mapOff(e.FileOffset)
				if !ok {
					break
				}
				part := e
				part.Length = min(e.Length, left)
				part.FileLength = part.Length
				part.File, part.FileOffset = h.host, off
				if !yield(part, nil) {
					return
				}
				e.Offset += part.Length
				e.FileOffset += part.Length
				e.Length -= part.Length
			}
		}
	}
}
