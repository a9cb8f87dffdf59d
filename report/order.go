package report

import (
	"cmp"
	"slices"
)

// Severities, most severe first. The detectors emit the first four; the
// scanner gives SeverityInfo to a finding it proved public (shipped
// unmodified by a package installed in the image): --fail-on never counts
// it.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
	SeverityInfo     = "info"
)

// SeverityRank orders severities for display and for --fail-on: critical is
// 0, low is 3, info 4, and anything unknown sorts after info (5).
func SeverityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 0
	case SeverityHigh:
		return 1
	case SeverityMedium:
		return 2
	case SeverityLow:
		return 3
	case SeverityInfo:
		return 4
	}
	return 5
}

// severityNames lists the known severities in rank order.
func severityNames() []string {
	return []string{SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow, SeverityInfo}
}

// LowerSeverity returns the severity steps levels below s, never below
// low: lowering by context never makes a finding info, only proof that it
// is public does. Unknown severities are returned unchanged.
func LowerSeverity(s string, steps int) string {
	r := SeverityRank(s)
	if r > SeverityRank(SeverityLow) || steps < 0 {
		return s
	}
	return severityNames()[min(r+steps, SeverityRank(SeverityLow))]
}

// exposureNames lists the known exposure classes in display order.
func exposureNames() []string { return slices.Clone(exposureOrder) }

// FindingExposure returns the finding's exposure set; when the producer left
// Exposure empty it is derived from the locations, so that writers never
// show a finding without a class. The result is sorted by ExposureRank.
func FindingExposure(f *Finding) []string {
	var out []string
	if len(f.Exposure) > 0 {
		out = slices.Clone(f.Exposure)
	} else {
		for _, l := range f.Locations {
			if l.Exposure != "" && !slices.Contains(out, l.Exposure) {
				out = append(out, l.Exposure)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(ExposureRank(a), ExposureRank(b)), cmp.Compare(a, b))
	})
	return out
}

// IsOutsideGuestControl reports whether any of the finding's exposures is
// not live (or the producer already said so).
func IsOutsideGuestControl(f *Finding) bool {
	if f.OutsideGuestControl {
		return true
	}
	for _, e := range FindingExposure(f) {
		if e != ExposureLive {
			return true
		}
	}
	return false
}

// bestExposureRank is the rank of the finding's most surprising exposure.
func bestExposureRank(f *Finding) int {
	best := ExposureRank("")
	for _, e := range FindingExposure(f) {
		best = min(best, ExposureRank(e))
	}
	return best
}

// SortedFindings returns the findings in display order without modifying
// r: outside the guest's control first, then by severity (critical first),
// then by most surprising exposure, then by rule and fingerprint so that the
// order is stable across runs.
func SortedFindings(r *Report) []*Finding {
	out := make([]*Finding, len(r.Findings))
	for i := range r.Findings {
		out[i] = &r.Findings[i]
	}
	slices.SortStableFunc(out, func(a, b *Finding) int {
		return cmp.Or(
			cmp.Compare(boolRank(!IsOutsideGuestControl(a)), boolRank(!IsOutsideGuestControl(b))),
			cmp.Compare(SeverityRank(a.Severity), SeverityRank(b.Severity)),
			cmp.Compare(bestExposureRank(a), bestExposureRank(b)),
			cmp.Compare(a.Rule, b.Rule),
			cmp.Compare(a.Fingerprint, b.Fingerprint),
		)
	})
	return out
}

// sortedLocations returns a finding's locations, most surprising exposure
// first, then by target, view and offset; f is not modified.
func sortedLocations(f *Finding) []Location {
	out := slices.Clone(f.Locations)
	slices.SortStableFunc(out, func(a, b Location) int {
		return cmp.Or(
			cmp.Compare(ExposureRank(a.Exposure), ExposureRank(b.Exposure)),
			cmp.Compare(a.Target, b.Target),
			cmp.Compare(a.View, b.View),
			cmp.Compare(a.Offset, b.Offset),
		)
	})
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
