package report

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Merge combines reports into one: targets (the same path, digest and
// format once) and timelines are concatenated,
// shared identities with the same fingerprint and kind are united, findings with
// the same rule and fingerprint become one finding whose locations are the
// union of theirs (exact duplicates dropped), exposures and
// outside_guest_control are recomputed from the locations, and the summary
// is recounted. The result is complete only when every input is; its
// command, tool and fail_on are the first input's (callers may override
// them); started/finished span all inputs. Skipped files are concatenated
// and incomplete_reasons recomputed (CheckComplete). A finding is new only when every
// input that compared it against a baseline or state says so. Inputs are
// not modified; nil inputs are skipped.
func Merge(reports ...*Report) *Report {
	out := &Report{SchemaVersion: SchemaVersion, Complete: true, Targets: []Target{}, Findings: []Finding{}}
	type key struct{ rule, fp string }
	index := map[key]int{}
	seen := map[locKey]bool{} // (finding, location) pairs already merged
	var reasons []string
	var runLevel []Incomplete // reasons that concern a run, not a target
	first := true
	for _, r := range reports {
		if r == nil {
			continue
		}
		if first {
			out.Tool, out.Command, out.FailOn, out.Started, out.Finished = r.Tool, r.Command, r.FailOn, r.Started, r.Finished
			first = false
		}
		out.SchemaVersion = max(out.SchemaVersion, r.SchemaVersion)
		if out.FailOn == "" {
			out.FailOn = r.FailOn
		}
		if !r.Started.IsZero() && (out.Started.IsZero() || r.Started.Before(out.Started)) {
			out.Started = r.Started
		}
		if r.Finished.After(out.Finished) {
			out.Finished = r.Finished
		}
		if !r.Complete {
			out.Complete = false
			if r.IncompleteReason != "" && !slices.Contains(reasons, r.IncompleteReason) {
				reasons = append(reasons, r.IncompleteReason)
			}
			if len(r.IncompleteReasons) == 0 && r.IncompleteReason != "" {
				// A report from before incomplete_reasons: keep its reason.
				runLevel = append(runLevel, Incomplete{Reason: r.IncompleteReason})
			}
		}
		for _, x := range r.IncompleteReasons {
			if x.Target == "" {
				runLevel = append(runLevel, x)
			}
		}
		out.Skipped = append(out.Skipped, r.Skipped...)
		out.Inputs = append(out.Inputs, r.Inputs...)
		out.Summary.SuppressedByBaseline += r.Summary.SuppressedByBaseline
		out.Summary.Ignored += r.Summary.Ignored
		out.Summary.HiddenBySeverity += r.Summary.HiddenBySeverity
		for f, n := range r.Summary.ScannedBytesByFile {
			if out.Summary.ScannedBytesByFile == nil {
				out.Summary.ScannedBytesByFile = map[string]int64{}
			}
			out.Summary.ScannedBytesByFile[f] += n
		}
		for _, t := range cloneTargets(r.Targets) {
			// The same target (path, digest and format) from two inputs, e.g.
			// a report merged with itself, is listed once.
			if slices.ContainsFunc(out.Targets, func(x Target) bool {
				return x.Path == t.Path && x.Digest == t.Digest && x.Format == t.Format
			}) {
				continue
			}
			out.Targets = append(out.Targets, t)
		}
		for _, tl := range r.Timelines {
			tl.Targets = slices.Clone(tl.Targets)
			tl.Points = slices.Clone(tl.Points)
			tl.Secrets = slices.Clone(tl.Secrets)
			out.Timelines = append(out.Timelines, tl)
		}
		for _, si := range r.SharedIdentity {
			j := slices.IndexFunc(out.SharedIdentity, func(x SharedIdentity) bool { return x.Fingerprint == si.Fingerprint && x.Kind == si.Kind })
			if j < 0 {
				si.VMs, si.Paths = slices.Clone(si.VMs), slices.Clone(si.Paths)
				out.SharedIdentity = append(out.SharedIdentity, si)
				continue
			}
			d := &out.SharedIdentity[j]
			d.VMs = unionStrings(d.VMs, si.VMs)
			d.Paths = unionStrings(d.Paths, si.Paths)
		}
		for _, f := range r.Findings {
			k := key{f.Rule, f.Fingerprint}
			i, ok := index[k]
			if !ok {
				nf := f
				nf.Locations = nil
				nf.Remediation = nil // follows the merged locations
				nf.Metadata = maps.Clone(f.Metadata)
				nf.New = cloneBool(f.New)
				nf.Reasons = slices.Clone(f.Reasons)
				nf.Provenance = slices.Clone(f.Provenance)
				index[k] = len(out.Findings)
				out.Findings = append(out.Findings, nf)
				i = len(out.Findings) - 1
			} else {
				mergeFinding(&out.Findings[i], &f)
			}
			dst := &out.Findings[i]
			for _, l := range f.Locations {
				lk := newLocKey(i, l)
				if !seen[lk] {
					seen[lk] = true
					dst.Locations = append(dst.Locations, cloneLocation(l))
				}
			}
		}
	}
	out.IncompleteReason = strings.Join(reasons, "; ")
	out.IncompleteReasons = runLevel
	for i := range out.Findings {
		RecomputeExposure(&out.Findings[i])
	}
	Summarize(out)
	CheckComplete(out)
	return out
}

// mergeFinding folds src's fields into dst (same rule and fingerprint).
func mergeFinding(dst, src *Finding) {
	if dst.KeyFingerprint == "" {
		dst.KeyFingerprint = src.KeyFingerprint
	}
	switch {
	case src.Severity == dst.Severity:
		dst.Reasons = appendReasons(dst.Reasons, src.Reasons, "")
	case SeverityRank(src.Severity) < SeverityRank(dst.Severity):
		// The more severe input wins; the other's downgrades no longer
		// describe the finding's severity, but still say what it found.
		dst.Reasons = appendReasons(slices.Clone(src.Reasons), dst.Reasons, dst.Severity)
		dst.Severity = src.Severity
	default:
		dst.Reasons = appendReasons(dst.Reasons, src.Reasons, src.Severity)
	}
	for _, p := range src.Provenance {
		if !slices.Contains(dst.Provenance, p) {
			dst.Provenance = append(dst.Provenance, p)
		}
	}
	for k, v := range src.Metadata {
		if _, ok := dst.Metadata[k]; !ok {
			if dst.Metadata == nil {
				dst.Metadata = map[string]string{}
			}
			dst.Metadata[k] = v
		}
	}
	switch {
	case src.New == nil:
	case dst.New == nil:
		dst.New = cloneBool(src.New)
	default:
		v := *dst.New && *src.New
		dst.New = &v
	}
}

// appendReasons adds the reasons of more that dst lacks. When more came
// from an input that rated the finding otherwise (at severity other), its
// reasons lose their from/to and say so.
func appendReasons(dst, more []Reason, other string) []Reason {
	for _, r := range more {
		if other != "" {
			r = Reason{Code: r.Code, Text: "another report rated it " + other + ": " + r.Text}
		}
		if !slices.Contains(dst, r) {
			dst = append(dst, r)
		}
	}
	return dst
}

// RecomputeExposure sets f.Exposure to the set of its locations' classes
// (most surprising first) and OutsideGuestControl accordingly. A finding
// without located exposures keeps what it had.
func RecomputeExposure(f *Finding) {
	var set []string
	for _, l := range f.Locations {
		if l.Exposure != "" && !slices.Contains(set, l.Exposure) {
			set = append(set, l.Exposure)
		}
	}
	if len(set) == 0 {
		set = f.Exposure
	}
	g := Finding{Exposure: set}
	f.Exposure = FindingExposure(&g)
	f.OutsideGuestControl = false
	for _, e := range f.Exposure {
		if e != ExposureLive {
			f.OutsideGuestControl = true
		}
	}
}

// Summarize recomputes r.Summary from its targets and findings, keeping
// SuppressedByBaseline. A target counts as failed when it has errors and no
// format (nothing of it could be read).
func Summarize(r *Report) {
	s := Summary{BySeverity: map[string]int{}, ByExposure: map[string]int{}, SuppressedByBaseline: r.Summary.SuppressedByBaseline,
		ScannedBytesByFile: r.Summary.ScannedBytesByFile, Ignored: r.Summary.Ignored, HiddenBySeverity: r.Summary.HiddenBySeverity}
	s.Targets = len(r.Targets)
	tr := &Truncation{Views: []string{}}
	if r.Summary.Truncated != nil {
		tr.Limits = r.Summary.Truncated.Limits
	}
	for _, t := range r.Targets {
		if t.Format == "" && len(t.Errors) > 0 {
			s.TargetsFailed++
		}
		for _, v := range t.Views {
			s.AllocatedBytes += v.AllocatedBytes
			s.ScannedBytes += v.ScannedBytes
			if v.Truncated != nil {
				tr.Views = append(tr.Views, v.ID)
				for _, n := range v.Truncated.MatchesDropped {
					tr.MatchesDropped += n
				}
				for _, n := range v.Truncated.HitsNotValidated {
					tr.HitsNotValidated += n
				}
			}
		}
	}
	s.Findings = len(r.Findings)
	for _, f := range r.Findings {
		tr.LocationsDropped += f.LocationsTruncated
		s.BySeverity[f.Severity]++
		for _, e := range FindingExposure(&f) {
			s.ByExposure[e]++
		}
		if IsOutsideGuestControl(&f) {
			s.OutsideGuestControl++
		}
		switch {
		case f.Category == CategoryRollbackRisk:
			s.RollbackRisks++
		case f.Category == CategoryClonedIdentity:
			s.ClonedIdentities++
		case f.Severity == SeverityInfo:
			s.KnownPublic++
		default:
			s.Secrets++
			if IsOutsideGuestControl(&f) {
				s.SecretsOutsideGuestControl++
			}
		}
	}
	if len(tr.Views) > 0 || tr.LocationsDropped > 0 {
		s.Truncated = tr
	}
	r.Summary = s
}

// locKey identifies a location of one merged finding by value (pointers
// dereferenced), so that exact duplicates are merged in O(1).
type locKey struct {
	finding int
	loc     locFields
	// decoded is the chain and the decoded offset, written out.
	decoded string
	// links are the file's other names, written out.
	links string
}

// locFields are a Location's comparable fields, pointers dereferenced
// (TestLocFieldsCoverLocation keeps the list whole).
type locFields struct {
	Target, View, ViewKind                           string
	Offset, Length                                   int64
	File, Partition, Path, State, Exposure, Encoding string
	LayerDigest                                      string
	LinksOmitted                                     int
	fileOffset, layerIndex                           int64
	hasFileOffset, hasLayer                          bool
}

func newLocKey(finding int, l Location) locKey {
	k := locKey{finding: finding, loc: locFields{
		Target: l.Target, View: l.View, ViewKind: l.ViewKind, Offset: l.Offset, Length: l.Length,
		File: l.File, Partition: l.Partition, Path: l.Path, State: l.State, Exposure: l.Exposure,
		Encoding: l.Encoding, LayerDigest: l.LayerDigest, LinksOmitted: l.LinksOmitted,
	}, links: strings.Join(l.Links, "\x00")}
	if l.FileOffset != nil {
		k.loc.fileOffset, k.loc.hasFileOffset = *l.FileOffset, true
	}
	if l.LayerIndex != nil {
		k.loc.layerIndex, k.loc.hasLayer = int64(*l.LayerIndex), true
	}
	if len(l.Decoded) > 0 || l.DecodedOffset != nil {
		k.decoded = fmt.Sprint(l.Decoded)
		if l.DecodedOffset != nil {
			k.decoded += "@" + strconv.FormatInt(*l.DecodedOffset, 10)
		}
	}
	return k
}

func cloneLocation(l Location) Location {
	if l.FileOffset != nil {
		v := *l.FileOffset
		l.FileOffset = &v
	}
	if l.LayerIndex != nil {
		v := *l.LayerIndex
		l.LayerIndex = &v
	}
	if l.DecodedOffset != nil {
		v := *l.DecodedOffset
		l.DecodedOffset = &v
	}
	l.Decoded = slices.Clone(l.Decoded)
	return l
}

func cloneTargets(ts []Target) []Target {
	out := slices.Clone(ts)
	for i := range out {
		t := &out[i]
		t.Views = slices.Clone(t.Views)
		for j := range t.Views {
			if c := t.Views[j].Created; c != nil {
				v := *c
				t.Views[j].Created = &v
			}
			t.Views[j].Notes = slices.Clone(t.Views[j].Notes)
			t.Views[j].Attrs = maps.Clone(t.Views[j].Attrs)
		}
		t.Errors = slices.Clone(t.Errors)
		t.Backing = slices.Clone(t.Backing)
		t.Partitions = slices.Clone(t.Partitions)
		t.Unattributed = slices.Clone(t.Unattributed)
		if t.Store != nil {
			st := *t.Store
			t.Store = &st
		}
	}
	return out
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

// unionStrings appends the elements of b missing from a.
func unionStrings(a, b []string) []string {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(a, x)
		}
	}
	return a
}
