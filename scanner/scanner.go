// Package scanner streams every view of every target through the detectors,
// scanning each physical byte range about once, attributes each hit to every
// view that maps the same bytes, places it in the guest filesystem, and
// builds the lifetime model: where each secret persists and whether the
// guest still controls it.
package scanner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/stores"
)

// Options configure a scan.
type Options struct {
	Engine *detectors.Engine
	// MemoryRulesEverywhere turns the memory-structure rules (AES key
	// schedules, DER keys) on for disk views too; they are always on for
	// memory views.
	MemoryRulesEverywhere bool
	// Progress receives a progress bar, or plain progress lines (see
	// ProgressStyle); nil for none.
	Progress      io.Writer
	ProgressStyle ProgressOptions
	// Version is recorded in the report.
	Version string
	// NoDedupe scans every view in full (for measurements and debugging).
	NoDedupe bool
	// FailOn is recorded in the report.
	FailOn string
	// NoRollback skips the rollback-risk analysis of older views.
	NoRollback bool
	// BackingRoots are directories, besides each target's own (its
	// directory, or the directory scan that found it), under which the
	// files an image names (backing and data files, extents, parents) may
	// be opened (--backing-root).
	BackingRoots []string
	// SealedTargets says that the targets were taken out of a container
	// layer or an archive (spooled to temporary files): no name inside them
	// resolves to any file on this host.
	SealedTargets bool
	// Names, when set, records every name the images asked to open and
	// what the policy answered.
	Names *hostfile.Log
	// NoDowngrade reports every finding at its rule's severity: no package
	// provenance (severity info for public material) and no path context.
	NoDowngrade bool
	// DisableRules turns off rules of DerivedRules (rollback rules,
	// cloned-identity): their findings are not reported.
	DisableRules []string
	// Limits cap what a scan keeps (zero fields: DefaultLimits).
	Limits report.Limits
	// Opened, when set, is called once every target is opened and its
	// views' extents are listed, before the detectors read any byte, with
	// the host files the scan reads (what becomes report.Inputs: the
	// targets, their backing chains, extents and data files, and any
	// other file their images were allowed to open). An error it
	// returns ends the run there: Scan returns it and no report. The CLI
	// checks its output path here, so that `scan -o` naming a backing file
	// fails at once rather than after the scan.
	Opened func(inputs []string) error
	// MaxInflate bounds the bytes the compressed disks inside one archive
	// target (the gzip disks of an OVA) inflate to (0: the reader's
	// default, ova.DefaultMaxInflate); a disk cut there is reported
	// incomplete (--max-inflate).
	MaxInflate int64
	// NoDecode turns off decoding compressed and archived content
	// (--no-decode): only raw bytes are scanned.
	NoDecode bool
	// DecodeLimits bound each container's decoding (zero fields:
	// decode.DefaultLimits), and DecodeBudget the decoded bytes of one
	// target (0: DefaultDecodeBudget).
	DecodeLimits decode.Limits
	DecodeBudget int64
	// NoNestedImages leaves disk images stored as files in a guest's
	// filesystem (a qcow2 in /var/lib/libvirt/images) as those files' raw
	// bytes, instead of scanning each as a target of its own
	// (--no-nested-images).
	NoNestedImages bool
}

// DefaultLimits bound a scan's findings whatever the input: a rule keeps
// at most 10,000 findings per view and severity (issue 22's figure), each
// with at most 1,000 locations (a secret of a base image shared by a few
// hundred overlays and snapshots still lists them all); the run keeps at
// most 100,000 findings and 500,000 locations in all, which bounds its
// memory however many rules an input fills. What is cut is counted in the
// report (docs/report.md, "truncated"). A function, not a variable: no
// caller can change another's defaults.
func DefaultLimits() report.Limits {
	return report.Limits{FindingsPerRulePerView: 10000, LocationsPerFinding: 1000,
		FindingsPerScan: 100_000, LocationsPerScan: 500_000}
}

