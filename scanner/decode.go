package scanner

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/pkgdb"
	"github.com/imgaudit/imgaudit/report"
)

// Decoding compressed and archived content (docs/report.md, "Decoded
// locations"). The raw scan's own pass notes the containers' magic numbers
// at every 512-byte boundary (detectors.ScanOptions.Signatures), where
// files start. Then:
//
//   - files: every regular file of a disk view whose first byte carries a
//     magic number (read where it is not on a boundary) is a container;
//   - partitions holding squashfs are containers;
//   - elsewhere (free space, unreferenced clusters, RAM) a compressed
//     stream's or a zip's magic number starts one (carved);
//   - a qcow2 unreferenced view lists where freed compressed clusters'
//     streams may start (model.SlackLister), and only there is raw inflate
//     tried.
//
// Each container is decoded once, however many views and places hold its
// bytes: places holding the same physical bytes (the planner's identity)
// or the same content (same size, same SHA-256) share one decoding, and a
// match in it gets a location at each place.

// DefaultDecodeBudget is the decoded bytes one target may yield in all.
const DefaultDecodeBudget = 4 << 30

const (
	// minContainer is the smallest container worth a look (an empty
	// gzip stream is 20 bytes).
	minContainer = 18
	// maxSignatureHits bounds the magic numbers one view remembers (a tar
	// of small files has one per member).
	maxSignatureHits = 4 << 20
	// maxBufferedMatches bounds the matches one container's decoding keeps
	// before they are placed (places past the first get them then).
	maxBufferedMatches = 100000
	// matchHoldBytes is what a buffered match is held for at the
	// decoders' memory gate (a detectors.Match with its strings and the
	// buffer's share: 634 bytes of heap for an AWS key ID), held
	// matchHoldBatch at a time.
	matchHoldBytes = 640
	matchHoldBatch = 256
	// placeBatch is how many matches of a file's decoding wait before
	// they are placed.
	placeBatch = 4096
	// slackPad is read past twice a freed cluster's size to try one
	// slack window: a compressed cluster takes at most about a cluster.
	slackPad = 4096
	// groupHeadLen is how much of each file of a shared size is compared
	// before the files are hashed whole.
	groupHeadLen = 4096
)

// sigHits are the magic numbers the raw scan of one view found: those
// of compressed and archived content (at, for the decode pass) and those
// of disk images (images, guest offsets, for nestedImages).
type sigHits struct {
	at      []sigAt
	dropped int64
	// decodeSigs is how many of the signatures are the decode pass's (the
	// first ones; disk images' follow).
	decodeSigs    int
	images        []int64
	imagesDropped int64
}

type sigAt struct {
	g   int64
	sig int
}

// container is a place whose bytes decode: a file, a partition, a stream
// found by its magic number, a freed compressed cluster.
type container struct {
	v    *viewState
	g    int64 // guest offset of the first byte: the locations' offset
	size int64
	r    io.ReaderAt
	// runs are a file's bytes, to find the same file in other views.
	runs []guestfs.GuestRun
	// carved: found by its magic number where no file says what the bytes
	// are; its other places are those sharing the bytes it decoded.
	carved bool
	// slack: already decoded (data), with its codec.
	slack *slackStream
	// memoryOnly: a process's core (a crash's, gdb's gcore; codec
	// "elf-core") or a swap area (a partition, a logical volume or a
	// swap file; "swap"), scanned again with the memory rules alone,
	// which the raw scan of a disk view does not run; what they find is
	// placed at the area's own bytes.
	memoryOnly bool
	key        string
	// part and path name a file's partition and path ("" for the rest);
	// codec is what its magic number says it is.
	part, path, codec string
}

type slackStream struct {
	codec string
	data  []byte
}

// decodedMatch is a match in a container's decoded bytes.
type decodedMatch struct {
	chain    []report.DecodedStep
	chainKey string
	m        detectors.Match
}

// decoder is one run of the decode pass.
type decoder struct {
	s    *Scanner
	col  *collector
	sigs []decode.Signature
	lim  decode.Limits
	// gate bounds the decoders' memory over the walks that run on every
	// core together (newMemoryGate).
	gate *decode.MemoryGate

	mu      sync.Mutex // guards col, the views' decoding counts and budgets
	budgets map[*target]*decode.Budget
	// raw lists, by view, the guest offsets of the raw scan's locations,
	// sorted (rawOffsets).
	raw map[*viewState][]int64
	// packaged holds, by target, the sizes and MD5s of the compressed
	// files that dropPackaged left undecoded as unmodified package files:
	// an archive member with the same bytes is that file
	// (decode.Options.Packaged). Written before the walks start,
	// read-only during them.
	packaged map[*target]*packagedFiles
}

// detectorSignatures are the containers' magic numbers, for the raw scan.
func detectorSignatures(sigs []decode.Signature) []detectors.Signature {
	out := make([]detectors.Signature, len(sigs))
	for i, s := range sigs {
		out[i] = detectors.Signature{At: s.At, Magic: s.Magic}
	}
	return out
}

// record returns the SignatureAt callback that keeps a view's hits.
func (h *sigHits) record(off int64, sig int) {
	if sig >= h.decodeSigs {
		if len(h.images) >= maxSignatureHits {
			h.imagesDropped++
			return
		}
		h.images = append(h.images, off)
		return
	}
	if len(h.at) >= maxSignatureHits {
		h.dropped++
		return
	}
	h.at = append(h.at, sigAt{off, sig})
}

