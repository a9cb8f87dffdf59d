package report

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	yes, no := true, false
	idx := 2
	a := &Report{
		SchemaVersion: 1, Command: "registry", Complete: true, FailOn: "high", Started: t0.Add(time.Minute), Finished: t0.Add(2 * time.Minute),
		Targets: []Target{{Path: "img-a", Format: "oci-image", Views: []View{{ID: "img-a#layer:0:x", ScannedBytes: 10, AllocatedBytes: 20}}}},
		Findings: []Finding{
			{Rule: "r1", Severity: "critical", Fingerprint: "sha256:1", New: &yes,
				Locations: []Location{{Target: "img-a", View: "img-a#layer:0:x", Exposure: ExposureLayer, LayerIndex: &idx}}},
			{Rule: "r2", Severity: "low", Fingerprint: "sha256:2", New: &yes,
				Locations: []Location{{Target: "img-a", View: "v", Exposure: ExposureLive}}},
		},
		Summary: Summary{SuppressedByBaseline: 1},
	}
	b := &Report{
		SchemaVersion: 1, Command: "registry", Complete: false, IncompleteReason: "interrupted", Started: t0, Finished: t0.Add(time.Hour),
		Targets: []Target{{Path: "img-b", Errors: []string{"boom"}}, {Path: "img-c", Format: "qcow2", Views: []View{{ScannedBytes: 5, AllocatedBytes: 7}}}},
		Findings: []Finding{
			{Rule: "r1", Severity: "critical", Fingerprint: "sha256:1", New: &no, KeyFingerprint: "SHA256:k",
				Locations: []Location{
					{Target: "img-a", View: "img-a#layer:0:x", Exposure: ExposureLayer, LayerIndex: &idx}, // duplicate of a's
					{Target: "img-c", View: "img-c#current", Exposure: ExposureLive}}},
			{Rule: "other-rule", Severity: "high", Fingerprint: "sha256:2",
				Locations: []Location{{Target: "img-c", View: "w", Exposure: ExposureDeleted}}},
		},
		Summary: Summary{SuppressedByBaseline: 2},
	}
	aCopy := *a
	m := Merge(a, nil, b)
	if a.Findings[0].New != &yes || len(a.Findings[0].Locations) != 1 || aCopy.Summary.SuppressedByBaseline != a.Summary.SuppressedByBaseline {
		t.Error("input modified")
	}
	if m.Complete || m.IncompleteReason != "interrupted; 1 of 3 targets could not be read completely" || !m.Started.Equal(t0) || !m.Finished.Equal(t0.Add(time.Hour)) || m.Command != "registry" || m.FailOn != "high" {
		t.Errorf("header: %+v", m)
	}
	if len(m.Targets) != 3 || len(m.Findings) != 3 {
		t.Fatalf("%d targets, %d findings; want 3, 3", len(m.Targets), len(m.Findings))
	}
	f := m.Findings[0]
	if f.Rule != "r1" || len(f.Locations) != 2 || *f.New || f.KeyFingerprint != "SHA256:k" {
		t.Errorf("merged r1: %+v", f)
	}
	if !slices.Equal(f.Exposure, []string{ExposureLayer, ExposureLive}) || !f.OutsideGuestControl {
		t.Errorf("exposure %v outside %v", f.Exposure, f.OutsideGuestControl)
	}
	if m.Findings[1].New == nil || !*m.Findings[1].New || m.Findings[2].New != nil {
		t.Errorf("new flags: %v %v", m.Findings[1].New, m.Findings[2].New)
	}
	s := m.Summary
	if s.Targets != 3 || s.TargetsFailed != 1 || s.Findings != 3 || s.BySeverity["critical"] != 1 || s.BySeverity["high"] != 1 ||
		s.ByExposure[ExposureLive] != 2 || s.ByExposure[ExposureLayer] != 1 || s.ByExposure[ExposureDeleted] != 1 ||
		s.OutsideGuestControl != 2 || s.SuppressedByBaseline != 3 || s.ScannedBytes != 15 || s.AllocatedBytes != 27 {
		t.Errorf("summary %+v", s)
	}
	if e := Merge(); e == nil || len(e.Targets) != 0 || e.Findings == nil || !e.Complete {
		t.Errorf("empty merge: %+v", e)
	}
}