// Scanner runs scans. It holds no state between runs.
type Scanner struct {
	opts Options
	// depth counts the images inside images above this scan's targets
	// (nestedImages): 0 for the targets a caller names.
	depth int
}

// New returns a Scanner.
func New(opts Options) *Scanner { return &Scanner{opts: opts} }

// target is one opened image.
type target struct {
	path string
	// root is the directory scan that found the target ("" for a target
	// named on its own): an allowed root for the files its images name.
	root  string
	img   *model.Image
	err   error
	views []*viewState
	vm    string // VM name from store discovery; "" = the file name
	store *report.StoreInfo
	// From store discovery: when a memory file was saved and for which
	// snapshot, and the store's snapshots by the base name of their files.
	saved     time.Time
	savedFor  string
	snapshots map[string]stores.SnapshotInfo
	// storeFile marks a store's configuration and loose files: scanned,
	// but plain data rather than a machine unless they are images.
	storeFile bool
	// notes say how the target was found (a symlink followed, a name
	// that contradicts the content).
	notes []string
	// src is set for a target that is no host file (ScanReaders).
	src *Reader
	// named: the user named the target itself (not a directory scan or a
	// store's configuration), so it may be a block device.
	named bool
	// names records the host files the target's image asked for (nil for
	// a target that is no host file); hostNames are those the policy
	// allowed, as named and after symlinks (see hostFile).
	names     *hostfile.Log
	hostNames map[string]bool
}

// plainData reports whether the target is a store's non-image file (a
// domain XML, a .vmx, a log): it belongs to no timeline and has no
// filesystem.
func (t *target) plainData() bool {
	return t.storeFile && t.img != nil && t.img.Format == "raw" && !looksLikeRawImage(t.path)
}

// viewState is one view being scanned.
type viewState struct {
	t     *target
	view  model.View
	ext   []model.Extent // non-zero extents, sorted by guest offset
	files []string       // canonical host file of each extent
	// internal holds the names in files that are no host files (hostFile):
	// never mapped, opened or listed as inputs.
	internal map[string]bool
	// reps says how many times each extent repeats back to back (nil:
	// once each): aliased tables that map a run of guest ranges to one
	// host range are held as one record, not one per guest range.
	reps    []int64
	dedupe  bool
	alloc   int64
	scanned int64
	err     error
	notes   []string
	fs      *fsInfo
	fsOnce  sync.Once
	// cuts counts the matches cut by the findings cap and the keyword
	// hits the detectors left unvalidated, by rule.
	cuts Cuts
	// swapFiles lists the Linux swap files the decode pass found, by
	// partition: the report's partitions name them, for remediation.
	swapFiles map[string][]string
	// decoding counts what the decode pass read in this view, and
	// containers the containers it decoded there.
	decoding   decode.Result
	containers int64
	// packagedFiles: containers not decoded, package records prove them
	// unmodified (dropPackaged).
	packagedFiles int64
	// archiveStarts are where the decode pass found tar files of this
	// (current) view to start (OVAs, perhaps), and compressed Proxmox
	// backups (nestedImages).
	archiveStarts []int64
	// imageArchives are where files start whose decoded bytes start like
	// a disk or memory image, or one of whose members' do (a .qcow2.gz,
	// a Vagrant box): nestedImages opens them as archives of images.
	imageArchives []int64
	// leftToNested are those of imageArchives that the decode pass did
	// not decode, for nestedImages opens them; one it cannot open (over
	// its bounds) fails the view.
	leftToNested map[int64]bool
}

// Scan scans the targets (image files or directories) and returns the report.
// When ctx is cancelled it returns the partial report, marked incomplete,
// together with ctx's error.
func (s *Scanner) Scan(ctx context.Context, targets []string) (*report.Report, error) {
	return s.scan(ctx, func() ([]*target, []report.Skipped, []walked) { return s.open(ctx, targets) })
}

