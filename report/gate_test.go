package report

import "testing"

func TestGate(t *testing.T) {
	withSeverities := func(sev ...string) *Report {
		r := emptyReport()
		r.Summary.Targets = 1
		for i, s := range sev {
			r.Findings = append(r.Findings, Finding{Rule: "r", Severity: s, Fingerprint: fp(string(rune('a' + i)))})
		}
		return r
	}
	incomplete := func(r *Report, reason string) *Report {
		r.Complete, r.IncompleteReason = false, reason
		return r
	}
	allFailed := withSeverities(SeverityCritical)
	allFailed.Summary.TargetsFailed = 1
	someFailed := withSeverities()
	someFailed.Summary.Targets, someFailed.Summary.TargetsFailed = 2, 1
	for _, tc := range []struct {
		name, failOn string
		r            *Report
		exit, count  int
		pass         bool
		text         string
	}{
		{"no findings", "low", withSeverities(), ExitPass, 0, true, "PASS (exit 0): 0 findings at or above --fail-on low"},
		{"default is low", "", withSeverities(SeverityLow), ExitFindings, 1, false, "FAIL (exit 1): 1 finding at or above --fail-on low"},
		{"below the threshold", "high", withSeverities(SeverityMedium, SeverityLow), ExitPass, 0, true, "PASS (exit 0): 0 findings at or above --fail-on high"},
		{"at and above", "high", withSeverities(SeverityCritical, SeverityHigh, SeverityMedium), ExitFindings, 2, false, "FAIL (exit 1): 2 findings at or above --fail-on high"},
		{"case-insensitive", "CRITICAL", withSeverities(SeverityCritical), ExitFindings, 1, false, "FAIL (exit 1): 1 finding at or above --fail-on critical"},
		{"none counts nothing", "none", withSeverities(SeverityCritical), ExitPass, 0, true, "PASS (exit 0): 0 findings at or above --fail-on none"},
		{"unknown severities never count", "low", withSeverities("info", "weird"), ExitPass, 0, true, "PASS (exit 0): 0 findings at or above --fail-on low"},
		{"every target failed", "none", allFailed, ExitNoTarget, 0, false, "FAIL (exit 2): no target could be read"},
		{"some targets failed", "low", someFailed, ExitPass, 0, true, "PASS (exit 0): 0 findings at or above --fail-on low"},
		{"incomplete", "high", incomplete(withSeverities(SeverityLow), ""), ExitIncomplete, 0, false, "FAIL (exit 2): incomplete: not everything could be read"},
		{"incomplete with findings", "low", incomplete(withSeverities(SeverityLow), "interrupted"), ExitIncompleteFindings, 1, false, "FAIL (exit 3): incomplete: interrupted; 1 finding at or above --fail-on low"},
		{"incomplete fails closed with none", "none", incomplete(withSeverities(SeverityCritical), "1 of 2 targets could not be read completely"), ExitIncomplete, 0, false, "FAIL (exit 2): incomplete: 1 of 2 targets could not be read completely"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Gate(tc.r, tc.failOn)
			if err != nil {
				t.Fatal(err)
			}
			if v.Exit != tc.exit || v.AtOrAbove != tc.count || v.Pass != tc.pass || v.Text != tc.text {
				t.Errorf("Gate = %+v, want exit %d, %d at or above, pass %v, %q", v, tc.exit, tc.count, tc.pass, tc.text)
			}
		})
	}
	if _, err := Gate(emptyReport(), "severe"); err == nil {
		t.Error("Gate accepted --fail-on severe")
	}
}
