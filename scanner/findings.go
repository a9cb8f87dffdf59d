package scanner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
)

// physIndex finds, for a physical position, every view that maps it.
type physIndex map[physKey][]indexEntry

type indexEntry struct {
	start, end int64 // physical range of the extent
	v          *viewState
	ext        int // index into v.ext
}

func buildIndex(views []*viewState) physIndex {
	idx := physIndex{}
	for _, v := range views {
		if !v.dedupe {
			continue
		}
		for i, e := range v.ext {
			p, ok := identity(e, v.files[i], v.view.ID, 0)
			if !ok {
				continue
			}
			idx[p.key] = append(idx[p.key], indexEntry{p.off, p.off + e.Length, v, i})
		}
	}
	for _, es := range idx {
		sort.Slice(es, func(i, j int) bool { return es[i].start < es[j].start })
	}
	return idx
}

// where lists the (view, guest offset) pairs whose bytes at [g, g+n) are
// physically the same as those of v at [g, g+n): at most limit of them,
// v's own place first, and how many more there are. A record that repeats
// (aliased tables) stands for all its repetitions without listing them:
// every repetition but the last reads the same bytes followed by the same
// bytes, so one check covers them, and the count of a 1 TiB view of one
// cluster costs no more than that of one cluster.
func (idx physIndex) where(v *viewState, g, n int64, limit int) ([]guestPos, int64) {
	pl := &places{self: guestPos{v, g}, limit: limit}
	if limit > 0 {
		pl.out = append(pl.out, pl.self)
	} else {
		pl.more++
	}
	ps := v.pieces(g, n)
	if !v.dedupe || len(ps) == 0 || ps[0].at.key == zeroKey {
		// Only v's own repetitions can share the bytes.
		i := sort.Search(len(v.ext), func(i int) bool { return v.runEnd(i) > g })
		if i < len(v.ext) && v.rep(i) > 1 && v.ext[i].Offset <= g {
			pl.repeats(v, i, g, n, ps)
		}
		return pl.out, pl.more
	}
	first := ps[0].at
	for _, e := range idx[first.key] {
		if e.start > first.off {
			break
		}
		if first.off >= e.end {
			continue
		}
		if e.v.rep(e.ext) > 1 {
			pl.repeats(e.v, e.ext, e.v.ext[e.ext].Offset+(first.off-e.start), n, ps)
			continue
		}
		g2 := e.v.ext[e.ext].Offset + (first.off - e.start)
		if samePieces(ps, e.v.pieces(g2, n)) {
			pl.add(guestPos{e.v, g2})
		}
	}
	return pl.out, pl.more
}

// places gathers where's answer: the first limit places, then a count.
type places struct {
	self  guestPos
	limit int
	out   []guestPos
	more  int64
}

// add records place p: listed while there is room, else counted. The
// view's own place is listed first, by where, and not again.
func (pl *places) add(p guestPos) {
	switch {
	case p == pl.self:
	case len(pl.out) < pl.limit:
		pl.out = append(pl.out, p)
	default:
		pl.more++
	}
}

// repeats records the places of record i of view w whose bytes at
// [g2, g2+n) are those described by ps, g2 being a place in any of the
// record's repetitions.
func (pl *places) repeats(w *viewState, i int, g2, n int64, ps []piece) {
	e := w.ext[i]
	k := w.rep(i)
	in := (g2 - e.Offset) % e.Length
	at := func(j int64) guestPos { return guestPos{w, e.Offset + j*e.Length + in} }
	check := func(j int64) bool { return samePieces(ps, w.pieces(at(j).g, n)) }
	// Repetitions 0..k-2 are followed by another repetition, so they all
	// match or none does; the last one is followed by what follows the
	// record.
	if k > 1 && check(0) {
		j := int64(0)
		for ; j < k-1 && len(pl.out) < pl.limit; j++ {
			if p := at(j); p != pl.self {
				pl.out = append(pl.out, p)
			}
		}
		rest := k - 1 - j
		if pl.self.v == w && pl.self.g >= at(j).g && pl.self.g < at(k-1).g && (pl.self.g-e.Offset)%e.Length == in {
			rest-- // the view's own place, listed first, is among them
		}
		pl.more += max(rest, 0)
	}
	if check(k - 1) {
		pl.add(at(k - 1))
	}
}