// scan opens the targets with open and scans them.
func (s *Scanner) scan(ctx context.Context, open func() ([]*target, []report.Skipped, []walked)) (*report.Report, error) {
	rep := &report.Report{
		SchemaVersion: report.SchemaVersion,
		Tool:          report.Tool{Name: "imgaudit", Version: s.opts.Version},
		Command:       "scan",
		Started:       time.Now().UTC(),
		Complete:      true,
		FailOn:        s.opts.FailOn,
		Targets:       []report.Target{},
		Findings:      []report.Finding{},
	}
	ts, skipped, dirFiles := open()
	defer func() {
		for _, t := range ts {
			if t.img != nil {
				t.img.Close()
			}
		}
	}()
	disambiguateViewIDs(ts)
	canon := newCanonicalizer()
	var views []*viewState
	for _, t := range ts {
		if t.err != nil {
			continue
		}
		for _, v := range t.img.Views {
			vs := s.prepareView(ctx, t, v, canon)
			t.views = append(t.views, vs)
			views = append(views, vs)
		}
	}
	// Views that are most likely to hold the shared bytes go first so that
	// the others only scan what differs.
	sort.SliceStable(views, func(i, j int) bool { return kindOrder(views[i].view.Kind) < kindOrder(views[j].view.Kind) })

	opened := openedFiles(ts, views)
	rep.Inputs = slices.Sorted(maps.Keys(touchedFiles(ts, opened)))
	var unread []*target
	rep.Skipped, unread = accountUnread(ts, dirFiles, opened, skipped)
	ts = append(ts, unread...)
	if s.opts.Opened != nil {
		if err := s.opts.Opened(rep.Inputs); err != nil {
			return nil, err
		}
	}

	lim := NewLimiter(s.opts.Limits, s.opts.Engine)
	col := newCollector(views, lim)
	var hits map[*viewState]*sigHits
	if !s.opts.NoDecode || s.nestedImagesOn() {
		hits = map[*viewState]*sigHits{}
	}
	byFile, err := s.scanViews(ctx, views, col, hits)
	// Package records and file digests are read once, for decoding and
	// for the findings' provenance.
	gate := newMemoryGate()
	var pr *provenanceReader
	if !s.opts.NoDowngrade {
		pr = newProvenanceReader(gate)
	}
	if err == nil && !s.opts.NoDecode {
		if derr := s.decodeAll(ctx, views, col, hits, pr, gate); derr != nil {
			err = fmt.Errorf("interrupted while decoding compressed and archived content: %w", derr)
		}
	}
	var nested []Reader
	if err == nil {
		nested = s.nestedImages(ctx, ts, hits)
	}
	stopped := err != nil
	if err != nil {
		report.MarkIncomplete(rep, err.Error())
	}
	rep.Findings = s.findings(ctx, col)
	if !s.opts.NoDowngrade {
		s.downgrade(ctx, ts, rep.Findings, pr)
	}
	if !s.opts.NoRollback && err == nil {
		risks, rerr := s.rollbackRisks(ctx, ts)
		rep.Findings = append(rep.Findings, s.dropDisabled(risks)...)
		if rerr != nil {
			stopped = true
			report.MarkIncomplete(rep, rerr.Error())
		}
	}
	rep.Timelines = buildTimelines(ts, rep.Findings)
	s.sharedIdentity(ctx, ts, rep)
	for _, t := range ts {
		rep.Targets = append(rep.Targets, t.report())
	}
	rep.Finished = time.Now().UTC()
	rep.Summary.ScannedBytesByFile = byFile
	rep.Summary.Truncated = &report.Truncation{Limits: lim.Limits()}
	report.Summarize(rep)
	if len(nested) > 0 && ctx.Err() == nil {
		rep = s.scanNested(ctx, nested, rep, lim.Limits())
	}
	if ctx.Err() != nil && !stopped {
		// Interrupted: whatever was found so far is reported, marked partial.
		report.MarkIncomplete(rep, StopReason(ctx))
	}
	report.CheckComplete(rep)
	if ctx.Err() != nil {
		return rep, StopCause(ctx)
	}
	return rep, nil
}

