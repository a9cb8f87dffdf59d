// Package registry audits container images for secrets: images in OCI
// registries (tags, digests, whole repositories, multi-platform indexes),
// local OCI layout directories and docker/podman save tarballs. Layers are
// streamed (gzip, zstd or plain) through a tar reader without extraction;
// every regular file goes through the detectors, and files that are VM
// disk or memory images (KubeVirt containerDisks, disk images pushed as
// OCI artifacts) are audited with the disk readers: in place when the
// layer is an uncompressed local file, else from a spool. Whiteouts
// and later overwrites decide each finding's exposure: "live" when the
// bytes are in the image's merged filesystem, "layer" when a later layer
// deleted or replaced them (they still ship to everyone who pulls).
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/downgrade"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// Defaults for Options fields left zero.
const (
	DefaultTimeout      = 60 * time.Second
	DefaultRetries      = 3
	DefaultMaxSpoolSize = 16 << 30
	// scanWindow is the per-file detector window: files larger than this
	// are scanned in windows of this size (plus the engine's margin).
	scanWindow = 8 << 20
)

// View kinds used for container images, besides model.KindLayer ("layer").
const viewKindConfig = "config"

// Options configure a Scanner.
type Options struct {
	// Engine runs the detectors (required).
	Engine *detectors.Engine
	// MemoryRules turns the memory-structure rules on for layer files.
	MemoryRules bool
	// DisableRules turns off the disk scanner's own rules (rollback,
	// cloned-identity; see scanner.DerivedRules) for disks in layers.
	DisableRules []string
	// DiskScanner audits a VM disk or memory image found in a layer, read
	// in place or from a spool; nil uses scanner.New with Engine
	// (ScanReaders: a disk from a layer never resolves its backing or
	// extent names on this host, only in its own layer).
	DiskScanner func(ctx context.Context, disk scanner.Reader) (*report.Report, error)

	// Keychain resolves registry credentials; nil uses authn.DefaultKeychain
	// (the Docker config, credential helpers).
	Keychain authn.Keychain
	// Transport is the base HTTP transport; nil uses one with the timeouts
	// below.
	Transport http.RoundTripper
	// PlainHTTP talks HTTP instead of HTTPS to every registry (loopback
	// registries are reached over HTTP anyway when HTTPS fails).
	PlainHTTP bool
	// Platform selects one platform ("os/arch[/variant]") of multi-platform
	// indexes; "" scans them all.
	Platform string
	// AllTags scans every tag of each repository named by a REF.
	AllTags bool
	// Timeout bounds connecting, the wait for response headers and any
	// stall while a blob streams (default DefaultTimeout).
	Timeout time.Duration
	// Retries is how often a request or a broken blob stream is retried on
	// network errors (default DefaultRetries; negative for none).
	Retries int

	// TmpDir receives spooled disk images (default os.TempDir()): those of
	// layers read as streams (pulled, or compressed); a local uncompressed
	// layer's disks are read in place.
	TmpDir string
	// MaxSpoolSize caps a spooled disk image (default DefaultMaxSpoolSize);
	// bigger ones are scanned as plain bytes, with a note.
	MaxSpoolSize int64

	// State, when set, supplies earlier results (blobs already scanned are
	// not pulled again) and receives this run's; findings are marked new
	// when their fingerprint is not in it. The caller saves it.
	State *State

	// Version and FailOn are recorded in the report.
	Version, FailOn string
	// NoDowngrade reports every finding at its rule's severity: those of
	// VM disks found in layers (scanner.Options.NoDowngrade), and those
	// of layer files, which otherwise get the list of published keys,
	// package provenance from the image's merged package records, and
	// path context (layerProvenance).
	NoDowngrade bool
	// NoDecode scans raw bytes only: compressed streams and archives in
	// layer files and in VM disks found in layers are not decoded
	// (scanner.Options.NoDecode).
	NoDecode bool
	// NoNestedImages leaves the disk images stored as files inside VM
	// disks found in layers as those files' bytes
	// (scanner.Options.NoNestedImages).
	NoNestedImages bool
	// Log receives one line per image and retried blob; nil for none.
	Log io.Writer
	// Limits cap what the scan keeps (zero fields: scanner.DefaultLimits):
	// per layer for its files, per view for the disks in layers, and per
	// finding over the image. What is cut is counted in the report.
	Limits report.Limits
}