type guestPos struct {
	v *viewState
	g int64
}

// locKey deduplicates locations of one finding.
type locKey struct {
	v *viewState
	g int64
	// dec tells apart the decoded locations of one container: their
	// chain and decoded offset ("" for raw bytes).
	dec string
}

// findingAcc is one finding while the scan runs. It is kept lean, since
// a dense input makes a hundred thousand of them: the rules that matched
// in a slice, the locations as small records (the report's Location,
// five times their size, is made when the findings are placed), indexed
// by a map only once there are more than a few.
type findingAcc struct {
	f     report.Finding
	sev   detectors.Severity
	rules []string
	// locs lists the locations in the order they were found; at most
	// the collector's locations-per-finding limit.
	locs []leanLoc
	// index finds a location in locs by its key, once locs holds more
	// than leanScan of them.
	index map[locKey]int
	// allowIf holds, for a location that only matches with allowlist
	// paths produced, those matches: the location is dropped when every
	// one of them allowlists its guest path.
	allowIf map[locKey][]detectors.Match
}

// leanLoc is a location while the scan runs: where it is (view, guest
// offset, decoded chain), how long, and in which encoding.
type leanLoc struct {
	k        locKey
	length   int64
	encoding string
	// decoded is the container's chain (shared by its matches) and
	// decodedOff the match's offset in the decoded bytes.
	decoded    []report.DecodedStep
	decodedOff int64
}

// leanScan is how many locations a finding searches one by one before it
// indexes them: most findings have one.
const leanScan = 8

// has reports whether location k is listed.
func (fa *findingAcc) has(k locKey) bool {
	if fa.index != nil {
		_, ok := fa.index[k]
		return ok
	}
	for i := range fa.locs {
		if fa.locs[i].k == k {
			return true
		}
	}
	return false
}

// collector turns the detectors' matches into findings as they arrive,
// within the scan's limits (Limiter): what it cuts it counts. Its memory
// is bounded by the limits, not by the number of matches: 64 MiB of one
// repeated secret (three million matches) was held as a slice of matches,
// 2.8 GB.
type collector struct {
	idx   physIndex
	views []*viewState
	lim   *Limiter
	acc   map[string]*findingAcc
	order []string
}

func newCollector(views []*viewState, lim *Limiter) *collector {
	return &collector{idx: buildIndex(views), views: views, lim: lim, acc: map[string]*findingAcc{}}
}

// add records one match of view v.
func (c *collector) add(v *viewState, m detectors.Match) {
	fa := c.accFor(v, m)
	if fa == nil {
		return
	}
	if fa.has(locKey{v: v, g: v.firstRepetition(m.Start, m.End-m.Start)}) {
		// Already listed, so already expanded to every place sharing
		// its bytes: the first and last repetitions of an aliased
		// record are both scanned, and both would count the others.
		return
	}
	room := c.lim.Limits().LocationsPerFinding - len(fa.locs)
	ps, more := c.idx.where(v, m.Start, m.End-m.Start, max(room, 0))
	fa.f.LocationsTruncated += more
	for _, gp := range ps {
		fa.addLocation(c, leanLoc{k: locKey{v: gp.v, g: gp.g}, length: m.End - m.Start, encoding: m.Encoding}, m)
	}
}

// rawOffsets lists, by view, the guest offsets of the locations the raw
// scan kept (not decoded ones), sorted.
func (c *collector) rawOffsets() map[*viewState][]int64 {
	out := map[*viewState][]int64{}
	for _, fa := range c.acc {
		for _, l := range fa.locs {
			if l.k.dec == "" {
				out[l.k.v] = append(out[l.k.v], l.k.g)
			}
		}
	}
	for _, offs := range out {
		slices.Sort(offs)
	}
	return out
}

