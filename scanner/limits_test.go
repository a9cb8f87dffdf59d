package scanner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestFindingLimits scans text files with small limits and checks that
// the findings and locations kept stop at the limits, per rule and view
// and per scan, that what is cut is counted in the finding, the view and
// the summary, and that a cut never hides a more severe finding of the
// same rule.
func TestFindingLimits(t *testing.T) {
	keyID := func(i int) string { return fmt.Sprintf("AKIAQZ%014d", i) }
	distinct := func(from, n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(keyID(from+i) + "\n")
		}
		return b.String()
	}
	tests := []struct {
		name   string
		text   string
		more   []string // further targets' texts
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
			limits:       report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 100, FindingsPerScan: 100, LocationsPerScan: 1000},
			wantFindings: 10, wantListed: 10, wantDrop: 40,
		},
		{
			name:         "one key past the locations limit",
			text:         strings.Repeat(keyID(7)+"\n", 30),
			limits:       report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 5, FindingsPerScan: 100, LocationsPerScan: 1000},
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
			limits:       report.Limits{FindingsPerRulePerView: 5, LocationsPerFinding: 5, FindingsPerScan: 100, LocationsPerScan: 1000},
			wantFindings: 6, wantListed: 6, wantDrop: 15,
		},
		{
			name:         "distinct keys in two targets past the scan's findings limit",
			text:         distinct(0, 10),
			more:         []string{distinct(100, 10)},
			limits:       report.Limits{FindingsPerRulePerView: 100, LocationsPerFinding: 100, FindingsPerScan: 15, LocationsPerScan: 1000},
			wantFindings: 15, wantListed: 15, wantDrop: 5,
		},
		{
			name:         "keys repeated past the scan's locations limit",
			text:         strings.Repeat(keyID(1)+"\n"+keyID(2)+"\n", 10),
			limits:       report.Limits{FindingsPerRulePerView: 100, LocationsPerFinding: 100, FindingsPerScan: 100, LocationsPerScan: 12},
			wantFindings: 2, wantListed: 12, wantTruncated: 8,
		},
		{
			name:         "within the limits nothing is cut",
			text:         keyID(1) + "\n" + keyID(2) + "\n",
			limits:       report.Limits{FindingsPerRulePerView: 5, LocationsPerFinding: 5, FindingsPerScan: 100, LocationsPerScan: 1000},
			wantFindings: 2, wantListed: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for i, text := range append([]string{tt.text}, tt.more...) {
				path := filepath.Join(dir, fmt.Sprintf("keys%d.txt", i))
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, path)
			}
			rep, err := scanner.New(scanner.Options{Engine: newEngine(t), Limits: tt.limits}).Scan(context.Background(), paths)
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
			for _, tg := range rep.Targets {
				for _, v := range tg.Views {
					if v.Truncated != nil {
						drop += v.Truncated.MatchesDropped["aws-access-key-id"]
					}
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

// TestLimiterEnough: Enough says a rule is full in a view only once its
// findings at the rule's severity reached the limit there, or the scan's
// findings reached theirs; until then it says no, for every rule and view.
func TestLimiterEnough(t *testing.T) {
	e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const rule, other = "aws-access-key-id", "github-pat"
	sev, ok := e.RuleSeverity(rule)
	if !ok {
		t.Fatalf("no rule %s", rule)
	}
	type admit struct {
		view string
		sev  detectors.Severity
	}
	tests := []struct {
		name   string
		limits report.Limits
		admits []admit
		// want: Enough(view, rule) for views a and b, then Enough(a, other).
		wantA, wantB, wantOther bool
	}{
		{"nothing kept", report.Limits{FindingsPerRulePerView: 2}, nil, false, false, false},
		{"one under the limit", report.Limits{FindingsPerRulePerView: 2}, []admit{{"a", sev}}, false, false, false},
		{"the rule full in a", report.Limits{FindingsPerRulePerView: 2}, []admit{{"a", sev}, {"a", sev}}, true, false, false},
		{"full at another severity only", report.Limits{FindingsPerRulePerView: 2}, []admit{{"a", sev - 1}, {"a", sev - 1}}, false, false, false},
		{"the scan full", report.Limits{FindingsPerRulePerView: 10, FindingsPerScan: 3}, []admit{{"a", sev}, {"b", sev}, {"b", sev}}, true, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := scanner.NewLimiter(tc.limits, e)
			for _, a := range tc.admits {
				if !l.Admit(a.view, rule, a.sev) {
					t.Fatalf("Admit(%s) refused", a.view)
				}
			}
			if got := l.Enough("a", rule); got != tc.wantA {
				t.Errorf("Enough(a, %s) = %v, want %v", rule, got, tc.wantA)
			}
			if got := l.Enough("b", rule); got != tc.wantB {
				t.Errorf("Enough(b, %s) = %v, want %v", rule, got, tc.wantB)
			}
			if got := l.Enough("a", other); got != tc.wantOther {
				t.Errorf("Enough(a, %s) = %v, want %v", other, got, tc.wantOther)
			}
		})
	}
}