// Scanner scans container images. It is not safe for concurrent use.
type Scanner struct {
	opts     Options
	platform *v1.Platform
	// blobs caches this run's blob results by digest, so that a layer
	// shared by many tags or platforms is read once.
	blobs map[string]*blobResult
	// counted records the blobs whose scanned bytes are already in a view.
	counted map[string]bool
	// heldRecordBytes counts the packed package records of the blobs
	// this run read, up to maxRecordBytes (maxRunRecordBytes; tests
	// set less).
	heldRecordBytes, maxRecordBytes int64
	// maxImageRecordBytes bounds the records an image's judging holds
	// unpacked (maxImageRecordBytes; tests set less).
	maxImageRecordBytes int64
	// puller keeps one authenticated transport per repository, so that a
	// scan pings a registry's /v2/ once per repository, not before every
	// manifest and blob.
	puller *remote.Puller

	// layerJobs is how many layers are read at once (layers.go; tests
	// set 1 to compare with reading them in turn); slots holds one token
	// per layer being read.
	layerJobs int
	slots     chan struct{}
	// ahead holds the layers of the next image that started reading
	// while the image before it ended, by digest (readAhead).
	ahead map[string]*layerRead
	// gate bounds the decoders of the layers read at once, and the
	// decoded matches they hold, together (decode.MemoryGate).
	gate *decode.MemoryGate
	// diskSlot lets one layer at a time spool and audit a disk found in
	// it: a disk scan has its own memory bound, and a spool its own room
	// in TmpDir, which layers read at once would otherwise add up.
	diskSlot chan struct{}
	logMu    sync.Mutex // Log is written by the layers read at once
}

// New checks opts and returns a Scanner.
func New(opts Options) (*Scanner, error) {
	if opts.Engine == nil {
		return nil, errors.New("registry: no detector engine")
	}
	s := &Scanner{opts: opts, blobs: map[string]*blobResult{}, counted: map[string]bool{}, maxRecordBytes: maxRunRecordBytes, maxImageRecordBytes: maxImageRecordBytes,
		layerJobs: layerJobs, gate: decode.NewMemoryGate(decode.GatePool, decode.GatePerWalk), diskSlot: make(chan struct{}, 1)}
	if opts.Platform != "" {
		p, err := v1.ParsePlatform(opts.Platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("platform %q: want os/arch[/variant]", opts.Platform)
		}
		s.platform = p
	}
	if s.opts.Timeout <= 0 {
		s.opts.Timeout = DefaultTimeout
	}
	if s.opts.Retries == 0 {
		s.opts.Retries = DefaultRetries
	} else if s.opts.Retries < 0 {
		s.opts.Retries = 0
	}
	if s.opts.TmpDir == "" {
		s.opts.TmpDir = os.TempDir()
	}
	if s.opts.MaxSpoolSize <= 0 {
		s.opts.MaxSpoolSize = DefaultMaxSpoolSize
	}
	if s.opts.Keychain == nil {
		s.opts.Keychain = authn.DefaultKeychain
	}
	if s.opts.DiskScanner == nil {
		// A disk from a layer is no host file: its backing, data file and
		// extent names mean files of the layer, never of this host.
		sc := scanner.New(scanner.Options{Engine: opts.Engine, Version: opts.Version, FailOn: opts.FailOn, MemoryRulesEverywhere: opts.MemoryRules,
			SealedTargets: true, NoDowngrade: opts.NoDowngrade, NoDecode: opts.NoDecode, NoNestedImages: opts.NoNestedImages, DisableRules: opts.DisableRules, Limits: opts.Limits})
		s.opts.DiskScanner = func(ctx context.Context, disk scanner.Reader) (*report.Report, error) {
			return sc.ScanReaders(ctx, []scanner.Reader{disk})
		}
	}
	if opts.State != nil {
		key := RulesKey(opts.Engine, opts.Version)
		if opts.NoDowngrade {
			// cached disk findings carry the severities they were rated at
			key = hashStrings([]string{key, "no-downgrade"})
		}
		if opts.NoDecode {
			// cached results lack what decoding finds
			key = hashStrings([]string{key, "no-decode"})
		}
		opts.State.useRules(key)
		// The state's blobs are in memory for the whole run: their
		// records count against the run's cap as those read now do.
		for _, b := range opts.State.Blobs {
			s.heldRecordBytes += b.packedRecordBytes()
			for _, r := range b.Records {
				s.heldRecordBytes += int64(len(r))
			}
		}
	}
	p, err := remote.NewPuller(s.remoteOptions()...)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	s.puller = p
	return s, nil
}