// addDecoded records a match in the decoded bytes of a container that
// starts at each of places (the first one is where it was decoded): one
// location per place, with the container's offset and the decoding chain
// (chainKey writes chain out).
func (c *collector) addDecoded(places []guestPos, chain []report.DecodedStep, chainKey string, m detectors.Match) {
	if len(places) == 0 {
		return
	}
	fa := c.accFor(places[0].v, m)
	if fa == nil {
		return
	}
	off := m.Start
	dec := chainKey + "@" + strconv.FormatInt(off, 10)
	for _, gp := range places {
		fa.addLocation(c, leanLoc{k: locKey{v: gp.v, g: gp.g, dec: dec}, length: m.End - m.Start, encoding: m.Encoding,
			decoded: chain, decodedOff: off}, m)
	}
}

// accFor returns the finding that match m (seen in view v) belongs to,
// making it if it is new; nil when the findings cap drops it.
func (c *collector) accFor(v *viewState, m detectors.Match) *findingAcc {
	// One secret is one finding, whichever rules matched it: the most
	// severe rule names it and the others are listed in its metadata.
	key := m.Fingerprint
	fa := c.acc[key]
	if fa == nil {
		if !c.lim.Admit(v, m.RuleID, m.Severity) {
			v.cuts.Drop(m.RuleID)
			return nil
		}
		fa = &findingAcc{
			f: report.Finding{
				Rule: m.RuleID, Description: m.Description, Category: m.Category,
				Severity: m.Severity.String(), Fingerprint: m.Fingerprint,
				KeyFingerprint: m.KeyFingerprint, Preview: m.Preview, Metadata: maps.Clone(m.Meta),
			},
			sev:   m.Severity,
			rules: []string{m.RuleID},
		}
		c.acc[key] = fa
		c.order = append(c.order, key)
	} else if !slices.Contains(fa.rules, m.RuleID) {
		fa.rules = append(fa.rules, m.RuleID)
		fa.mergeRule(m)
	}
	return fa
}

// addLocation lists location l unless it is listed already or the limits
// leave no room for it, which counts it instead.
func (fa *findingAcc) addLocation(c *collector, l leanLoc, m detectors.Match) {
	fa.noteAllowlist(l.k, m)
	if fa.has(l.k) {
		return
	}
	if !c.lim.KeepLocation(&fa.f, len(fa.locs)) {
		return
	}
	fa.locs = append(fa.locs, l)
	switch {
	case fa.index != nil:
		fa.index[l.k] = len(fa.locs) - 1
	case len(fa.locs) > leanScan:
		fa.index = make(map[locKey]int, 2*len(fa.locs))
		for i := range fa.locs {
			fa.index[fa.locs[i].k] = i
		}
	}
}

// findings places every kept finding's locations and returns the findings
// in the report's order.
func (s *Scanner) findings(ctx context.Context, c *collector) []report.Finding {
	var out []report.Finding
	dropped := map[*viewState]map[string]int{} // view -> why -> locations
	for _, key := range c.order {
		fa := c.acc[key]
		s.placeLocations(ctx, fa, dropped)
		if len(fa.f.Locations) == 0 {
			continue // every location allowlisted by path, or in an excluded range
		}
		out = append(out, fa.f)
	}
	for _, v := range c.views {
		for _, why := range slices.Sorted(maps.Keys(dropped[v])) {
			v.notes = append(v.notes, fmt.Sprintf("%d findings dropped: in a %s", dropped[v][why], why))
		}
	}
	markRandomGeneratorStates(out)
	sortFindings(out)
	return out
}

// drbgCopyDistance is how far apart OpenSSL 3's CTR-DRBG keeps the two
// copies of its AES-256 key schedule (its ECB and CTR cipher contexts,
// allocated one after the other: x86-64, glibc's malloc). Every
// process that draws random bytes through OpenSSL holds such pairs: 14
// of the 15 AES-256 keys in make precision's booted server's RAM, and
// each of a gcore'd Python process's that called ssl.RAND_bytes.
const drbgCopyDistance = 464

