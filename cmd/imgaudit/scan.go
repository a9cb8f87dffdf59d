package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/registry"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("scan", "scan [flags] TARGET...",
		`Scan VM images for secrets and report where each one persists: live in the
current state, deleted but not wiped, kept by an internal snapshot, only in a
backing file, in unreferenced host clusters, or in saved RAM.

A TARGET is an image file (qcow2, raw, ...; detected by content) or a
directory, in which every image is scanned and each backing file is read once
however many overlays share it. Images are opened read-only.

Exit codes: 0 no finding at or above --fail-on; 1 findings at or above it;
2 usage error or no target could be read; 130 interrupted (the report is
still written, marked incomplete).`, stderr)
	format := fs.String("format", "table", "report format: table, json or sarif")
	var output string
	fs.StringVar(&output, "output", "", "write the report to `FILE` instead of standard output")
	fs.StringVar(&output, "o", "", "same as --output")
	failOn := fs.String("fail-on", "low", "exit 1 when a finding has this `severity` or higher: low, medium, high, critical, or none")
	baseline := fs.String("baseline", "", "previous JSON report `FILE`: findings whose fingerprints it lists are suppressed, the rest are marked new")
	var ruleFiles, disable stringList
	fs.Var(&ruleFiles, "rules", "TOML `FILE` of extra rules (repeatable); see docs/rules.md")
	fs.Var(&disable, "disable-rule", "rule `ID`s to turn off (repeatable, comma-separated)")
	noProgress := fs.Bool("no-progress", false, "no progress bar (it is shown only when stderr is a terminal)")
	memRules := fs.Bool("memory-rules", false, "also run memory-structure rules (AES key schedules, DER keys) on disk views; always on for memory views")
	workers := fs.Int("workers", 0, "detector goroutines (0 = one per CPU)")
	maxLocs := fs.Int("max-locations", 5, "table format: locations shown per finding")
	noRollback := fs.Bool("no-rollback", false, "skip the rollback-risk analysis (what reverting to a snapshot or backing file would bring back)")
	noDedupe := fs.Bool("no-dedupe", false, "scan every view in full instead of shared bytes once (slower; for measurements)")
	targets, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(targets) == 0 {
		return exitUsage, usagef("no target given")
	}
	switch *format {
	case "table", "json", "sarif":
	default:
		return exitUsage, usagef("--format must be table, json or sarif, not %q", *format)
	}
	threshold := detectors.Severity(1 << 30)
	if *failOn != "none" {
		if threshold, err = detectors.ParseSeverity(*failOn); err != nil {
			return exitUsage, usagef("--fail-on: %v", err)
		}
	}
	engine, err := buildEngine(ruleFiles, disable, *workers)
	if err != nil {
		return exitUsage, err
	}
	var known map[string]bool
	if *baseline != "" {
		if known, err = readBaseline(*baseline); err != nil {
			return exitUsage, err
		}
	}
	var prog io.Writer
	if !*noProgress && isTerminal(stderr) {
		prog = stderr
	}
	// Container images (OCI layouts, docker/podman save tarballs) go to the
	// registry scanner, everything else to the disk scanner.
	var disks, images []string
	for _, t := range targets {
		if registry.IsContainerSource(t) {
			images = append(images, t)
		} else {
			disks = append(disks, t)
		}
	}
	var reps []*report.Report
	var scanErr error
	if len(disks) > 0 || len(images) == 0 {
		sc := scanner.New(scanner.Options{
			Engine: engine, MemoryRulesEverywhere: *memRules, Progress: prog,
			Version: version, NoDedupe: *noDedupe, FailOn: *failOn, NoRollback: *noRollback,
		})
		rep, err := sc.Scan(ctx, disks)
		if rep == nil {
			return exitUsage, err
		}
		reps, scanErr = append(reps, rep), err
	}
	if len(images) > 0 && scanErr == nil {
		rs, err := registry.New(registry.Options{Engine: engine, Version: version, FailOn: *failOn, MemoryRules: *memRules})
		if err != nil {
			return exitUsage, usagef("%v", err)
		}
		crep, err := rs.ScanLocal(ctx, images)
		if crep != nil {
			reps = append(reps, crep)
		}
		scanErr = err
	}
	if len(reps) == 0 {
		return exitUsage, scanErr
	}
	rep := reps[0]
	if len(reps) > 1 {
		rep = report.Merge(reps...)
	}
	rep.Command = "scan"
	if known != nil {
		applyBaseline(rep, known)
	}
	var w io.Writer = stdout
	if output != "" {
		f, err := os.Create(output)
		if err != nil {
			return exitUsage, err
		}
		defer f.Close()
		w = f
	}
	switch *format {
	case "json":
		err = report.WriteJSON(w, rep)
	case "sarif":
		err = report.WriteSARIF(w, rep)
	default:
		err = report.WriteTable(w, rep, report.TableOptions{MaxLocations: *maxLocs})
	}
	if err != nil {
		return exitUsage, fmt.Errorf("writing report: %w", err)
	}
	if scanErr != nil {
		return exitInterrupted, scanErr
	}
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

// loadRules returns the built-in rules plus those of the given TOML files.
func loadRules(ruleFiles []string) ([]detectors.Rule, error) {
	rules := detectors.Builtin()
	for _, f := range ruleFiles {
		extra, err := detectors.LoadRulesFile(f)
		if err != nil {
			return nil, usagef("--rules %s: %v", f, err)
		}
		rules = append(rules, extra...)
	}
	return rules, nil
}

func buildEngine(ruleFiles, disable []string, workers int) (*detectors.Engine, error) {
	rules, err := loadRules(ruleFiles)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, r := range rules {
		known[r.ID] = true
	}
	for _, id := range disable {
		if !known[id] {
			return nil, usagef("--disable-rule: no rule %q (see 'imgaudit rules')", id)
		}
	}
	return detectors.NewEngine(rules, detectors.EngineOptions{Disable: disable, Workers: workers})
}

func readBaseline(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--baseline: %w", err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("--baseline %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, f := range r.Findings {
		known[f.Fingerprint] = true
	}
	return known, nil
}

// applyBaseline drops findings whose fingerprint the baseline knows and marks
// the rest new.
func applyBaseline(rep *report.Report, known map[string]bool) {
	kept := rep.Findings[:0]
	suppressed := 0
	for _, f := range rep.Findings {
		if known[f.Fingerprint] {
			suppressed++
			continue
		}
		t := true
		f.New = &t
		kept = append(kept, f)
	}
	rep.Findings = kept
	rep.Summary.SuppressedByBaseline = suppressed
	report.Summarize(rep)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}