// RulesKey identifies a rule set, its allowlists and the tool version:
// blob results in a state file made with another key are not reused (a
// new rule could find something in them, a changed allowlist keep or drop
// something). A --rules file's rules count by their definitions, not
// only their IDs (since 2026-12-07): an edited pattern under the same ID
// reads the cached layers again. A built-in set's key is what it was.
func RulesKey(e *detectors.Engine, version string) string {
	key := append([]string{"imgaudit " + version}, e.Rules()...)
	if al := e.AllowlistKeys(); len(al) > 0 {
		key = append(append(key, "allowlists"), al...)
	}
	if ud := e.UserRuleDigests(); len(ud) > 0 {
		key = append(append(key, "user rules"), ud...)
	}
	return hashStrings(key)
}

func (s *Scanner) scanOpts() detectors.ScanOptions {
	return detectors.ScanOptions{Memory: s.opts.MemoryRules}
}

func (s *Scanner) scanBuffer() []byte {
	return make([]byte, scanWindow+2*s.opts.Engine.Margin())
}

func (s *Scanner) logf(format string, args ...any) {
	if s.opts.Log != nil {
		s.logMu.Lock()
		defer s.logMu.Unlock()
		fmt.Fprintf(s.opts.Log, "imgaudit: "+format+"\n", args...)
	}
}

// ScanRefs scans registry references: tags, digests and repositories
// (with AllTags, every tag of the repository; without, a bare repository
// means its "latest" tag). An image that cannot be read is listed as a
// target with its error and the others go on. When ctx is cancelled, the
// partial report is returned, marked incomplete, with ctx's error.
func (s *Scanner) ScanRefs(ctx context.Context, refs []string) (*report.Report, error) {
	return s.run(ctx, "registry", func(yield func(image) bool) {
		for _, r := range refs {
			for _, img := range s.resolveRemote(ctx, r) {
				if !yield(img) {
					return
				}
			}
		}
	})
}

// ScanLocal scans local container sources: OCI layout directories (every
// manifest of their index.json) and docker/podman save tarballs (every
// image of their manifest.json). See IsContainerSource.
func (s *Scanner) ScanLocal(ctx context.Context, paths []string) (*report.Report, error) {
	return s.run(ctx, "scan", func(yield func(image) bool) {
		for _, p := range paths {
			for _, img := range s.resolveLocal(ctx, p) {
				if !yield(img) {
					return
				}
			}
		}
	})
}

func (s *Scanner) run(ctx context.Context, command string, images func(func(image) bool)) (*report.Report, error) {
	started := time.Now().UTC()
	parts := []*report.Report{}
	// The next images are known before this one is scanned, so that
	// their layers can start as this one's last layers end (readAhead):
	// as many images as layers may be read ahead.
	next, stop := iter.Pull(iter.Seq[image](images))
	var queue []image
	for ctx.Err() == nil {
		for len(queue) <= s.window() {
			img, ok := next()
			if !ok {
				break
			}
			queue = append(queue, img)
		}
		if len(queue) == 0 {
			break
		}
		var ahead []blob
		for _, img := range queue[1:] {
			if img.Err == nil {
				ahead = append(ahead, img.Layers...)
			}
		}
		parts = append(parts, s.scanImageThen(ctx, queue[0], ahead))
		queue = queue[1:]
	}
	stop()
	s.endReadAhead()
	rep := report.Merge(parts...)
	rep.SchemaVersion = report.SchemaVersion
	rep.Tool = report.Tool{Name: "imgaudit", Version: s.opts.Version}
	rep.Command, rep.FailOn, rep.Started, rep.Finished = command, s.opts.FailOn, started, time.Now().UTC()
	if st := s.opts.State; st != nil {
		for i := range rep.Findings {
			f := &rep.Findings[i]
			isNew := !st.knows(f.Fingerprint)
			f.New = &isNew
		}
		for _, f := range rep.Findings {
			st.remember(f.Fingerprint, rep.Finished)
		}
	}
	rep.Summary.Truncated = &report.Truncation{Limits: s.limiter().Limits()}
	report.Summarize(rep)
	report.CheckComplete(rep)
	if err := scanner.StopCause(ctx); err != nil {
		report.MarkIncomplete(rep, scanner.StopReason(ctx))
		return rep, err
	}
	return rep, nil
}

