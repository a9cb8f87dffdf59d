package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/report"
)

// reportFlags are the flags that scan and registry share: how to report,
// when to fail, which rules to run.
type reportFlags struct {
	format, output, failOn, baseline string
	ruleFiles, disable               stringList
	workers, maxLocs                 int
	memRules                         bool
}

func addReportFlags(fs *flag.FlagSet, memHelp string) *reportFlags {
	rf := &reportFlags{}
	fs.StringVar(&rf.format, "format", "table", "report format: table, json or sarif")
	fs.StringVar(&rf.output, "output", "", "write the report to `FILE` instead of standard output")
	fs.StringVar(&rf.output, "o", "", "same as --output")
	fs.StringVar(&rf.failOn, "fail-on", "low", "exit 1 when a finding has this `severity` or higher: low, medium, high, critical, or none")
	fs.StringVar(&rf.baseline, "baseline", "", "previous JSON report `FILE`: findings whose fingerprints it lists are suppressed, the rest are marked new")
	fs.Var(&rf.ruleFiles, "rules", "TOML `FILE` of extra rules (repeatable); see docs/rules.md")
	fs.Var(&rf.disable, "disable-rule", "rule `ID`s to turn off (repeatable, comma-separated)")
	fs.IntVar(&rf.workers, "workers", 0, "detector goroutines (0 = one per CPU)")
	fs.IntVar(&rf.maxLocs, "max-locations", 5, "table format: locations shown per finding")
	fs.BoolVar(&rf.memRules, "memory-rules", false, memHelp)
	return rf
}

// check validates the flags and reads the baseline.
func (rf *reportFlags) check() (detectors.Severity, map[string]bool, error) {
	if err := checkFormat(rf.format); err != nil {
		return 0, nil, err
	}
	threshold, err := parseFailOn(rf.failOn)
	if err != nil {
		return 0, nil, err
	}
	var known map[string]bool
	if rf.baseline != "" {
		if known, err = readBaseline(rf.baseline); err != nil {
			return 0, nil, err
		}
	}
	return threshold, known, nil
}

func (rf *reportFlags) engine() (*detectors.Engine, error) {
	return buildEngine(rf.ruleFiles, rf.disable, rf.workers)
}

// suppressByBaseline drops findings whose fingerprint the baseline knows;
// the others keep the "new" mark the state gave them, or get new=true.
func suppressByBaseline(rep *report.Report, known map[string]bool) {
	kept := rep.Findings[:0]
	for _, f := range rep.Findings {
		if known[f.Fingerprint] {
			rep.Summary.SuppressedByBaseline++
			continue
		}
		if f.New == nil {
			t := true
			f.New = &t
		}
		kept = append(kept, f)
	}
	rep.Findings = kept
	report.Summarize(rep)
}

// keepOnlyNew drops findings the state knew; they count as suppressed.
func keepOnlyNew(rep *report.Report) {
	kept := rep.Findings[:0]
	for _, f := range rep.Findings {
		if f.New != nil && !*f.New {
			rep.Summary.SuppressedByBaseline++
			continue
		}
		kept = append(kept, f)
	}
	rep.Findings = kept
	report.Summarize(rep)
}

func checkFormat(f string) error {
	switch f {
	case "table", "json", "sarif":
		return nil
	}
	return usagef("--format must be table, json or sarif, not %q", f)
}

func parseFailOn(s string) (detectors.Severity, error) {
	if s == "none" {
		return detectors.Severity(1 << 30), nil
	}
	t, err := detectors.ParseSeverity(s)
	if err != nil {
		return 0, usagef("--fail-on: %v", err)
	}
	return t, nil
}

// gateExit applies the exit-code contract of docs/report.md.
func gateExit(rep *report.Report, threshold detectors.Severity) (int, error) {
	if rep.Summary.Targets > 0 && rep.Summary.TargetsFailed == rep.Summary.Targets {
		return exitUsage, fmt.Errorf("no target could be read")
	}
	for _, f := range rep.Findings {
		if s, err := detectors.ParseSeverity(f.Severity); err == nil && s >= threshold {
			return exitFindings, nil
		}
	}
	return exitOK, nil
}

func writeReport(rep *report.Report, format, output string, maxLocs int, stdout io.Writer) error {
	var w io.Writer = stdout
	var f *os.File
	if output != "" {
		var err error
		if f, err = os.Create(output); err != nil {
			return err
		}
		w = f
	}
	var err error
	switch format {
	case "json":
		err = report.WriteJSON(w, rep)
	case "sarif":
		err = report.WriteSARIF(w, rep)
	default:
		err = report.WriteTable(w, rep, report.TableOptions{MaxLocations: maxLocs})
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}