// openedFiles is the set of host files the scan reads, by real path:
// the targets, their backing files, and every file an extent of a view
// lies in (VMDK extents, qcow2 data files).
func openedFiles(ts []*target, views []*viewState) map[string]bool {
	opened := map[string]bool{}
	for _, t := range ts {
		if t.img == nil || t.src != nil {
			continue
		}
		opened[realPath(t.path)] = true
		for _, b := range t.img.Backing {
			if b.Path != "" && b.Err == nil {
				opened[realPath(b.Path)] = true
			}
		}
	}
	for _, v := range views {
		if v.t.src != nil {
			continue // its files are members of a layer or an archive
		}
		for _, f := range v.files {
			if f != "" && !v.internal[f] {
				opened[f] = true
			}
		}
	}
	return opened
}

// touchedFiles is opened and every other host file the targets' images
// were allowed to open, read or not (a backing file that then failed to
// decrypt, a Parallels DiskDescriptor.xml, a VDI's neighbour compared by
// UUID): the files no report may be written over.
func touchedFiles(ts []*target, opened map[string]bool) map[string]bool {
	out := maps.Clone(opened)
	for _, t := range ts {
		for _, p := range t.names.Allowed() {
			out[realPath(p)] = true
		}
	}
	return out
}

func kindOrder(k model.Kind) int {
	switch k {
	case model.KindCurrent:
		return 0
	case model.KindBacking:
		return 1
	case model.KindSnapshot:
		return 2
	case model.KindLayer:
		return 3
	case model.KindUnreferenced:
		return 4
	case model.KindMemory:
		return 5
	}
	return 6
}

// open expands directories and opens every image. Files that are backing
// files of other images being scanned are not scanned again on their own:
// their bytes are covered by the backing views of the images above them.
// Every entry of a scanned directory that is no target is in skipped, with
// the reason; dirFiles are the regular files found in directories, for
// accountUnread.
func (s *Scanner) open(ctx context.Context, targets []string) (ts []*target, skipped []report.Skipped, dirFiles []walked) {
	fromDir := map[string]bool{}
	// unlisted are a store's files that its discovery did not list.
	var unlisted []*target
	// dirRoot is the directory being scanned: the allowed root of the
	// files the images found in it name (a store's own root for its VMs).
	var dirRoot string
	addDir := func(t *target) {
		if t.root == "" {
			t.root = dirRoot
		}
		ts = append(ts, t)
		fromDir[t.path] = true
	}
	for _, arg := range targets {
		st, err := os.Stat(arg)
		if err != nil {
			ts = append(ts, &target{path: arg, err: err})
			continue
		}
		if !st.IsDir() {
			ts = append(ts, &target{path: arg, named: true})
			continue
		}
		dirRoot = arg
		entries, err := walkDir(ctx, arg, s.opts.BackingRoots)
		if err != nil {
			ts = append(ts, &target{path: arg, err: err})
			continue
		}
		var listed map[string]bool // files a store layout lists
		if store, err := stores.Discover(ctx, arg); err == nil && store.Kind != "plain" {
			listed = map[string]bool{}
			for _, t := range storeTargets(store) {
				t.root = store.Root
				addDir(t)
				listed[realPath(t.path)] = true
			}
			for _, b := range store.Backing {
				listed[realPath(b)] = true
			}
		}
		for _, w := range entries {
			switch {
			case w.err != nil:
				addDir(&target{path: w.path, err: w.err})
			case w.skip != "":
				skipped = append(skipped, report.Skipped{Path: w.path, Reason: w.skip})
			case listed != nil && !w.link:
				// A store's regular files are its targets, backing files
				// and extents; one that none of these turns out to be
				// (discovery stops at 8 levels and 100000 files) is
				// scanned on its own, once the targets are open.
				dirFiles = append(dirFiles, w)
				if !listed[w.real] {
					unlisted = append(unlisted, &target{path: w.path, root: dirRoot, storeFile: true,
						notes: []string{"store discovery did not reach this file (it searches 8 levels and 100000 files), and no image of the store reads it: scanned on its own"}})
				}
			case listed != nil && listed[w.real]:
				skipped = append(skipped, report.Skipped{Path: w.path, Reason: "symlink to " + w.real + ", which is scanned as part of the store"})
			case listed != nil:
				// Store discovery does not follow links: the file it leads
				// to is a plain target.
				addDir(&target{path: w.path, storeFile: true, notes: []string{linkNote(w)}})
				dirFiles = append(dirFiles, w)
			default:
				t, why := classify(w)
				if t == nil {
					skipped = append(skipped, report.Skipped{Path: w.path, Reason: why})
					continue
				}
				addDir(t)
				dirFiles = append(dirFiles, w)
			}
		}
	}
	backingOf := map[string]bool{}
	openAll := func(ts []*target) {
		for _, t := range ts {
			if t.err != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				t.err = err
				continue
			}
			t.img, t.err = s.openImage(ctx, t)
			if t.img != nil {
				t.notes = append(t.notes, nameNotes(t.path, t.img.Format)...)
				for _, b := range t.img.Backing {
					// A backing file that could not be opened is not read
					// through its child: it is scanned on its own.
					if b.Path != "" && b.Err == nil {
						backingOf[realPath(b.Path)] = true
					}
				}
			}
		}
	}
	openAll(ts)
	if len(unlisted) > 0 {
		// Those the store's images read (a VMDK's extents) are read
		// there; the rest are targets of their own.
		read := map[string]bool{}
		for _, t := range ts {
			read[realPath(t.path)] = true
			for _, p := range t.names.Allowed() {
				read[realPath(p)] = true
			}
		}
		var more []*target
		for _, t := range unlisted {
			if !read[realPath(t.path)] {
				more = append(more, t)
				fromDir[t.path] = true
			}
		}
		openAll(more)
		ts = append(ts, more...)
	}
	var out []*target
	for _, t := range ts {
		if fromDir[t.path] && backingOf[realPath(t.path)] {
			if t.img != nil {
				t.img.Close()
			}
			continue
		}
		out = append(out, t)
	}
	return out, skipped, dirFiles
}