// limiter is a Limiter of the scan's limits, whose zero fields it fills.
func (s *Scanner) limiter() *scanner.Limiter { return scanner.NewLimiter(s.opts.Limits, s.opts.Engine) }

// blob returns the result of scanning b: from this run, from the state,
// or by scanning it now. fresh is true when it was read in this run.
func (s *Scanner) blob(ctx context.Context, b blob) (res *blobResult, fresh bool) {
	if r, fresh, ok := s.cached(b); ok {
		return r, fresh
	}
	r := s.scanBlob(ctx, b)
	s.keep(ctx, b, r)
	return r, true
}

// cached returns b's result when this run or the state has it; fresh is
// true when it was read in this run.
func (s *Scanner) cached(b blob) (r *blobResult, fresh, ok bool) {
	if r, ok := s.blobs[b.Digest]; ok {
		return r, true, true
	}
	if st := s.opts.State; st != nil {
		if r := st.blob(b.Digest); r != nil {
			s.counted[b.Digest] = true // nothing read this run
			return r, false, true
		}
	}
	return nil, false, false
}

// keep holds b's result r, read in this run, within the run's cap on
// package records, and keeps it for the rest of the run and the state.
// The layers of an image are kept in their order, whatever order they
// were read in (layers.go), so that which layer's records the cap drops
// does not depend on timing.
func (s *Scanner) keep(ctx context.Context, b blob, r *blobResult) {
	store := true
	if n := r.packedRecordBytes(); n > 0 && s.heldRecordBytes+n > s.maxRecordBytes {
		r.dropRecords(fmt.Sprintf("the run already holds %d MiB of other layers' records, packed; its cap is %d MiB", s.heldRecordBytes>>20, s.maxRecordBytes>>20))
		store = false // a later run, holding less, reads the layer again
	} else {
		s.heldRecordBytes += n
	}
	if ctx.Err() == nil {
		s.blobs[b.Digest] = r
		if st := s.opts.State; st != nil && len(r.Errors) == 0 && store {
			st.putBlob(r)
		}
	}
}

// scanImage scans one image (one platform's manifest) and returns its part
// of the report: the image target, the targets of disk images found in its
// layers, and its findings with exposures decided by the layer stack.
func (s *Scanner) scanImage(ctx context.Context, img image) *report.Report {
	return s.scanImageThen(ctx, img, nil)
}

