package report

import (
	"strings"
	"testing"
)

// TestLiveSectionNote: the LIVE ONLY subtitle claims allocated files only
// when every live location is an allocated file.
func TestLiveSectionNote(t *testing.T) {
	file := Location{View: "img#current", Path: "/etc/app.conf", State: StateAllocated, Exposure: ExposureLive}
	raw := Location{View: "img#current", State: StateUnknown, Exposure: ExposureLive}
	metadata := Location{View: "img#current", State: StateAllocated, Exposure: ExposureLive}
	for _, c := range []struct {
		name string
		locs []Location
		want string
	}{
		{"in a file", []Location{file}, "in allocated files of the current state"},
		{"no filesystem", []Location{raw}, "or where no filesystem could be read (state unknown, no path)"},
		{"file and unattributed", []Location{file, raw}, "or where no filesystem could be read"},
		{"metadata without a path", []Location{metadata}, "or where no filesystem could be read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &Report{Findings: []Finding{{Rule: "generic-password", Severity: "high", Fingerprint: "sha256:00", Locations: c.locs}}}
			RecomputeExposure(&r.Findings[0])
			out := writeTable(t, r, TableOptions{})
			_, after, ok := strings.Cut(out, "LIVE ONLY (1)")
			if !ok || !strings.Contains(strings.SplitN(after, "\n", 3)[1], c.want) {
				t.Errorf("LIVE ONLY section:\n%s\nwant %q", after, c.want)
			}
		})
	}
}
