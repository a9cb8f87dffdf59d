package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/hostile"
)

// TestMaxTime: --max-time stops a run and writes the report of what it
// read, marked incomplete with the limit as its reason, and the gate
// fails closed on it (2, or 3 with findings at or above --fail-on), not
// 130 as for Ctrl-C; a limit the run stays under changes nothing.
func TestMaxTime(t *testing.T) {
	dir := t.TempDir()
	// 64 MiB of distinct AWS key IDs take 0.8 s on one worker here, 16
	// times the limit below: the run stops inside the scan, or before it
	// on a loaded machine, never after it.
	const slowSize = 64 << 20
	slow := filepath.Join(dir, "distinct-hits.raw")
	if err := hostile.WriteDistinctHits(slow, slowSize); err != nil {
		t.Fatal(err)
	}
	imageTar := filepath.Join(dir, "app.tar")
	writeImageTar(t, imageTar, "registry.test/app:1", "etc/app.env", []byte("NPM_TOKEN=npm_"+randomAlnum(t, 36)+"\n"))
	tests := []struct {
		name     string
		args     []string
		complete bool
		reason   string
		// partial: the scan stopped before reading all of its input.
		partial bool
	}{
		{"disk stopped inside its scan", []string{"--workers", "1", "--max-time", "50ms", slow}, false, "stopped at --max-time 50ms", true},
		{"container image past its limit", []string{"--max-time", "1ns", imageTar}, false, "interrupted: stopped at --max-time 1ns", false},
		{"under the limit", []string{"--max-time", "1h", imageTar}, true, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			code, _, errs := runCLI(t, append([]string{"scan", "--no-progress", "--format", "json", "-o", out}, tc.args...)...)
			r := readReportFile(t, out)
			gated := 0
			for _, f := range r.Findings {
				if f.Severity != "info" {
					gated = exitFindings
				}
			}
			want := gated
			if !tc.complete {
				want += exitIncomplete
			}
			if code != want {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, want, errs)
			}
			if r.Complete != tc.complete || !strings.Contains(r.IncompleteReason, tc.reason) {
				t.Errorf("complete %v, reason %q; want %v, %q", r.Complete, r.IncompleteReason, tc.complete, tc.reason)
			}
			if !tc.complete && !strings.Contains(errs, "imgaudit scan: stopped at --max-time") {
				t.Errorf("stderr does not say the run stopped at --max-time:\n%s", errs)
			}
			if tc.partial && r.Summary.ScannedBytes >= slowSize {
				t.Errorf("scanned %d bytes: the whole input", r.Summary.ScannedBytes)
			}
		})
	}
	code, _, errs := runCLI(t, "scan", "--max-time", "-1s", imageTar)
	if code != exitUsage || !strings.Contains(errs, "--max-time: -1s is negative") {
		t.Errorf("--max-time -1s: exit %d, stderr %q", code, errs)
	}
}