// openImage opens a target with the policy for the files its image names:
// regular files under the target's root (its directory, or the directory
// scan that found it) and the --backing-root directories; none at all for
// sealed targets.
func (s *Scanner) openImage(ctx context.Context, t *target) (*model.Image, error) {
	if t.src != nil {
		return s.openReader(ctx, t)
	}
	var opener model.Opener = hostfile.Sealed{Log: s.opts.Names}
	if !s.opts.SealedTargets {
		root := t.root
		if root == "" {
			root = filepath.Dir(t.path)
		}
		roots, err := hostfile.NewRoots(append([]string{root}, s.opts.BackingRoots...)...)
		if err != nil {
			return nil, fmt.Errorf("allowed roots: %w", err)
		}
		t.names = s.opts.Names.Tee()
		opener = roots.WithLog(t.names)
	}
	im, err := formats.Open(ctx, t.path, model.Options{Opener: opener, MaxInflate: s.opts.MaxInflate, BlockDevice: t.named})
	t.hostNames = map[string]bool{t.path: true}
	for _, p := range t.names.Allowed() {
		t.hostNames[p] = true
	}
	return im, err
}

// accountUnread returns, as targets with an error (so that the run is
// incomplete), the regular files found in directories that no target is
// and no view read: in a store, a file that discovery did not list and
// that an image opened without reading it through a view (open scans the
// others on their own). Before 2026-12-08 such files, and every file
// discovery did not reach, were only listed in skipped, and a gate
// passed.
func accountUnread(ts []*target, dirFiles []walked, opened map[string]bool, skipped []report.Skipped) ([]report.Skipped, []*target) {
	seen := map[string]bool{}
	for _, t := range ts {
		seen[realPath(t.path)] = true
	}
	var unread []*target
	for _, w := range dirFiles {
		if !seen[w.real] && !opened[w.real] {
			seen[w.real] = true
			unread = append(unread, &target{path: w.path, err: errors.New("not read: store discovery did not list it, and the store's images opened it without reading it")})
		}
	}
	return skipped, unread
}