// TestMergeKeepsTheMoreSevereRating: a finding public (info) in one shard
// and critical in another is critical once merged, and the info shard's
// downgrade is kept as an explanation without from/to.
func TestMergeKeepsTheMoreSevereRating(t *testing.T) {
	pub := Reason{Code: ReasonPackageFileUnmodified, Text: "shipped by libx", From: SeverityCritical, To: SeverityInfo}
	prov := Provenance{Manager: "dpkg", Package: "libx", Version: "1", Target: "a", Path: "/usr/lib/libx.so"}
	info := func() *Report {
		return &Report{SchemaVersion: SchemaVersion, Findings: []Finding{{Rule: "k", Fingerprint: "sha256:1", Severity: SeverityInfo,
			Reasons: []Reason{pub}, Provenance: []Provenance{prov}, Locations: []Location{{Target: "a", View: "a#current"}}}}}
	}
	crit := &Report{SchemaVersion: SchemaVersion, Findings: []Finding{{Rule: "k", Fingerprint: "sha256:1", Severity: SeverityCritical,
		Locations: []Location{{Target: "b", View: "b#current"}}}}}
	demoted := Reason{Code: ReasonPackageFileUnmodified, Text: "another report rated it info: shipped by libx"}
	cases := []struct {
		name     string
		in       []*Report
		severity string
		reasons  []Reason
	}{
		{"info then critical", []*Report{info(), crit}, SeverityCritical, []Reason{demoted}},
		{"critical then info", []*Report{crit, info()}, SeverityCritical, []Reason{demoted}},
		{"info twice", []*Report{info(), info()}, SeverityInfo, []Reason{pub}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Merge(c.in...)
			f := m.Findings[0]
			if f.Severity != c.severity || !slices.Equal(f.Reasons, c.reasons) || !slices.Equal(f.Provenance, []Provenance{prov}) {
				t.Errorf("severity %s, reasons %+v, provenance %+v", f.Severity, f.Reasons, f.Provenance)
			}
			if m.Summary.BySeverity[c.severity] != 1 {
				t.Errorf("by_severity %v", m.Summary.BySeverity)
			}
		})
	}
}

// TestLocFieldsCoverLocation: merging tells locations apart by every field
// of Location; a field added to Location must be added to locFields (or,
// for a slice or pointer, to newLocKey).
func TestLocFieldsCoverLocation(t *testing.T) {
	keyed := map[string]bool{"FileOffset": true, "LayerIndex": true, "Decoded": true, "DecodedOffset": true, "Links": true}
	lf := reflect.TypeOf(locFields{})
	for i := range reflect.TypeOf(Location{}).NumField() {
		name := reflect.TypeOf(Location{}).Field(i).Name
		if _, ok := lf.FieldByName(name); !ok && !keyed[name] {
			t.Errorf("Location.%s is not part of merge's location key", name)
		}
	}
	// Two locations that differ only in their decoded chain stay two.
	off := int64(3)
	a := Location{View: "v", Offset: 1, Decoded: []DecodedStep{{Codec: "gzip"}}, DecodedOffset: &off}
	b := a
	b.Decoded = []DecodedStep{{Codec: "zstd"}}
	r := Merge(&Report{Findings: []Finding{{Rule: "r", Fingerprint: "f", Locations: []Location{a}}}},
		&Report{Findings: []Finding{{Rule: "r", Fingerprint: "f", Locations: []Location{a, b}}}})
	if n := len(r.Findings[0].Locations); n != 2 {
		t.Fatalf("%d locations, want 2", n)
	}
}
