package report

import (
	"cmp"
	"fmt"
	"strings"
)

// Exit codes of the gate: a public contract (docs/report.md).
const (
	ExitPass               = 0 // complete, no finding at or above --fail-on
	ExitFindings           = 1 // complete, findings at or above --fail-on
	ExitIncomplete         = 2 // incomplete, no finding at or above --fail-on
	ExitIncompleteFindings = 3 // incomplete, and findings at or above --fail-on
	ExitNoTarget           = 2 // no target could be read at all
)

// FailOnNone is the --fail-on value that counts no finding.
const FailOnNone = "none"

// Verdict is what the --fail-on gate decides for a report. The CLI exits
// with Exit; the HTML report shows Text.
type Verdict struct {
	FailOn string `json:"fail_on"`
	// AtOrAbove counts the findings at or above FailOn: those that fail
	// the gate.
	AtOrAbove int  `json:"at_or_above"`
	Pass      bool `json:"pass"`
	// Incomplete is set when the run did not read everything: the gate
	// fails closed, whatever the findings.
	Incomplete bool `json:"incomplete"`
	// NoTarget is set when every target failed: the run proves nothing.
	NoTarget bool `json:"no_target"`
	Exit     int  `json:"exit"`
	// Text says the verdict in one line:
	// "FAIL (exit 1): 3 findings at or above --fail-on high".
	Text string `json:"text"`
}

// ParseFailOn checks a --fail-on value: a severity (case-insensitive) or
// "none". It returns the value in lower case.
func ParseFailOn(s string) (string, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	switch v {
	case FailOnNone, SeverityCritical, SeverityHigh, SeverityMedium, SeverityLow:
		return v, nil
	}
	return "", fmt.Errorf("--fail-on must be low, medium, high, critical or none, not %q", s)
}

// Gate applies the exit-code contract of docs/report.md to r: a finding
// fails the gate when its severity is failOn or higher (findings dropped
// by --baseline are no longer in r and do not count); an incomplete run
// fails whatever its findings (2, or 3 with findings); a run in which no
// target could be read fails with 2. An empty failOn means the default,
// low.
func Gate(r *Report, failOn string) (Verdict, error) {
	if failOn == "" {
		failOn = SeverityLow
	}
	fo, err := ParseFailOn(failOn)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{FailOn: fo, Incomplete: !r.Complete}
	if fo != FailOnNone {
		limit := SeverityRank(fo)
		for i := range r.Findings {
			// Unknown severities rank after low and never count.
			if SeverityRank(r.Findings[i].Severity) <= limit {
				v.AtOrAbove++
			}
		}
	}
	found := fmt.Sprintf("%s at or above --fail-on %s", plural(v.AtOrAbove, "finding"), fo)
	incomplete := "incomplete: " + cmp.Or(r.IncompleteReason, "not everything could be read")
	switch {
	case r.Summary.Targets > 0 && r.Summary.TargetsFailed == r.Summary.Targets:
		v.NoTarget, v.Exit = true, ExitNoTarget
		v.Text = fmt.Sprintf("FAIL (exit %d): no target could be read", v.Exit)
	case v.Incomplete && v.AtOrAbove > 0:
		v.Exit = ExitIncompleteFindings
		v.Text = fmt.Sprintf("FAIL (exit %d): %s; %s", v.Exit, incomplete, found)
	case v.Incomplete:
		v.Exit = ExitIncomplete
		v.Text = fmt.Sprintf("FAIL (exit %d): %s", v.Exit, incomplete)
	case v.AtOrAbove > 0:
		v.Exit = ExitFindings
		v.Text = fmt.Sprintf("FAIL (exit %d): %s", v.Exit, found)
	default:
		v.Pass, v.Exit = true, ExitPass
		v.Text = fmt.Sprintf("PASS (exit %d): %s", v.Exit, found)
	}
	return v, nil
}