// markRandomGeneratorStates labels AES-256 key schedules found twice in
// one view exactly drbgCopyDistance bytes apart as likely a random
// generator's state (metadata likely=openssl-ctr-drbg). The severity
// stays: a restored or cloned copy of the memory replays that process's
// random output until it reseeds. A pair split by a page boundary in
// guest-physical memory is not recognised, and two contexts of one data
// key allocated alike would be labelled too: it is a hint for the
// reader, never a downgrade.
func markRandomGeneratorStates(fs []report.Finding) {
	for i := range fs {
		f := &fs[i]
		if f.Rule != "aes-key-schedule" || f.Metadata["bits"] != "256" || !pairedAt(f.Locations, drbgCopyDistance) {
			continue
		}
		f.Metadata = maps.Clone(f.Metadata) // the matcher's map may be shared
		f.Metadata[report.MetadataLikely] = report.LikelyDRBG
	}
}

// pairedAt reports whether two locations in one view are d bytes apart.
func pairedAt(ls []report.Location, d int64) bool {
	type at struct {
		view string
		off  int64
	}
	seen := make(map[at]bool, len(ls))
	for _, l := range ls {
		seen[at{l.View, l.Offset}] = true
	}
	for _, l := range ls {
		if seen[at{l.View, l.Offset + d}] {
			return true
		}
	}
	return false
}

// sortFindings orders findings by severity, outside the guest's control
// first, then by rule and fingerprint.
func sortFindings(out []report.Finding) {
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if sa, sb := report.SeverityRank(a.Severity), report.SeverityRank(b.Severity); sa != sb {
			return sa < sb
		}
		if a.OutsideGuestControl != b.OutsideGuestControl {
			return a.OutsideGuestControl
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		// Workers report in no fixed order: without this, two scans of
		// one image wrote their findings in different orders.
		return a.Fingerprint < b.Fingerprint
	})
}

// noteAllowlist records whether match m, seen at location k, may be
// allowlisted there by path: k stays unless every match seen at it is.
func (fa *findingAcc) noteAllowlist(k locKey, m detectors.Match) {
	seen := fa.has(k)
	ms, conditional := fa.allowIf[k]
	switch {
	case seen && !conditional:
		// Already kept unconditionally.
	case !m.HasAllowedPaths():
		delete(fa.allowIf, k)
	case !seen || conditional:
		if fa.allowIf == nil {
			fa.allowIf = map[locKey][]detectors.Match{}
		}
		fa.allowIf[k] = append(ms, m)
	}
}

// allowlisted reports whether the allowlists of every match seen at k
// cover location l's guest path, and every other name of its file.
func (fa *findingAcc) allowlisted(k locKey, l report.Location) bool {
	ms, ok := fa.allowIf[k]
	if !ok || l.LinksOmitted > 0 {
		return false
	}
	for _, m := range ms {
		// Every name of the file must be allowed: a key hard-linked
		// into an allowlisted directory is still where else it is.
		names := l.Names()
		if len(names) == 0 {
			names = []string{""}
		}
		for _, p := range names {
			if !m.AllowedAt(p) {
				return false
			}
		}
	}
	return true
}

// mergeRule folds another rule's match of the same secret into the finding.
func (fa *findingAcc) mergeRule(m detectors.Match) {
	f := &fa.f
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	for k, v := range m.Meta {
		if _, ok := f.Metadata[k]; !ok {
			f.Metadata[k] = v
		}
	}
	if f.KeyFingerprint == "" {
		f.KeyFingerprint = m.KeyFingerprint
	}
	other := m.RuleID
	if m.Severity > fa.sev {
		other = f.Rule
		f.Rule, f.Description, f.Category, f.Severity, f.Preview = m.RuleID, m.Description, m.Category, m.Severity.String(), m.Preview
		fa.sev = m.Severity
	}
	if f.Metadata["also_matched"] != "" {
		other = f.Metadata["also_matched"] + "," + other
	}
	f.Metadata["also_matched"] = other
}

