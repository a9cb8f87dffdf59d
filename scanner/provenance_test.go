package scanner_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestPackageProvenanceAndPathContext scans a small real image whose
// packages dpkg installed (testutil.BuildPackagedImage) twice: with the
// downgrades and with --no-downgrade. Keys shipped unmodified by a
// package are info with their provenance, also in free blocks and in the
// compiled Python module; an edited package file keeps its severity and
// says so; keys in /etc, /home and free blocks keep their severity; the
// test and documentation files are lowered exactly as docs/report.md
// says. Without downgrades every finding has its rule's severity.
func TestPackageProvenanceAndPathContext(t *testing.T) {
	img := testutil.BuildPackagedImage(t, true)
	before := testutil.FileSnapshot(t, img.Image)
	scan := func(noDowngrade bool) *report.Report {
		rep, err := scanner.New(scanner.Options{Engine: newEngine(t), NoDowngrade: noDowngrade}).Scan(context.Background(), []string{img.Image})
		if err != nil || !rep.Complete {
			t.Fatalf("scan: %v %s", err, rep.IncompleteReason)
		}
		return rep
	}
	rep, plain := scan(false), scan(true)
	if !bytes.Equal(before, testutil.FileSnapshot(t, img.Image)) {
		t.Fatal("the image changed during the scans")
	}
	find := func(r *report.Report, fingerprint string) *report.Finding {
		for i := range r.Findings {
			if r.Findings[i].Fingerprint == fingerprint && r.Findings[i].Category != report.CategoryRollbackRisk {
				return &r.Findings[i]
			}
		}
		t.Fatalf("no finding %s:%s", fingerprint, summary(r))
		return nil
	}
	key := func(k string) string { return fp(img.Keys[k]) }
	pyc := func(p report.Provenance) bool {
		return strings.HasPrefix(p.Path, testutil.PkgPycDir+"/") && p.Source == testutil.PkgPyPath
	}

	cases := []struct {
		name  string
		fp    string
		lower int // severity levels below the rule's; -1 = info
		codes []string
		check func(t *testing.T, f *report.Finding)
	}{
		{"unmodified package file and its deleted copy", key("packaged"), -1,
			[]string{report.ReasonPackageFileUnmodified, report.ReasonPublicByPropagation}, func(t *testing.T, f *report.Finding) {
				if len(f.Provenance) != 1 || f.Provenance[0] != (report.Provenance{Manager: "dpkg", Package: "selftest-keys", Version: "1.0-1",
					Arch: "all", Target: img.Image, Path: testutil.PkgKeyPath, Digest: "md5"}) {
					t.Errorf("provenance %+v", f.Provenance)
				}
				if !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Exposure == report.ExposureDeleted }) {
					t.Errorf("no copy in free blocks: %+v", f.Locations)
				}
			}},
		{"bytecode compiled from an unmodified package module", key("compiled"), -1,
			[]string{report.ReasonPackageFileUnmodified}, func(t *testing.T, f *report.Finding) {
				if len(f.Provenance) != 1 || !pyc(f.Provenance[0]) || f.Provenance[0].Modified || f.Provenance[0].Package != "selftest-keys" {
					t.Errorf("provenance %+v", f.Provenance)
				}
				for _, l := range f.Locations {
					if l.Path == testutil.PkgPyPath {
						t.Errorf("the source holds the key whole: the test does not exercise compiled files")
					}
				}
			}},
		{"package file edited since install", key("edited"), 0, []string{report.ReasonPackageFileModified}, func(t *testing.T, f *report.Finding) {
			if len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Package != "edited-keys" || f.Provenance[0].Path != testutil.EditedKeyPath {
				t.Errorf("provenance %+v", f.Provenance)
			}
		}},
		{"/etc", key("etc"), 0, nil, nil},
		{"/home", key("home"), 0, nil, nil},
		{"free blocks only", key("deleted"), 0, nil, nil},
		{"documentation example", key("doc"), 2, []string{report.ReasonDocumentationPath}, nil},
		{"/opt/app/tests/.env", fp([]byte(img.AWSSecret)), 1, []string{report.ReasonTestPath}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, orig := find(rep, c.fp), find(plain, c.fp)
			want := report.SeverityInfo
			if c.lower >= 0 {
				want = report.LowerSeverity(orig.Severity, c.lower)
			}
			var codes []string
			for _, r := range f.Reasons {
				codes = append(codes, r.Code)
			}
			if f.Severity != want || !slices.Equal(codes, c.codes) {
				t.Errorf("severity %s (rule's %s, want %s), reasons %+v (want codes %q)", f.Severity, orig.Severity, want, f.Reasons, c.codes)
			}
			if want != orig.Severity && (f.Reasons[0].From != orig.Severity || f.Reasons[0].To != want) {
				t.Errorf("first reason %+v does not say %s -> %s", f.Reasons[0], orig.Severity, want)
			}
			if len(orig.Reasons) > 0 || len(orig.Provenance) > 0 || orig.Severity == report.SeverityInfo {
				t.Errorf("--no-downgrade: %s with %+v %+v", orig.Severity, orig.Reasons, orig.Provenance)
			}
			if c.check != nil {
				c.check(t, f)
			}
		})
	}
	// Only the packages' material is info (the split source's partial key
	// block too).
	for _, f := range rep.Findings {
		if f.Severity == report.SeverityInfo && (len(f.Provenance) == 0 || f.Provenance[0].Package != "selftest-keys") {
			t.Errorf("%s %s is info: %+v", f.Rule, f.Fingerprint, f.Reasons)
		}
	}
	if plain.Summary.BySeverity[report.SeverityInfo] != 0 {
		t.Errorf("without downgrades by_severity is %v", plain.Summary.BySeverity)
	}
	// Public material is no machine identity and has no timeline row.
	for _, tl := range rep.Timelines {
		for _, row := range tl.Secrets {
			if row.Fingerprint == key("packaged") {
				t.Errorf("timeline row for the public key")
			}
		}
	}
}