// decodeAll runs the decode pass over the views the raw scan read.
func (s *Scanner) decodeAll(ctx context.Context, views []*viewState, col *collector, hits map[*viewState]*sigHits, pr *provenanceReader, gate *decode.MemoryGate) error {
	d := &decoder{s: s, col: col, sigs: decode.Signatures(), lim: s.opts.DecodeLimits, budgets: map[*target]*decode.Budget{}, gate: gate}
	phys := map[pos]int{}
	images := map[pos]bool{} // where a disk or memory image's magic number is
	for _, v := range views {
		h := hits[v]
		if h == nil {
			continue
		}
		for _, g := range h.images {
			if p, ok := posOf(v, g); ok {
				images[p] = true
			}
		}
		if h.dropped > 0 {
			v.notes = append(v.notes, fmt.Sprintf("%d magic numbers of compressed or archived content not followed: over the %d a view keeps", h.dropped, maxSignatureHits))
		}
		for _, a := range h.at {
			if p, ok := posOf(v, a.g); ok {
				if _, seen := phys[p]; !seen {
					phys[p] = a.sig
				}
			}
		}
	}
	var cs []*container
	for _, v := range views {
		if err := ctx.Err(); err != nil {
			return StopCause(ctx)
		}
		own := hits[v] != nil && (len(hits[v].at) > 0 || len(hits[v].images) > 0)
		if isDiskKind(v.view.Kind) && !v.t.plainData() && v.view.Disk != nil && (own || (v.view.Kind == model.KindCurrent && len(phys)+len(images) > 0)) {
			if fi := v.filesystem(ctx); fi != nil && fi.m != nil {
				found, err := d.files(ctx, v, fi.m, phys, images)
				if err != nil {
					return err
				}
				cs = append(cs, found...)
				cs = append(cs, d.partitions(v, fi.m)...)
			}
		}
		// Files that btrfs stores compressed hold their bytes only in the
		// compressed extents, which no magic number announces: the current
		// view's filesystem is read for them whatever the raw scan found.
		if isDiskKind(v.view.Kind) && !v.t.plainData() && v.view.Disk != nil && (own || v.view.Kind == model.KindCurrent) {
			if fi := v.filesystem(ctx); fi != nil && fi.m != nil {
				found, err := d.compressedRuns(ctx, v, fi.m)
				if err != nil {
					return err
				}
				cs = append(cs, found...)
				cs = append(cs, d.swapAreas(v, fi.m)...)
			}
		}
		if hits[v] != nil && len(hits[v].at) > 0 {
			cs = append(cs, d.carve(ctx, v, hits[v].at)...)
		}
		if hits[v] != nil && len(hits[v].images) > 0 {
			cs = append(cs, d.carveCores(ctx, v, hits[v].images)...)
		}
		if v.view.Kind == model.KindUnreferenced {
			cs = append(cs, d.slack(ctx, v)...)
		}
	}
	if pr != nil {
		cs = d.dropPackaged(ctx, cs, pr)
	}
	groups, err := d.group(ctx, cs)
	if err != nil {
		return err
	}
	d.raw = col.rawOffsets()
	err = d.run(ctx, groups)
	for _, v := range views {
		v.notes = append(v.notes, v.decodingNotes()...)
	}
	return err
}

// posOf is the physical position of guest offset g of v.
func posOf(v *viewState, g int64) (pos, bool) {
	ps := v.pieces(g, 1)
	if len(ps) == 0 || ps[0].at.key == zeroKey {
		return pos{}, false
	}
	return ps[0].at, true
}