// placeLocations fills in host offsets, filesystem attribution and the
// exposure class of each location, then the finding's exposure set. Every
// location takes its state (allocated or free) from its own view's
// filesystem and its class from its own view: a snapshot's or backing
// file's copy keeps its class even where the current state holds the same
// bytes, because no write of the guest ever reaches it. Locations in
// ranges guestfs excludes (LUKS key material) are dropped and counted in
// dropped.
func (s *Scanner) placeLocations(ctx context.Context, fa *findingAcc, dropped map[*viewState]map[string]int) {
	fa.f.Locations = make([]report.Location, 0, len(fa.locs))
	for i := range fa.locs {
		ll := &fa.locs[i]
		k, v := ll.k, ll.k.v
		l := report.Location{
			Target: v.t.path, View: v.view.ID, ViewKind: string(v.view.Kind),
			Offset: k.g, Length: ll.length, Encoding: ll.encoding,
		}
		if ll.decoded != nil {
			off := ll.decodedOff
			l.Decoded, l.DecodedOffset = ll.decoded, &off
		}
		if ps := v.pieces(k.g, 1); len(ps) == 1 && ps[0].at.key.src == model.SourceData && ps[0].at.key.file != "" && ps[0].at.key != zeroKey && v.dedupe {
			off := ps[0].at.off
			l.FileOffset = &off
			l.File = ps[0].at.key.file
		}
		l.State = report.StateUnknown
		if isDiskKind(v.view.Kind) && !v.t.plainData() {
			if fi := v.filesystem(ctx); fi != nil {
				at := fi.locate(k.g)
				l.Partition, l.Path, l.State = at.Partition, at.Path, at.State
				l.Links, l.LinksOmitted = at.Links, at.LinksOmitted
				if at.Excluded != "" {
					if dropped[v] == nil {
						dropped[v] = map[string]int{}
					}
					dropped[v][at.Excluded]++
					continue
				}
			}
		}
		l.Exposure = v.exposureOf(l)
		if !fa.allowlisted(k, l) {
			fa.f.Locations = append(fa.f.Locations, l)
		}
	}
	fa.locs, fa.index = nil, nil // placed: the report's locations hold them now
	report.RecomputeExposure(&fa.f)
	sort.SliceStable(fa.f.Locations, func(i, j int) bool {
		a, b := fa.f.Locations[i], fa.f.Locations[j]
		if ra, rb := report.ExposureRank(a.Exposure), report.ExposureRank(b.Exposure); ra != rb {
			return ra < rb
		}
		if a.View != b.View {
			return a.View < b.View
		}
		return a.Offset < b.Offset
	})
}

// exposureOf is the class of location l of view v: the view's, for l's
// state (exposure), but a copy in an LVM2 thin snapshot volume on a
// current view's disk (a Proxmox snapshot of a VM on local-lvm) is a
// snapshot's, whatever its state there.
func (v *viewState) exposureOf(l report.Location) string {
	if v.view.Kind == model.KindCurrent && l.Partition != "" && v.fs != nil && v.fs.m != nil && v.fs.m.SnapshotOf(l.Partition) != "" {
		return report.ExposureSnapshot
	}
	return v.exposure(l.State)
}

// exposure is the class of a copy of a secret in view v whose state in v
// is state (docs/report.md, Exposure classes).
func (v *viewState) exposure(state string) string {
	switch v.view.Kind {
	case model.KindCurrent:
		if state == report.StateFree || state == report.StateDeletedRecord {
			return report.ExposureDeleted
		}
		return report.ExposureLive
	case model.KindSnapshot:
		return report.ExposureSnapshot
	case model.KindBacking:
		if v.holdsSnapshot() {
			return report.ExposureSnapshot
		}
		return report.ExposureBacking
	case model.KindUnreferenced:
		return report.ExposureUnreferenced
	case model.KindMemory:
		return report.ExposureMemory
	case model.KindLayer:
		return report.ExposureLayer
	}
	return string(v.view.Kind)
}

// holdsSnapshot reports whether a backing view is a parent disk that holds
// a snapshot's state (VMware delta chains, libvirt external snapshots): it
// is a snapshot to the people who made it.
func (v *viewState) holdsSnapshot() bool {
	_, ok := v.t.snapshots[v.view.Name]
	return v.view.Kind == model.KindBacking && ok
}

func isDiskKind(k model.Kind) bool {
	return k == model.KindCurrent || k == model.KindSnapshot || k == model.KindBacking
}