// looksLikeRawImage reports whether a raw file is a disk image, by its
// name or by its content: a partition table, a boot signature, a
// filesystem, LVM PV or LUKS volume (formats.Probe's evidence).
func looksLikeRawImage(p string) bool {
	if hasRawImageExt(p) {
		return true
	}
	m, err := formats.ProbeFile(p)
	return err == nil && m.Evidence != ""
}

// hasRawImageExt reports the extensions that name a raw disk or memory
// image.
func hasRawImageExt(p string) bool {
	switch filepath.Ext(p) {
	case ".img", ".raw", ".dd", ".bin", ".iso", ".disk", ".vmem":
		return true
	}
	return false
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return p
}

// canonicalizer caches canonical host paths so that extents naming one file
// through different relative paths share a physical identity.
type canonicalizer map[string]string

func newCanonicalizer() canonicalizer { return canonicalizer{} }

func (c canonicalizer) path(p string) string {
	if p == "" {
		return ""
	}
	if r, ok := c[p]; ok {
		return r
	}
	r := realPath(p)
	c[p] = r
	return r
}

func (s *Scanner) prepareView(ctx context.Context, t *target, v model.View, canon canonicalizer) *viewState {
	vs := &viewState{t: t, view: v, notes: slices.Clone(v.Notes)}
	if v.Kind == model.KindMemory {
		v2, notes := s.memoryView(ctx, v)
		vs.view, vs.notes = v2, append(vs.notes, notes...)
	}
	// A reader that cut the view short says so; the rest of it is still
	// scanned, and the target counts as incomplete.
	vs.fail(vs.view.Incomplete)
	vs.dedupe = !s.opts.NoDedupe && vs.view.Kind != model.KindMemory
	if vs.view.Disk == nil {
		vs.fail(errors.New("view has no readable data"))
		return vs
	}
	var aliased int64
	var firstAlias model.Extent
	for e, err := range vs.view.Disk.Extents(ctx) {
		if err != nil {
			vs.fail(err)
			break
		}
		if e.Source == model.SourceZero || e.Length <= 0 {
			continue
		}
		vs.alloc += e.Length
		if n := len(vs.ext) - 1; n >= 0 && repeats(vs.ext[n], vs.reps[n], e) {
			// The same host bytes again, right after: a hostile table
			// (every cluster of a 1 TiB qcow2 at one host cluster) or a
			// dump whose segments all read one block.
			vs.reps[n]++
			if aliased == 0 {
				firstAlias = e
			}
			aliased += e.Length
			continue
		}
		if len(vs.ext) >= maxExtentsPerView {
			vs.fail(model.Errorf(cmp.Or(e.File, vs.view.ID), e.FileOffset, "more than %d extents: view cut at guest offset %d (the rest is not scanned)", maxExtentsPerView, e.Offset))
			break
		}
		vs.ext = append(vs.ext, e)
		f, host := t.hostFile(canon, e.File)
		if !host && f != "" {
			if vs.internal == nil {
				vs.internal = map[string]bool{}
			}
			vs.internal[f] = true
		}
		vs.files = append(vs.files, f)
		vs.reps = append(vs.reps, 1)
	}
	if aliased > 0 {
		vs.notes = append(vs.notes, fmt.Sprintf("%d bytes of this view repeat host bytes that the guest range right before them reads (aliased tables), the first at guest offset %d: %s at offset %d; each host range is scanned once, and a secret there is listed at its first places and counted at the rest", aliased, firstAlias.Offset, firstAlias.File, firstAlias.FileOffset))
		if vs.view.Attrs == nil {
			vs.view.Attrs = map[string]string{}
		} else {
			vs.view.Attrs = maps.Clone(vs.view.Attrs)
		}
		vs.view.Attrs["aliased_bytes"] = strconv.FormatInt(aliased, 10)
	}
	return vs
}

// fail records an error of the view, after any it already has (a view cut
// by its reader can break off again while it is scanned): each is said.
func (v *viewState) fail(err error) {
	switch {
	case err == nil:
	case v.err == nil:
		v.err = err
	default:
		v.err = fmt.Errorf("%w; %w", v.err, err)
	}
}