// scanImageThen is scanImage, given the layers of the images the run scans
// next, in order, which may start reading as this image's last layers end.
func (s *Scanner) scanImageThen(ctx context.Context, img image, next []blob) *report.Report {
	rep := &report.Report{Complete: true}
	t := report.Target{Path: img.Target, Format: img.Format, Digest: img.Digest, Platform: img.Platform, Views: []report.View{}, Errors: []string{}}
	if img.Err != nil {
		t.Format = ""
		t.Errors = append(t.Errors, img.Err.Error())
		rep.Targets = []report.Target{t}
		s.logf("%s: %v", img.Target, img.Err)
		return rep
	}
	s.logf("scanning %s (%d layers)", img.Target, len(img.Layers))
	results, fresh := s.scanLayers(ctx, img.Layers, next)
	if ctx.Err() != nil {
		rep.Complete = false
	}
	indexes := make([]*pathIndex, len(results))
	for i, r := range results {
		if r != nil && r.Kind == blobTar && !img.artifact {
			indexes[i] = &r.Index
		}
	}
	for i, r := range results {
		if r == nil {
			continue
		}
		b := img.Layers[i]
		vid := layerViewID(img.Target, i, b.Digest)
		v := report.View{
			ID: vid, Kind: "layer", Name: fmt.Sprintf("%d:%s", i, shortDigest(b.Digest)),
			Size: r.Bytes, AllocatedBytes: r.Bytes, Notes: append([]string(nil), r.Notes...),
			Attrs:     map[string]string{"digest": b.Digest, "files": strconv.Itoa(r.Files), "compressed_size": strconv.FormatInt(r.CompressedSize, 10)},
			Truncated: r.Truncated, Decoding: cloneDecoding(r.Decoding),
		}
		if b.MediaType != "" {
			v.Attrs["media_type"] = b.MediaType
		}
		if r.Compression != "" {
			v.Attrs["compression"] = r.Compression
		}
		countedHere := false // this view carries the bytes read for the blob
		if !fresh[i] {
			v.Notes = append(v.Notes, "scanned in an earlier run (--state): not pulled again")
		} else if !s.counted[b.Digest] {
			v.ScannedBytes = r.Scanned
			s.counted[b.Digest] = true
			countedHere = true
		}
		if len(r.Errors) > 0 {
			v.Error = strings.Join(r.Errors, "; ")
			for _, e := range r.Errors {
				// Named by the view, as the disk scanner names view errors:
				// each target error says where it is on its own.
				t.Errors = append(t.Errors, vid+": "+e)
			}
		}
		t.Views = append(t.Views, v)
		above := indexes[min(i+1, len(indexes)):]
		layerIndex := i
		for _, f := range r.Findings {
			f.Locations = append([]report.Location(nil), f.Locations...)
			f.Metadata = maps.Clone(f.Metadata)
			for j := range f.Locations {
				l := &f.Locations[j]
				li := layerIndex
				l.LayerIndex, l.LayerDigest = &li, b.Digest
				if l.Target == "" { // a plain file of the layer
					l.Target, l.View = img.Target, vid
					if l.Exposure != report.ExposureLayer {
						l.Exposure = report.ExposureLive
						if hiddenAbove(above, l.Path) {
							l.Exposure = report.ExposureLayer
						}
					}
					continue
				}
				// Inside a disk image at l.Target in the layer.
				if l.Exposure == report.ExposureLive && hiddenAbove(above, l.Target) {
					l.Exposure = report.ExposureLayer
				}
				inner := l.Target
				l.Target = img.Target + "!" + inner
				l.View = img.Target + "!" + l.View
				if l.File != "" {
					l.File = img.Target + "!" + l.File
				}
			}
			report.RecomputeExposure(&f)
			rep.Findings = append(rep.Findings, f)
		}
		for _, d := range r.Disks {
			rep.Targets = append(rep.Targets, diskTarget(img.Target, d, !countedHere))
		}
	}
	if img.Config != nil && ctx.Err() == nil {
		r, fresh := s.blob(ctx, *img.Config)
		v := report.View{ID: img.Target + "#config", Kind: viewKindConfig, Name: shortDigest(img.Config.Digest), Size: r.Bytes, AllocatedBytes: r.Bytes,
			Attrs: map[string]string{"digest": img.Config.Digest}, Truncated: r.Truncated}
		if fresh && !s.counted[img.Config.Digest] {
			v.ScannedBytes = r.Scanned
			s.counted[img.Config.Digest] = true
		}
		if len(r.Errors) > 0 {
			v.Error = strings.Join(r.Errors, "; ")
			t.Errors = append(t.Errors, v.ID+": "+v.Error)
		}
		t.Views = append(t.Views, v)
		for _, f := range r.Findings {
			f.Locations = append([]report.Location(nil), f.Locations...)
			for j := range f.Locations {
				f.Locations[j].Target, f.Locations[j].View = img.Target, v.ID
				f.Locations[j].Exposure = report.ExposureLive
			}
			report.RecomputeExposure(&f)
			rep.Findings = append(rep.Findings, f)
		}
	}
	if ctx.Err() != nil {
		rep.Complete = false
	} else if st := s.opts.State; st != nil && len(t.Errors) == 0 {
		layers := make([]string, len(img.Layers))
		for i, b := range img.Layers {
			layers[i] = b.Digest
		}
		cfg := ""
		if img.Config != nil {
			cfg = img.Config.Digest
		}
		ref, _, _ := strings.Cut(img.Target, "@")
		st.putManifest(img.Digest, ref, img.Platform, cfg, layers, time.Now().UTC())
	}
	rep.Targets = append([]report.Target{t}, rep.Targets...)
	rep.Findings = collapseRules(rep.Findings, s.limiter().Limits().LocationsPerFinding)
	if !s.opts.NoDowngrade && ctx.Err() == nil {
		publishedKeys(rep.Findings)
		notes := layerProvenance(ctx, img.Target, results, indexes, rep.Findings, s.maxImageRecordBytes, s.gate)
		rep.Targets[0].Notes = append(rep.Targets[0].Notes, notes...)
		slices.SortStableFunc(rep.Findings, func(a, b report.Finding) int {
			return report.SeverityRank(a.Severity) - report.SeverityRank(b.Severity)
		})
	}
	return rep
}