// files lists v's regular files whose first bytes are a container's magic
// number, and the processes' cores among those that start with an ELF
// core's (images).
func (d *decoder) files(ctx context.Context, v *viewState, m *guestfs.Map, phys map[pos]int, images map[pos]bool) ([]*container, error) {
	var out []*container
	head := make([]byte, decode.SniffLen)
	err := m.RegularFiles(ctx, minContainer, func(f guestfs.RegularFile) error {
		if !f.Deleted && len(f.Runs) > 0 && (swapFile(f) || f.Size >= minSwapFile && report.WindowsPagefile(f.Path)) {
			if !report.WindowsPagefile(f.Path) {
				if v.swapFiles == nil {
					v.swapFiles = map[string][]string{}
				}
				v.swapFiles[f.Partition] = append(v.swapFiles[f.Partition], f.Path)
			}
			// Its first page is zeros but for the header (a hole, where
			// the filesystem's blocks are smaller): no magic number where
			// it starts.
			out = append(out, &container{v: v, g: f.Runs[0].Off, size: f.Size, r: f.File, runs: slices.Clone(f.Runs), codec: "swap", memoryOnly: true, part: f.Partition, path: f.Path})
			return nil
		}
		st := f.Start()
		if st < 0 {
			return nil
		}
		var codec string
		if st%detectors.SignatureAlign == 0 {
			p, ok := posOf(v, st)
			if !ok {
				return nil
			}
			sig, hit := phys[p]
			if !hit {
				if images[p] && processCore(f) {
					c := &container{v: v, g: st, size: f.Size, r: f.File, runs: slices.Clone(f.Runs), codec: "elf-core", memoryOnly: true}
					if !f.Deleted {
						c.part, c.path = f.Partition, f.Path
					}
					out = append(out, c)
				}
				return nil
			}
			codec = d.sigs[sig].Codec
		} else {
			// Not on a sector boundary (inline or resident data): the
			// scan did not look; read the head.
			n, _ := f.File.ReadAt(head, 0)
			if codec = decode.Sniff(head[:n]); codec == "" {
				return nil
			}
		}
		c := &container{v: v, g: st, size: f.Size, r: f.File, runs: slices.Clone(f.Runs), codec: codec}
		if !f.Deleted {
			c.part, c.path = f.Partition, f.Path
			if v.view.Kind == model.KindCurrent && d.s.nestedImagesOn() && (codec == decode.Tar || decode.IsStream(codec) && compressedBackup(f.Path)) {
				v.archiveStarts = append(v.archiveStarts, st)
			}
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// minSwapFile is the smallest file checked for a swap header: mkswap
// wants 40 KiB, and a swap file worth its name has megabytes.
const minSwapFile = 1 << 20

// swapFile reports whether f is a swap file: mkswap's magic
// ("SWAPSPACE2") ends its first 4 KiB page, or a hibernation image's
// signature does (guestfs.SwapMagic).
func swapFile(f guestfs.RegularFile) bool {
	if f.Size < minSwapFile {
		return false
	}
	var b [10]byte
	n, _ := f.File.ReadAt(b[:], 4096-10)
	return n == len(b) && guestfs.SwapMagic(b[:])
}

// maxCarvedCore bounds the bytes of an ELF core found in free space that
// are searched with the memory rules (its segments' end, from its own
// headers), and maxCarvedCores how many a view searches.
const (
	maxCarvedCore  = 4 << 30
	maxCarvedCores = 256
)

// fewSegments reports an ELF header (64 bytes) whose program header table
// is a plain count under 65535: one that defers to a section header
// (PN_XNUM) may list 2^32, whose reading a guest's free space should not
// decide.
func fewSegments(h []byte) bool {
	if len(h) < 64 {
		return false
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if h[5] == 2 {
		bo = binary.BigEndian
	}
	at := 56 // e_phnum, 64-bit
	if h[4] == 1 {
		at = 44
	}
	return bo.Uint16(h[at:]) < 0xffff
}

// carveCores lists the ELF cores that start in v's free space (a deleted
// process's core, a deleted guest-memory dump), where the raw scan's
// probe saw one's first bytes: the memory rules search them from there to
// their last segment's end, as far as the view's allocated bytes go.
// Cores in files are the file pass's.
func (d *decoder) carveCores(ctx context.Context, v *viewState, images []int64) []*container {
	if !isDiskKind(v.view.Kind) || v.t.plainData() || v.view.Disk == nil {
		return nil
	}
	var out []*container
	var fi *fsInfo
	size := v.view.Disk.Size()
	head := make([]byte, 64)
	for _, g := range images {
		if g >= size || ctx.Err() != nil {
			continue
		}
		if n, _ := v.view.Disk.ReadAt(head, g); !elfcore.Probe(head[:n], nil, 0) || !fewSegments(head[:n]) {
			continue // another format's magic number, or a header that would read megabytes
		}
		if len(out) >= maxCarvedCores {
			v.notes = append(v.notes, fmt.Sprintf("ELF cores in free space past the first %d not searched with the memory rules", maxCarvedCores))
			break
		}
		if fi == nil {
			fi = v.filesystem(ctx)
		}
		if at := fi.locate(g); at.State == report.StateAllocated || (at.Path != "" && at.State != report.StateFree && at.State != report.StateDeletedRecord) {
			continue // a file's, or metadata
		}
		segs, err := elfcore.Segments(v.view.ID, io.NewSectionReader(v.view.Disk, g, size-g), size-g)
		if err != nil {
			continue
		}
		var end int64
		for _, s := range segs {
			if s.Filesz > 0 && s.Offset < maxCarvedCore {
				end = max(end, int64(min(s.Offset+min(s.Filesz, maxCarvedCore), maxCarvedCore)))
			}
		}
		end = min(end, size-g)
		if end <= 0 {
			continue
		}
		out = append(out, &container{v: v, g: g, size: end, r: io.NewSectionReader(v.view.Disk, g, end),
			runs: []guestfs.GuestRun{{Off: g, Len: end}}, codec: "elf-core", memoryOnly: true, carved: true})
	}
	return out
}

// swapAreas lists v's swap partitions and logical volumes, for the memory
// rules.
func (d *decoder) swapAreas(v *viewState, m *guestfs.Map) []*container {
	var out []*container
	for _, a := range m.SwapAreas() {
		if len(a.Runs) == 0 {
			continue // none of its bytes on this disk
		}
		out = append(out, &container{v: v, g: a.Runs[0].Off, size: a.Size, r: a.R, runs: a.Runs, codec: "swap", memoryOnly: true, part: a.Name})
	}
	return out
}

// processCore reports whether f is a process's core: an ELF core whose
// segments map virtual memory (elfcore.GuestPhysical: a guest-memory
// dump's are nestedImages' to open).
func processCore(f guestfs.RegularFile) bool {
	segs, err := elfcore.Segments(f.Path, f.File, f.Size)
	return err == nil && !elfcore.GuestPhysical(segs)
}

// compressedRuns lists the compressed extents of v's files whose codec the
// filesystem names (btrfs), as containers of that codec, and the files
// NTFS stores compressed, as containers of their decompressed bytes.
func (d *decoder) compressedRuns(ctx context.Context, v *viewState, m *guestfs.Map) ([]*container, error) {
	var out []*container
	err := m.CompressedRuns(ctx, func(r guestfs.CompressedRun) error {
		codec := "btrfs-" + r.Codec
		if r.Guest < 0 || !decode.Magicless(codec) {
			return nil
		}
		c := &container{v: v, g: r.Guest, size: r.Size, r: r.R, runs: []guestfs.GuestRun{{Off: r.Guest, Len: r.Size}}, codec: codec}
		if !r.Deleted {
			c.part, c.path = r.Partition, r.Path
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return out, err
	}
	// NTFS's compressed files: its reader decompresses them whole, a
	// deleted file's from what is left of its clusters.
	err = m.CompressedFiles(ctx, 1, func(f guestfs.RegularFile) error {
		if len(f.Runs) == 0 {
			return nil
		}
		c := &container{v: v, g: f.Runs[0].Off, size: f.Size, r: f.File, runs: f.Runs, codec: decode.NTFSLZNT1}
		if !f.Deleted {
			c.part, c.path = f.Partition, f.Path
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// dropPackaged leaves out the compressed files that package records
// prove unmodified (their digest is the one the package manager
// recorded): what they decode to is the package's own, the same on every
// machine that installed it, and package provenance would make every
// finding in it info. Inflating them is most of what decoding costs on a
// real guest (/usr/share/doc's changelogs, man pages, gzip'd charmaps).
// A modified file, one that no package records, and a deleted one are
// decoded; so are uncompressed archives (tar, ar, cpio), whose decoding
// costs a scan of their bytes, less than hashing them, except a package
// in apt's cache that the apt lists record (an ar whose members are
// compressed: a kernel package's data.tar.xz takes seconds); --no-downgrade (no
// provenance) decodes them all. The digests are computed on every core
// through the file readers the containers already hold, and kept for the
// findings' provenance.
func (d *decoder) dropPackaged(ctx context.Context, cs []*container, pr *provenanceReader) []*container {
	type job struct {
		c    *container
		cand candidate
		keys []fileKey // the digests to compute
	}
	var jobs []*job
	for _, c := range cs {
		if c.path == "" || !decode.IsStream(c.codec) && c.codec != decode.Zip && c.codec != decode.Squashfs && c.codec != decode.Ar {
			continue
		}
		if ctx.Err() != nil {
			return cs
		}
		// Not pr.lookup: it opens the file by its path to learn its
		// size, and a path lookup reads every directory on the way (a
		// /usr of 24,000 compressed files took 34 s of lookups).
		pk, owned := recordsKey(c.v, c.part, c.path)
		recs := pr.packages(ctx, pk).Lookup(owned)
		if len(recs) == 0 || c.codec == decode.Ar && !slices.ContainsFunc(recs, func(o pkgdb.Owner) bool { return o.Manager == "apt" }) {
			continue
		}
		// A tarball in npm's or yarn's cache, or a zip in Go's module
		// cache, is decoded all the same: what it holds proves public the
		// copies that npm or yarn install put in node_modules, or that the
		// go command extracted (propagation), and no package record
		// covers those.
		if slices.ContainsFunc(recs, func(o pkgdb.Owner) bool { return o.Manager == "npm" || o.Manager == "yarn" || o.Manager == "go" }) {
			continue
		}
		cand := candidate{pk: pk, path: c.path, file: c.path, recs: recs, size: c.size}
		pr.sizes[fileKey{pk, c.path, ""}] = c.size
		j := &job{c: c, cand: cand}
		for _, o := range cand.recs {
			k := fileKey{cand.pk, cand.file, o.Digest.Algo}
			if _, done := pr.sums[k]; !done && len(o.Digest.Sum) > 0 && streamable(k.algo) && !slices.Contains(j.keys, k) {
				j.keys = append(j.keys, k)
			}
		}
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return cs
	}
	sums := make([][]fileSum, len(jobs))
	bufs := make([][]byte, runtime.GOMAXPROCS(0)) // one per worker of onEveryCore
	onEveryCore(ctx, len(jobs), func(w, i int) {
		if bufs[w] == nil {
			bufs[w] = make([]byte, 256<<10)
		}
		j := jobs[i]
		for _, k := range j.keys {
			sum, err := pr.hashReader(ctx, io.NewSectionReader(j.c.r, 0, j.c.size), k.algo, bufs[w])
			sums[i] = append(sums[i], fileSum{sum, err})
		}
	})
	if ctx.Err() != nil {
		return cs // not every digest was computed; the caller stops too
	}
	drop := map[*container]bool{}
	for i, j := range jobs {
		for n, k := range j.keys {
			pr.store(k, sums[i][n])
		}
		for _, prov := range pr.check(ctx, j.cand) {
			if !prov.Modified {
				drop[j.c] = true
				j.c.v.packagedFiles++
				d.notePackaged(j.c.v.t, j.c.size, pr.sums[fileKey{j.cand.pk, j.cand.file, "md5"}])
				break
			}
		}
	}
	return slices.DeleteFunc(cs, func(c *container) bool { return drop[c] })
}

// notePackaged keeps the size and MD5 of a compressed file that package
// records prove unmodified, where its records gave an MD5 (dpkg's do).
func (d *decoder) notePackaged(t *target, size int64, fs fileSum) {
	if fs.err != nil || len(fs.sum) != md5.Size {
		return
	}
	if d.packaged == nil {
		d.packaged = map[*target]*packagedFiles{}
	}
	p := d.packaged[t]
	if p == nil {
		p = &packagedFiles{files: map[packagedFile]bool{}, sizes: map[int64]bool{}}
		d.packaged[t] = p
	}
	p.files[packagedFile{size, [md5.Size]byte(fs.sum)}] = true
	p.sizes[size] = true
}

// packagedFiles is a set of files by size and MD5 (decode.PackagedFiles).
type packagedFiles struct {
	files map[packagedFile]bool
	sizes map[int64]bool
}

type packagedFile struct {
	size int64
	sum  [md5.Size]byte
}

func (p *packagedFiles) Has(size int64, sum [md5.Size]byte) bool {
	return p.files[packagedFile{size, sum}]
}
func (p *packagedFiles) HasSize(size int64) bool { return p.sizes[size] }

// partitions lists v's squashfs partitions (a live image's root).
func (d *decoder) partitions(v *viewState, m *guestfs.Map) []*container {
	var out []*container
	for _, p := range m.Partitions() {
		if p.FS == "squashfs" && p.Start >= 0 && p.Size > 0 && !strings.HasPrefix(p.Type, "lvm2") {
			out = append(out, &container{v: v, g: p.Start, size: p.Size, r: io.NewSectionReader(v.view.Disk, p.Start, p.Size),
				runs: []guestfs.GuestRun{{Off: p.Start, Len: p.Size}}})
		}
	}
	return out
}

// carve lists the streams and zips whose magic numbers the raw scan of v
// found where no file says what the bytes are: free space and slack of a
// disk view's filesystem, space no filesystem accounts for, and every
// place of unreferenced, memory and layer views.
//
// Each ends where the next magic number of a carved kind starts: the
// bytes from there are carved on their own. Decoders follow concatenated
// streams (gzip members, xz streams, zstd frames, bzip2 streams), so N
// files back to back (a kernel's .ko.xz modules in a guest's page cache,
// deleted .gz files in free blocks) were decoded N(N+1)/2 times, each
// from every carved start before it: a Debian 13 guest's RAM decoded 894
// MB where its 430 streams hold 78 MB. Segments that do not start on a
// 512-byte boundary (the second member of a multi-member gzip file) have
// no magic number noted, and are still read with the first. A magic
// number that compressed bytes hold by chance on a boundary, with a header
// that reads as its codec's (2^-27 of sectors for gzip's, 2^-32 or less
// for the others), ends the stream before it early.
func (d *decoder) carve(ctx context.Context, v *viewState, hits []sigAt) []*container {
	var out []*container
	var fi *fsInfo
	disk := isDiskKind(v.view.Kind) && !v.t.plainData()
	size := v.view.Disk.Size()
	// Only a magic number whose header reads as its codec's ends the
	// stream before it (decode.Sniff: gzip's flags, bzip2's block magic, a
	// zip header's length), so that one that compressed bytes hold by
	// chance rarely cuts a stream short.
	var starts []int64
	head := make([]byte, 32)
	for _, h := range hits {
		if !d.sigs[h.sig].Carve || h.g >= size {
			continue
		}
		n, _ := v.view.Disk.ReadAt(head[:min(int64(len(head)), size-h.g)], h.g)
		if decode.Sniff(head[:n]) != "" {
			starts = append(starts, h.g)
		}
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)
	end := func(g int64) int64 {
		i, _ := slices.BinarySearch(starts, g+1)
		if i < len(starts) {
			return starts[i]
		}
		return size
	}
	for _, h := range hits {
		if !d.sigs[h.sig].Carve || h.g >= size {
			continue
		}
		if disk {
			if fi == nil {
				fi = v.filesystem(ctx)
			}
			if at := fi.locate(h.g); at.State == report.StateAllocated || (at.Path != "" && at.State != report.StateFree && at.State != report.StateDeletedRecord) {
				continue // a file's, or metadata: the file pass has it
			}
		}
		e := end(h.g)
		out = append(out, &container{v: v, g: h.g, size: e - h.g, r: io.NewSectionReader(v.view.Disk, h.g, e-h.g), carved: true})
	}
	return out
}

// slack tries raw inflate (or zstd) where an unreferenced view says freed
// compressed clusters' streams may start, and returns those that decode
// to exactly one cluster.
func (d *decoder) slack(ctx context.Context, v *viewState) []*container {
	sl, ok := v.view.Disk.(model.SlackLister)
	if !ok {
		return nil
	}
	streams, err := sl.SlackStreams(ctx)
	if err != nil {
		v.notes = append(v.notes, "compressed-cluster slack not decoded: "+err.Error())
		return nil
	}
	var out []*container
	var buf []byte
	var ex decode.Exacter
	for _, st := range streams {
		if ctx.Err() != nil {
			return out
		}
		end := min(st.Limit, st.From+2*st.Size+slackPad, v.view.Disk.Size())
		if end <= st.From || st.Size <= 0 || st.Size > 4<<20 {
			continue
		}
		buf = slices.Grow(buf[:0], int(end-st.From))[:end-st.From]
		if n, err := v.view.Disk.ReadAt(buf, st.From); n < len(buf) && err != nil && err != io.EOF {
			continue
		}
		for p := st.From; p < st.To && p < end; p++ {
			data, used, err := ex.Exactly(buf[p-st.From:], st.Codec, int(st.Size))
			if err != nil {
				continue
			}
			out = append(out, &container{v: v, g: p, size: int64(used), slack: &slackStream{codec: st.Codec, data: data}})
			// Clusters freed one after the other lie back to back.
			if used <= 0 {
				break
			}
			p += int64(used) - 1
			st.To = max(st.To, p+2)
		}
	}
	return out
}

// group gives each container its key: the physical identity of its bytes
// (so that views sharing them share it), then, among files of one size,
// their content's digest.
func (d *decoder) group(ctx context.Context, cs []*container) ([][]*container, error) {
	bySize := map[int64][]string{}
	byKey := map[string][]*container{}
	var keys []string
	for _, c := range cs {
		switch {
		case c.slack != nil:
			c.key = fmt.Sprintf("s:%p:%d", c.v, c.g)
		case c.carved:
			p, _ := posOf(c.v, c.g)
			c.key = fmt.Sprintf("c:%v:%d:%d:%s", p.key.file, p.key.src, p.key.stream, strconv.FormatInt(p.off, 10))
			if !c.v.dedupe {
				c.key += fmt.Sprintf(":%p", c.v)
			}
		default:
			c.key = "f:" + physicalKey(c)
		}
		if byKey[c.key] == nil {
			keys = append(keys, c.key)
			if !c.carved && c.slack == nil {
				bySize[c.size] = append(bySize[c.size], c.key)
			}
		}
		byKey[c.key] = append(byKey[c.key], c)
	}
	// Files of one size with other bytes: the same content? Most are
	// not, and their first bytes tell (a gzip header, then its first
	// block): only those whose heads agree are hashed, on every core.
	// Hashing every file of a shared size was most of this pass's own
	// time on a /usr full of gzip'd changelogs, all of it on one core.
	type content struct {
		sum   [32]byte
		codec string // the same bytes under another codec decode otherwise
	}
	var candidates []string // in the order of cs within each size
	head := make([]byte, groupHeadLen)
	for _, ks := range bySize {
		if len(ks) < 2 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		byHead := map[string][]string{}
		var heads []string
		for _, k := range ks {
			c := byKey[k][0]
			n, err := c.r.ReadAt(head[:min(int64(len(head)), c.size)], 0)
			if n < int(min(int64(len(head)), c.size)) && err != nil {
				continue // unreadable: decoded on its own
			}
			hk := c.codec + "\x00" + string(head[:n])
			if byHead[hk] == nil {
				heads = append(heads, hk)
			}
			byHead[hk] = append(byHead[hk], k)
		}
		for _, hk := range heads {
			if len(byHead[hk]) > 1 {
				candidates = append(candidates, byHead[hk]...)
			}
		}
	}
	sums := make([]*[32]byte, len(candidates))
	bufs := make([][]byte, runtime.GOMAXPROCS(0)) // one per worker of onEveryCore
	onEveryCore(ctx, len(candidates), func(w, i int) {
		if bufs[w] == nil {
			bufs[w] = make([]byte, 64<<10)
		}
		c := byKey[candidates[i]][0]
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(c.r, 0, c.size), bufs[w]); err != nil {
			return
		}
		var sum [32]byte
		h.Sum(sum[:0])
		sums[i] = &sum
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	byDigest := map[content]string{}
	for i, k := range candidates {
		if sums[i] == nil {
			continue
		}
		ck := content{*sums[i], byKey[k][0].codec}
		if first, ok := byDigest[ck]; ok {
			byKey[first] = append(byKey[first], byKey[k]...)
			delete(byKey, k)
			continue
		}
		byDigest[ck] = k
	}
	var out [][]*container
	for _, k := range keys {
		if g := byKey[k]; g != nil {
			out = append(out, g)
		}
	}
	// Larger first, so that the workers end together.
	slices.SortStableFunc(out, func(a, b []*container) int { return cmp.Compare(b[0].size, a[0].size) })
	return out, nil
}

// physicalKey writes out where a file's bytes physically are.
func physicalKey(c *container) string {
	h := sha256.New()
	var b [8]byte
	put := func(n int64) {
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
	put(c.size)
	for _, r := range c.runs {
		put(r.FileOff)
		for _, p := range c.v.pieces(r.Off, r.Len) {
			h.Write([]byte(p.at.key.file))
			put(int64(p.at.key.src))
			put(p.at.key.stream)
			put(p.at.off)
			put(p.len)
		}
	}
	return string(h.Sum(nil))
}

// run decodes one container of each group, on every core, and places its
// matches at every place of the group.
func (d *decoder) run(ctx context.Context, groups [][]*container) error {
	scratch := make([]decode.Scratch, runtime.GOMAXPROCS(0)) // one per worker
	onEveryCore(ctx, len(groups), func(w, i int) { d.decodeGroup(ctx, groups[i], &scratch[w]) })
	return ctx.Err()
}

// newMemoryGate is the gate of a scan's decoders: the walks of the decode
// pass, one per core, and the decoded digests hashed on every core.
func newMemoryGate() *decode.MemoryGate {
	return decode.NewMemoryGate(decode.GatePool, decode.GatePerWalk)
}

// budget is the target's decoded-bytes budget.
func (d *decoder) budget(t *target) *decode.Budget {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.budgets[t]
	if b == nil {
		max := d.s.opts.DecodeBudget
		if max <= 0 {
			max = DefaultDecodeBudget
		}
		b = decode.NewBudget(max)
		d.budgets[t] = b
	}
	return b
}

// decodeGroup decodes the first container of a group and places its
// matches.
func (d *decoder) decodeGroup(ctx context.Context, g []*container, scratch *decode.Scratch) {
	c := g[0]
	var found []decodedMatch
	truncated := map[string]int64{} // matches not kept, by rule
	// Matches wait to be placed, and while they wait they are held at the
	// decoders' gate with the walk's decoders: a container of dense
	// secrets holds 100,000 of them, 60 MB, and every core decodes one.
	held := d.gate.Reserve()
	defer func() { held.Release(held.Held()) }()
	// Where a file's bytes are is known before it is decoded, so its
	// matches are placed a batch at a time (then the Limiter knows when a
	// rule is full, and the detectors stop validating its hits: a gzip of
	// 1.6 million distinct AWS key IDs took 6 s of CPU per file). A
	// stream carved from free space is where its bytes are up to what it
	// consumed, known at its end: its matches wait for it, up to
	// maxBufferedMatches.
	early := !slices.ContainsFunc(g, func(x *container) bool { return x.carved || x.slack != nil })
	var earlyPlaces []guestPos
	placeFound := func() {
		d.mu.Lock()
		if earlyPlaces == nil {
			earlyPlaces = d.groupPlaces(g, 0)
		}
		for _, dm := range found {
			d.col.addDecoded(earlyPlaces, dm.chain, dm.chainKey, dm.m)
		}
		d.mu.Unlock()
		clear(found)
		found = found[:0]
		held.Release(held.Held())
	}
	keep := func(dm decodedMatch) {
		if early && len(found) >= placeBatch {
			placeFound()
		}
		if len(found) >= maxBufferedMatches {
			truncated[dm.m.RuleID]++
			return
		}
		if len(found)%matchHoldBatch == 0 {
			// A wait ends with ctx, which ends the walk: nothing more
			// is placed then.
			held.Hold(ctx, matchHoldBatch*matchHoldBytes)
		}
		found = append(found, dm)
	}
	// The keyword hits the detectors leave unvalidated in what decodes
	// (a rule's fruitless windows spent) are counted in the view's
	// truncation, as the raw scan's are; they went uncounted before.
	notValidated := map[string]int{}
	opts := detectors.ScanOptions{Memory: d.s.opts.MemoryRulesEverywhere, Skipped: func(sk detectors.Skip) { notValidated[sk.RuleID] += sk.Hits },
		// A rule full in the container's view (where its new findings
		// are admitted) is not validated further; nor is any once a
		// carved stream's buffer is full (nothing more would be placed).
		Enough: func(rule string) bool { return len(found) >= maxBufferedMatches || d.col.lim.Enough(c.v, rule) }}
	if c.memoryOnly {
		d.scanMemoryOnly(ctx, g, held)
		return
	}
	// A compressed kernel module found by its magic number is counted and
	// left (decode.IsKernelModule).
	if c.carved && decode.IsKernelModule(ctx, c.r, c.size, d.lim, scratch) {
		d.mu.Lock()
		c.v.containers++
		c.v.decoding.Skip(decode.SkippedKernelModule, 1)
		d.mu.Unlock()
		return
	}
	var res decode.Result
	var consumed int64
	imageFound, cutForNested := false, false
	if c.slack != nil {
		chain := []report.DecodedStep{{Codec: c.slack.codec}}
		ck := chainKey(chain)
		_, err := d.s.opts.Engine.ScanStream(ctx, bytes.NewReader(c.slack.data), opts, func(m detectors.Match) {
			keep(decodedMatch{chain, ck, m})
		})
		if err != nil {
			return
		}
		res = decode.Result{Leaves: 1, Decoded: int64(len(c.slack.data))}
		consumed = c.size
	} else {
		var err error
		wopts := decode.Options{Limits: d.lim, Budget: d.budget(c.v.t), SkipStoredLeaves: d.scannedClean(g), Scratch: scratch, Reservation: held}
		if p := d.packaged[c.v.t]; p != nil {
			wopts.Packaged = p
		}
		if decode.Magicless(c.codec) {
			wopts.Codec = c.codec
		}
		wantImages := d.s.nestedImagesOn() && slices.ContainsFunc(g, func(x *container) bool {
			return x.path != "" && x.v.view.Kind == model.KindCurrent
		})
		var hbuf []byte
		res, err = decode.Walk(ctx, c.r, c.size, wopts, func(l decode.Leaf) error {
			chain := reportChain(l.Chain)
			ck := chainKey(chain)
			var r io.Reader = l.R
			if wantImages && !imageFound && archiveOfImages(l.Chain) {
				// A VM disk or memory image compressed whole, or a
				// member of a tar (plain or compressed) or a zip: its
				// head says so, and nestedImages opens the file as an
				// archive of images (a .qcow2.gz, a Vagrant box) with
				// the formats' readers. Where it surely will, the walk
				// stops here: those readers decompress it again, and
				// decoding it as bytes would spend the target's
				// decoding budget on it.
				if hbuf == nil {
					hbuf = make([]byte, formats.HeadLen)
				}
				n, herr := io.ReadFull(l.R, hbuf)
				h := hbuf[:n]
				if ova.ImageHead(h) || compressedBackupHead(g, h) {
					imageFound = true
					if d.leftToNested(g) {
						cutForNested = true
						return errLeftToNested
					}
				}
				r = io.MultiReader(bytes.NewReader(h), l.R)
				if herr != nil && herr != io.EOF && herr != io.ErrUnexpectedEOF {
					r = io.MultiReader(bytes.NewReader(h), errReader{herr})
				}
			}
			lopts := opts
			if !lopts.Memory {
				// A process's core compressed (systemd-coredump's
				// core.*.zst): its memory rules too.
				var h [20]byte
				n, herr := io.ReadFull(r, h[:])
				lopts.Memory = elfcore.Probe(h[:n], nil, 0)
				head := bytes.NewReader(slices.Clone(h[:n]))
				switch {
				case herr == nil:
					r = io.MultiReader(head, r)
				case herr == io.EOF || herr == io.ErrUnexpectedEOF:
					r = head
				default:
					r = io.MultiReader(head, errReader{herr})
				}
			}
			_, err := d.s.opts.Engine.ScanStream(ctx, r, lopts, func(m detectors.Match) {
				keep(decodedMatch{chain, ck, m})
			})
			return err
		})
		if errors.Is(err, errLeftToNested) {
			err = nil
		}
		if err != nil && ctx.Err() != nil {
			return
		}
		consumed = res.Consumed
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if res.Leaves > 0 || len(res.Skipped) > 0 || !c.carved {
		c.v.containers++
	}
	if len(truncated) > 0 {
		// One container cut, and its matches past the cap counted as
		// dropped, as a full rule's are (before 2026-12-07 the skipped
		// count said the matches, as if they were members or streams).
		res.Skip(fmt.Sprintf("matches past the first %d of one container not placed", maxBufferedMatches), 1)
		for rule, n := range truncated {
			c.v.cuts.DropN(rule, n)
		}
	}
	for rule, n := range notValidated {
		c.v.cuts.Skipped(detectors.Skip{RuleID: rule, Hits: n})
	}
	c.v.decoding.Add(res)
	c.v.packagedFiles += res.PackagedMembers
	if imageFound {
		for _, x := range g {
			if x.path != "" && x.v.view.Kind == model.KindCurrent {
				x.v.imageArchives = append(x.v.imageArchives, x.g)
				if cutForNested {
					if x.v.leftToNested == nil {
						x.v.leftToNested = map[int64]bool{}
					}
					x.v.leftToNested[x.g] = true
				}
			}
		}
	}
	if len(found) == 0 {
		return
	}
	places := earlyPlaces
	if places == nil {
		places = d.groupPlaces(g, consumed)
	}
	for _, dm := range found {
		d.col.addDecoded(places, dm.chain, dm.chainKey, dm.m)
	}
}

// scanMemoryOnly scans a process's core or a swap area (the first of
// group g) again with the memory rules alone, and places what they find
// at its bytes: the view's own, where the area's runs lie (each match is
// then placed wherever the raw scan's index finds the same bytes). Only
// the view's allocated bytes there are read, which the raw scan read
// once already: a swap partition of a sparse disk is not read as zeros,
// and no budget is needed beyond the view's own size. Its text was the
// raw scan's. Its matches are held at the gate (held), as the decode
// pass's are.
func (d *decoder) scanMemoryOnly(ctx context.Context, g []*container, held *decode.Reservation) {
	c := g[0]
	disk := c.v.view.Disk
	ranges := allocatedIn(c.runs, c.v.ext)
	if disk == nil || len(ranges) == 0 {
		return
	}
	var found []detectors.Match
	_, err := d.s.opts.Engine.Scan(ctx, disk, disk.Size(), ranges, detectors.ScanOptions{Memory: true, MemoryOnly: true}, func(m detectors.Match) {
		if m.Category == memoryCategory && len(found) < maxBufferedMatches {
			if len(found)%matchHoldBatch == 0 {
				held.Hold(ctx, matchHoldBatch*matchHoldBytes)
			}
			found = append(found, m)
		}
	})
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range found {
		d.col.add(c.v, m)
	}
}

// allocatedIn returns the parts of runs (guest ranges, in any order,
// perhaps overlapping) that ext (a view's extents holding data, sorted
// by offset) covers, as sorted, disjoint ranges.
func allocatedIn(runs []guestfs.GuestRun, ext []model.Extent) []detectors.Range {
	rs := make([]detectors.Range, 0, len(runs))
	for _, r := range runs {
		if r.Len > 0 {
			rs = append(rs, detectors.Range{Start: r.Off, End: r.Off + r.Len})
		}
	}
	slices.SortFunc(rs, func(a, b detectors.Range) int { return cmp.Compare(a.Start, b.Start) })
	merged := rs[:0]
	for _, r := range rs {
		if k := len(merged); k > 0 && r.Start <= merged[k-1].End {
			merged[k-1].End = max(merged[k-1].End, r.End)
			continue
		}
		merged = append(merged, r)
	}
	var out []detectors.Range
	for _, r := range merged {
		i, _ := slices.BinarySearchFunc(ext, r.Start, func(e model.Extent, t int64) int {
			if e.Offset+e.Length <= t {
				return -1
			}
			return 1
		})
		for j := i; j < len(ext) && ext[j].Offset < r.End; j++ {
			lo, hi := max(r.Start, ext[j].Offset), min(r.End, ext[j].Offset+ext[j].Length)
			if lo >= hi {
				continue
			}
			if k := len(out); k > 0 && out[k-1].End == lo {
				out[k-1].End = hi
				continue
			}
			out = append(out, detectors.Range{Start: lo, End: hi})
		}
	}
	return out
}

// memoryCategory is the memory-structure rules' category (detectors'
// built-in rules: AES key schedules, DER RSA keys).
const memoryCategory = "memory"

// scannedClean reports whether a group's containers are uncompressed
// archives (tar, ar, cpio) in whose bytes the raw scan kept no location:
// their plain members are those very bytes, scanned already, and would
// only be scanned again (Go's package archives are most of what a Debian
// server's decoding reads). Their nested containers are still decoded. A
// container that holds a finding is walked in full, so that the finding
// gets its member's name.
func (d *decoder) scannedClean(g []*container) bool {
	for _, c := range g {
		if c.codec != decode.Tar && c.codec != decode.Ar && c.codec != decode.Cpio || len(c.runs) == 0 {
			return false
		}
		offs := d.raw[c.v]
		for _, r := range c.runs {
			i, _ := slices.BinarySearch(offs, r.Off)
			if i < len(offs) && offs[i] < r.Off+r.Len {
				return false
			}
		}
	}
	return true
}

// placesOf lists where container c's bytes are: its own place first, then
// the places of other views that hold the same bytes (for a carved
// stream, the consumed bytes from its start; for a file, all its runs at
// the same distance from each other).
func (d *decoder) placesOf(c *container, consumed int64) []guestPos {
	self := guestPos{c.v, c.g}
	limit := d.col.lim.Limits().LocationsPerFinding
	switch {
	case c.slack != nil:
		return []guestPos{self}
	case c.carved:
		ps, _ := d.col.idx.where(c.v, c.g, max(consumed, 1), limit)
		return ps
	case len(c.runs) == 0:
		return []guestPos{self}
	}
	r0 := c.runs[0]
	cands, _ := d.col.idx.where(c.v, r0.Off, r0.Len, limit)
	out := []guestPos{self}
	for _, gp := range cands {
		if gp.v == c.v && gp.g == r0.Off {
			continue
		}
		delta := gp.g - r0.Off
		same := true
		for _, r := range c.runs[1:] {
			if !samePieces(c.v.pieces(r.Off, r.Len), gp.v.pieces(r.Off+delta, r.Len)) {
				same = false
				break
			}
		}
		if same {
			out = append(out, guestPos{gp.v, c.g + delta})
		}
	}
	return out
}

// groupPlaces returns the places of every container of group g, once
// each (consumed: what decoding the first one read, for carved streams).
func (d *decoder) groupPlaces(g []*container, consumed int64) []guestPos {
	var ps []guestPos
	for _, x := range g {
		ps = append(ps, d.placesOf(x, consumed)...)
	}
	return uniquePlaces(ps)
}

func uniquePlaces(ps []guestPos) []guestPos {
	seen := map[guestPos]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// reportChain converts a decode chain to the report's form (a copy).
func reportChain(ch []decode.Step) []report.DecodedStep {
	out := make([]report.DecodedStep, len(ch))
	for i, s := range ch {
		out[i] = report.DecodedStep{Codec: s.Codec, Member: s.Member, Offset: s.Offset}
	}
	return out
}

// chainKey writes a chain out, to tell locations apart.
func chainKey(ch []report.DecodedStep) string {
	var b strings.Builder
	for _, s := range ch {
		fmt.Fprintf(&b, "%s\x00%s\x00%d\x00", s.Codec, s.Member, s.Offset)
	}
	return b.String()
}

// decodingReport is a view's decoding counts for the report, and their
// notes; nil when it decoded nothing.
func (v *viewState) decodingReport() *report.ViewDecoding {
	st := v.decoding
	if v.containers == 0 && len(st.Skipped) == 0 && v.packagedFiles == 0 {
		return nil
	}
	return &report.ViewDecoding{Containers: v.containers, Leaves: st.Leaves, DecodedBytes: st.Decoded, Skipped: maps.Clone(st.Skipped),
		UnmodifiedPackageFiles: v.packagedFiles, StoredMembersNotRescanned: st.StoredSkipped}
}

// decodingNotes says in words what decoding left out in v.
func (v *viewState) decodingNotes() []string { return v.decoding.Notes() }

// archiveOfImages reports whether a leaf reached by chain may be an image
// that the formats' readers open from the container file itself: the
// file's decoded bytes (a disk compressed whole: a .qcow2.gz, disk.raw.xz),
// or a member of a tar, plain or compressed (a Vagrant box, a GCE image),
// or of a zip (an appliance).
func archiveOfImages(chain []decode.Step) bool {
	switch len(chain) {
	case 1:
		return decode.IsStream(chain[0].Codec) || chain[0].Codec == decode.Tar || chain[0].Codec == decode.Zip
	case 2:
		return decode.IsStream(chain[0].Codec) && chain[1].Codec == decode.Tar
	}
	return false
}

// errLeftToNested ends a walk whose container nestedImages opens.
var errLeftToNested = errors.New("left to the image readers")

// errReader returns its error: what a leaf's reader said after the head
// was read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// compressedBackupHead reports a Proxmox backup vzdump compressed (by a
// copy's name) whose decoded bytes start like one.
func compressedBackupHead(g []*container, h []byte) bool {
	return bytes.HasPrefix(h, []byte("VMA\x00")) && slices.ContainsFunc(g, func(x *container) bool { return compressedBackup(x.path) })
}

// leftToNested reports whether the decode pass may leave a group of
// copies of an archive of images to nestedImages, which will open each of
// them: every copy is a current view's file (a copy in a snapshot, or
// deleted, is decoded, for its own exposure), the scan opens images one
// level further down, and the formats' readers open the file as what it
// holds (the probe nestedImages makes).
func (d *decoder) leftToNested(g []*container) bool {
	if d.s.depth >= maxNestedDepth {
		return false
	}
	for _, x := range g {
		if x.path == "" || x.v.view.Kind != model.KindCurrent || x.v.t.plainData() {
			return false
		}
	}
	c := g[0]
	head := make([]byte, formats.HeadLen)
	n, _ := c.r.ReadAt(head[:min(int64(len(head)), c.size)], 0)
	return nestedFormat(probeNested(head[:n], c.r, c.size, c.path, true))
}
