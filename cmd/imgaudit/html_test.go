package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

var (
	embeddedReport = regexp.MustCompile(`(?s)<script type="application/json" id="imgaudit-report">(.*?)</script>`)
	pageVerdict    = regexp.MustCompile(`id="verdict">([^<]*)<`)
)

// readHTMLReport returns the JSON report an HTML page embeds and the
// gate's verdict it shows.
func readHTMLReport(t *testing.T, path string) (*report.Report, string) {
	t.Helper()
	page := readAll(t, path)
	m := embeddedReport.FindSubmatch(page)
	v := pageVerdict.FindSubmatch(page)
	if m == nil || v == nil {
		t.Fatalf("%s: no embedded report or verdict", path)
	}
	r, err := report.ReadJSON(bytes.NewReader(m[1]))
	if err != nil {
		t.Fatalf("%s: embedded report: %v", path, err)
	}
	return r, string(v[1])
}

func fingerprints(r *report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Rule+" "+f.Fingerprint)
	}
	slices.Sort(out)
	return out
}

// TestFormatHTML: scan and merge write HTML with -o, the page embeds the
// report the JSON format writes, and the baseline and --fail-on reach it.
func TestFormatHTML(t *testing.T) {
	demo := filepath.Join(testutil.RepoRoot(), "testdata/demo/web01.qcow2")
	dir := t.TempDir()
	js, page := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	if code, _, errs := runCLI(t, "scan", "--no-progress", "--format", "json", "-o", js, demo); code != exitFindings {
		t.Fatalf("scan --format json: exit %d: %s", code, errs)
	}
	want := readReportFile(t, js)
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		n       int // findings on the page
		verdict string
	}{
		{"scan", []string{"scan", "--no-progress", "--format", "html", "-o", page, demo}, exitFindings, len(want.Findings), "FAIL (exit 1): "},
		{"fail-on none", []string{"scan", "--no-progress", "--format", "html", "--fail-on", "none", "-o", page, demo}, exitOK, len(want.Findings), "PASS (exit 0): 0 findings at or above --fail-on none"},
		{"baseline", []string{"scan", "--no-progress", "--format", "html", "--baseline", js, "-o", page, demo}, exitOK, 0, "PASS (exit 0): 0 findings at or above --fail-on low"},
		{"merge", []string{"merge", "--format", "html", "-o", page, js}, exitFindings, len(want.Findings), "FAIL (exit 1): "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.args...)
			if code != tc.code || out != "" {
				t.Fatalf("exit %d (want %d), stdout %d bytes: %s", code, tc.code, len(out), errs)
			}
			got, verdict := readHTMLReport(t, page)
			if len(got.Findings) != tc.n {
				t.Errorf("%d findings on the page, want %d", len(got.Findings), tc.n)
			}
			if tc.n > 0 && !slices.Equal(fingerprints(got), fingerprints(want)) {
				t.Errorf("the page's findings differ from --format json's")
			}
			if tc.n == 0 && got.Summary.SuppressedByBaseline != len(want.Findings) {
				t.Errorf("suppressed by baseline = %d, want %d", got.Summary.SuppressedByBaseline, len(want.Findings))
			}
			if len(verdict) < len(tc.verdict) || verdict[:len(tc.verdict)] != tc.verdict {
				t.Errorf("verdict %q, want %q...", verdict, tc.verdict)
			}
		})
	}
	if code, _, errs := runCLI(t, "scan", "--format", "pdf", demo); code != exitUsage || !bytes.Contains([]byte(errs), []byte("table, json, sarif or html")) {
		t.Errorf("--format pdf: exit %d: %s", code, errs)
	}
}