// maxExtentsPerView bounds the extent records a view holds in memory
// (about 90 bytes each with its index entry): 2 Mi records are 128 GiB
// of data in 64 KiB clusters, each in a different place. A view with more
// is cut there, with an error, so the target is reported incomplete.
const maxExtentsPerView = 1 << 21

// repeats reports whether extent e reads, right after record last (and
// its reps repetitions), the very host bytes last reads: stored as-is,
// same file, offset and length.
func repeats(last model.Extent, reps int64, e model.Extent) bool {
	return e.Source == model.SourceData && last.Source == model.SourceData &&
		e.File == last.File && e.FileOffset == last.FileOffset && e.FileOffset >= 0 &&
		e.Length == last.Length && last.Offset+last.Length*reps == e.Offset
}

// scanViews runs the detectors over every view. With hits set, the scan
// also notes the magic numbers of compressed and archived content at
// every 512-byte boundary, by view, for the decode pass.
func (s *Scanner) scanViews(ctx context.Context, views []*viewState, col *collector, hits map[*viewState]*sigHits) (map[string]int64, error) {
	var total int64
	for _, v := range views {
		total += v.alloc
	}
	bar := newProgress(s.opts.Progress, total, s.opts.ProgressStyle)
	defer bar.close()
	var onChunk func(int64)
	if bar != nil {
		onChunk = bar.scanned
	}

	// The current state's filesystem is always analyzed (its findings'
	// paths, /etc/machine-id): do it while the detectors run, not after
	// them. Walking the tree of a 760 MiB image of /usr took 15 ms on one
	// core, 10% of the scan's time. All of it is done when this returns.
	for _, v := range views {
		if v.view.Kind == model.KindCurrent && v.view.Disk != nil && v.err == nil && !v.t.plainData() {
			done := make(chan struct{})
			go func() { defer close(done); v.filesystem(ctx) }()
			defer func() { <-done }()
		}
	}

	ms := &mappings{m: map[string][]byte{}}
	defer ms.close() // after every Scan below has returned

	margin := int64(s.opts.Engine.Margin())
	p := newPlanner(margin)
	// The decode pass's signatures first, then the disk images' (each
	// only when its pass runs: every signature costs the probe a little).
	var sigs []detectors.Signature
	if !s.opts.NoDecode {
		sigs = detectorSignatures(decode.Signatures())
	}
	decodeSigs := len(sigs)
	switch {
	case s.nestedImagesOn():
		sigs = append(sigs, imageSignatures()...)
	case !s.opts.NoDecode:
		sigs = append(sigs, coreSignatures()...) // process cores, for the decode pass
	}
	for _, v := range views {
		if v.err != nil && len(v.ext) == 0 {
			bar.endView(v.alloc)
			continue
		}
		bar.beginView(v.view.ID)
		ranges := p.plan(v)
		rs := make([]detectors.Range, len(ranges))
		for i, r := range ranges {
			rs[i] = detectors.Range{Start: r.start, End: r.end}
		}
		memory := v.view.Kind == model.KindMemory || s.opts.MemoryRulesEverywhere
		opts := detectors.ScanOptions{Memory: memory, Progress: onChunk, Skipped: v.cuts.Skipped,
			Enough: func(rule string) bool { return col.lim.Enough(v, rule) }}
		if hits != nil {
			h := &sigHits{decodeSigs: decodeSigs}
			hits[v] = h
			opts.Signatures, opts.SignatureAt = sigs, h.record
		}
		n, err := s.opts.Engine.Scan(ctx, lendable(v, ms), v.view.Disk.Size(), rs, opts, func(m detectors.Match) {
			col.add(v, m)
		})
		v.scanned += n
		bar.endView(v.alloc)
		if err != nil {
			if ctx.Err() != nil {
				return p.byFile, fmt.Errorf("interrupted while scanning %s: %w", v.view.ID, StopCause(ctx))
			}
			v.fail(err)
		}
	}
	delete(p.byFile, "")
	return p.byFile, nil
}