// cloneDecoding copies a blob's decoding counts into a view: a blob
// shared by images is one result, and each report owns its views.
func cloneDecoding(d *report.ViewDecoding) *report.ViewDecoding {
	if d == nil {
		return nil
	}
	c := *d
	c.Skipped = maps.Clone(d.Skipped)
	return &c
}

// publishedKeys makes the keys that software publishes info (package
// downgrade's list: GnuTLS's self-test keys are in every image with apt),
// in layer files as in disks found in layers, whose scanner did the same.
func publishedKeys(fs []report.Finding) {
	known := downgrade.NewKnownPublic()
	for i := range fs {
		if fs[i].Severity != report.SeverityInfo {
			known.Apply(&fs[i])
		}
	}
}

// collapseRules makes one finding per secret, as the disk scanner does:
// when several rules match the same fingerprint (an npm token is both an
// "npm-access-token" and an "npmrc-auth-token"), the most severe rule
// (then the first by name) names the finding and the others are listed in
// metadata "also_matched". Locations are concatenated, up to
// maxLocations; the rest are counted in locations_truncated.
func collapseRules(fs []report.Finding, maxLocations int) []report.Finding {
	groups := map[string][]int{}
	var order []string
	for i, f := range fs {
		if _, ok := groups[f.Fingerprint]; !ok {
			order = append(order, f.Fingerprint)
		}
		groups[f.Fingerprint] = append(groups[f.Fingerprint], i)
	}
	out := make([]report.Finding, 0, len(order))
	for _, fpr := range order {
		idx := groups[fpr]
		best := idx[0]
		for _, i := range idx[1:] {
			a, b := fs[i], fs[best]
			if ra, rb := report.SeverityRank(a.Severity), report.SeverityRank(b.Severity); ra < rb || ra == rb && a.Rule < b.Rule {
				best = i
			}
		}
		f := fs[best]
		f.Metadata = maps.Clone(f.Metadata)
		f.Locations, f.LocationsTruncated = nil, 0
		others := map[string]bool{}
		for _, i := range idx {
			g := fs[i]
			f.Locations = append(f.Locations, g.Locations...)
			f.LocationsTruncated += g.LocationsTruncated
			if g.Rule != f.Rule {
				others[g.Rule] = true
			}
			for _, r := range strings.Split(g.Metadata["also_matched"], ",") {
				if r != "" && r != f.Rule {
					others[r] = true
				}
			}
			if f.KeyFingerprint == "" {
				f.KeyFingerprint = g.KeyFingerprint
			}
			for k, v := range g.Metadata {
				if _, ok := f.Metadata[k]; !ok {
					if f.Metadata == nil {
						f.Metadata = map[string]string{}
					}
					f.Metadata[k] = v
				}
			}
		}
		if len(others) > 0 {
			if f.Metadata == nil {
				f.Metadata = map[string]string{}
			}
			f.Metadata["also_matched"] = strings.Join(slices.Sorted(maps.Keys(others)), ",")
		}
		if n := len(f.Locations) - maxLocations; n > 0 {
			f.Locations = f.Locations[:maxLocations]
			f.LocationsTruncated += int64(n)
		}
		report.RecomputeExposure(&f)
		out = append(out, f)
	}
	return out
}

// layerViewID is "TARGET#layer:INDEX:SHORTDIGEST".
func layerViewID(target string, i int, digest string) string {
	_, hex, _ := strings.Cut(digest, ":")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return fmt.Sprintf("%s#layer:%d:%s", target, i, hex)
}

// diskTarget places a disk image target found in a layer under its image:
// "IMAGE!/disk/disk.qcow2". cached zeroes its scanned bytes (nothing was
// read in this run).
func diskTarget(image string, d report.Target, cached bool) report.Target {
	d.Path = image + "!" + d.Path
	d.Views = append([]report.View(nil), d.Views...)
	for i := range d.Views {
		d.Views[i].ID = image + "!" + d.Views[i].ID
		if cached {
			d.Views[i].ScannedBytes = 0
		}
	}
	d.Partitions = append([]report.Partition(nil), d.Partitions...)
	for i := range d.Partitions {
		d.Partitions[i].View = image + "!" + d.Partitions[i].View
	}
	d.Errors = append([]string{}, d.Errors...)
	return d
}
