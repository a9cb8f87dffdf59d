package scanner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestFindingLimits scans text files with small limits and checks that
// the findings and locations kept stop at the limits, that what is cut is
// counted in the finding, the view and the summary, and that a cut never
// hides a more severe finding of the same rule.
func TestFindingLimits(t *testing.T) {
	keyID := func(i int) string { return fmt.Sprintf("AKIAQZ%014d", i) }
	tests := []struct {
		name   string
		text   string
		limits report.Limits
		// wanted: findings of rule aws-access-key-id, their locations
		// listed and truncated in all, matches dropped in the view.
		wantFindings, wantListed int
		wantTruncated, wantDrop  int64
	}{
		{
			name: "distinct keys past the findings limit",
			text: func() string {
				var b strings.Builder
				for i := range 50 {
					b.WriteString(keyID(i) + "\n")
				}
				return b.String()
			}(),
			limits:       report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 100},
			wantFindings: 10, wantListed: 10, wantDrop: 40,
		},
		{
			name:         "one key past the locations limit",
			text:         strings.Repeat(keyID(7)+"\n", 30),
			limits:       report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 5},
			wantFindings: 1, wantListed: 5, wantTruncated: 25,
		},
		{
			name: "a low-severity flood does not hide a medium key",
			text: func() string {
				var b strings.Builder
				for i := range 20 {
					fmt.Fprintf(&b, "AKIAEXAMPLE%09d\n", i) // documentation keys: low
				}
				return b.String() + keyID(1) + "\n"
			}(),
			limits:       report.Limits{FindingsPerRulePerView: 5, LocationsPerFinding: 5},
			wantFindings: 6, wantListed: 6, wantDrop: 15,
		},
		{
			name:         "within the limits nothing is cut",
			text:         keyID(1) + "\n" + keyID(2) + "\n",
			limits:       report.Limits{FindingsPerRulePerView: 5, LocationsPerFinding: 5},
			wantFindings: 2, wantListed: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.txt")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := scanner.New(scanner.Options{Engine: newEngine(t), Limits: tt.limits}).Scan(context.Background(), []string{path})
			if err != nil {
				t.Fatal(err)
			}
			var findings, listed int
			var truncated int64
			for _, f := range rep.Findings {
				if f.Rule != "aws-access-key-id" {
					continue
				}
				findings++
				listed += len(f.Locations)
				truncated += f.LocationsTruncated
				if len(f.Locations) > tt.limits.LocationsPerFinding {
					t.Errorf("%s: %d locations, over the limit", f.Fingerprint, len(f.Locations))
				}
			}
			var drop int64
			for _, v := range rep.Targets[0].Views {
				if v.Truncated != nil {
					drop += v.Truncated.MatchesDropped["aws-access-key-id"]
				}
			}
			if findings != tt.wantFindings || listed != tt.wantListed || truncated != tt.wantTruncated || drop != tt.wantDrop {
				t.Errorf("findings %d, locations %d listed and %d truncated, %d matches dropped; want %d, %d, %d, %d",
					findings, listed, truncated, drop, tt.wantFindings, tt.wantListed, tt.wantTruncated, tt.wantDrop)
			}
			cut := tt.wantTruncated > 0 || tt.wantDrop > 0
			if s := rep.Summary.Truncated; (s != nil) != cut {
				t.Errorf("summary.truncated = %+v, want present: %v", s, cut)
			} else if s != nil && (s.Limits != tt.limits || s.MatchesDropped < tt.wantDrop || s.LocationsDropped < tt.wantTruncated) {
				t.Errorf("summary.truncated = %+v, want limits %+v and at least %d dropped, %d truncated", s, tt.limits, tt.wantDrop, tt.wantTruncated)
			}
		})
	}
}
