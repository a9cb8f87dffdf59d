package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/outfile"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// reportFlags are the flags that scan and registry share: how to report,
// when to fail, which rules to run.
type reportFlags struct {
	format, output, failOn, baseline string
	ruleFiles, disable, enable       stringList
	workers, maxLocs                 int
	memRules, noDowngrade, noDecode  bool
	noNested                         bool
	severity                         string
	ignoreFiles                      stringList
	maxTime                          time.Duration

	// Set by check and engine.
	show    []string          // --severity
	ignore  report.IgnoreList // --ignore, .imgauditignore
	derived []string          // --disable-rule IDs of the scanner's own rules
}

func addReportFlags(fs *flagSet, memHelp string) *reportFlags {
	rf := &reportFlags{}
	fs.StringVar(&rf.format, "format", "table", "report `FORMAT`: table, json, sarif or html")
	fs.StringVar(&rf.output, "output", "", "write the report to `FILE` instead of standard output")
	fs.StringVar(&rf.output, "o", "", "same as --output")
	fs.StringVar(&rf.failOn, "fail-on", "low", "exit 1 when a finding has this `SEVERITY` or higher: low, medium, high, critical, or none (findings of severity info, public material, never count)")
	fs.StringVar(&rf.baseline, "baseline", "", "previous JSON report `FILE`: findings whose fingerprints it lists are suppressed, the rest are marked new")
	fs.Var(&rf.ruleFiles, "rules", "TOML `FILE` of extra rules (repeatable); see docs/rules.md")
	fs.Var(&rf.disable, "disable-rule", "rule `ID`s to turn off (repeatable, comma-separated)")
	fs.Var(&rf.enable, "enable-rule", "run only the rules with these `ID`s (repeatable, comma-separated; as Gitleaks' --enable-rule); --disable-rule still turns rules off, and findings of other rules are neither reported nor judged by --fail-on")
	fs.IntVar(&rf.workers, "workers", 0, "`N` detector goroutines (0 = one per CPU)")
	fs.IntVar(&rf.maxLocs, "max-locations", 5, "table format: `N` locations shown per finding")
	fs.BoolVar(&rf.memRules, "memory-rules", false, memHelp)
	fs.BoolVar(&rf.noDecode, "no-decode", false, "scan raw bytes only: do not decode compressed streams and archives (gzip, xz, zstd, bzip2, lz4, zip, tar, cpio, ar, squashfs) in files, free space, unreferenced clusters or RAM, nor scan processes' cores and swap areas in a guest again with the memory rules")
	fs.BoolVar(&rf.noNested, "no-nested-images", false, "do not open the disk and memory images found as files in a guest's filesystem (qcow2, VMDK, VHDX, VHD, VDI by their magic numbers, raw disks by their partition table or filesystem, OVAs, Proxmox .vma backups, disks compressed or archived once (a .qcow2.gz, a Vagrant .box, a zip of disks), libvirt saves, guest-memory dumps and other saved RAM; e.g. a host's /var/lib/libvirt/images and /var/lib/libvirt/qemu/save) as targets of their own: scan them as those files' raw bytes only")
	fs.BoolVar(&rf.noDowngrade, "no-downgrade", false, "report every finding at its rule's severity: no severity info for secrets that an installed package ships unmodified (dpkg, rpm, apk, Python records), nor for keys that software publishes (kernel and library self-test keys, openssl speed's), no lowering for files in test and documentation directories; compressed files that packages ship unmodified are decoded too")
	fs.StringVar(&rf.severity, "severity", "", "show only findings of these severities (comma `LIST`, e.g. critical,high); --fail-on still judges every finding")
	fs.DurationVar(&rf.maxTime, "max-time", 0, "stop the run after `DURATION` (e.g. 45m, 2h; 0: no limit) and write the report of what it read by then, marked incomplete: the exit code is then 2, or 3 with findings at or above --fail-on, as for a target that could not be read completely")
	fs.Var(&rf.ignoreFiles, "ignore", "ignore `FILE` of accepted fingerprints, one per line with a comment (sha256:... # why; repeatable; default ./"+report.DefaultIgnoreFile+" when present)")
	return rf
}

// check validates the flags and reads the baseline; it returns the
// --fail-on threshold in the form report.Gate takes.
func (rf *reportFlags) check() (string, map[string]bool, error) {
	if err := checkFormat(rf.format); err != nil {
		return "", nil, err
	}
	threshold, err := parseFailOn(rf.failOn)
	if err != nil {
		return "", nil, err
	}
	var known map[string]bool
	if rf.baseline != "" {
		if known, err = report.ReadBaseline(rf.baseline); err != nil {
			return "", nil, fmt.Errorf("--baseline: %w", err)
		}
	}
	if rf.severity != "" {
		if rf.show, err = report.ParseSeverityList(rf.severity); err != nil {
			return "", nil, usagef("--severity: %v", err)
		}
	}
	if rf.maxTime < 0 {
		return "", nil, usagef("--max-time: %v is negative", rf.maxTime)
	}
	if rf.ignore, err = report.LoadIgnoreFiles(rf.ignoreFiles); err != nil {
		return "", nil, usagef("--ignore: %v", err)
	}
	return threshold, known, nil
}

func (rf *reportFlags) engine() (*detectors.Engine, error) {
	c, err := loadRules(rf.ruleFiles)
	if err != nil {
		return nil, err
	}
	disable := []string(rf.disable)
	if len(rf.enable) > 0 {
		others, unknown := scanner.RulesOutside(c.Rules, rf.enable)
		if unknown != "" {
			return nil, usagef("--enable-rule: no rule %q (see 'imgaudit rules')", unknown)
		}
		disable = append(others, disable...)
	}
	var det []string
	det, rf.derived = scanner.SplitDisabled(disable)
	return buildEngine(c, det, rf.workers)
}

// write drops the ignored findings from rep and writes the severities
// --severity shows; rep keeps the others for the gate.
func (rf *reportFlags) write(rep *report.Report, out *outfile.Output, stdout io.Writer) error {
	report.Ignore(rep, rf.ignore)
	return writeReport(report.ShowSeverities(rep, rf.show), rf.format, out, rf.maxLocs, stdout)
}

func checkFormat(f string) error {
	switch f {
	case "table", "json", "sarif", "html":
		return nil
	}
	return usagef("--format must be table, json, sarif or html, not %q", f)
}

func parseFailOn(s string) (string, error) {
	t, err := report.ParseFailOn(s)
	if err != nil {
		return "", usagef("%v", err)
	}
	return t, nil
}

// gateExit exits as report.Gate decides (the exit-code contract of
// docs/report.md); the verdict says why, for the CI log.
func gateExit(rep *report.Report, threshold string) (int, string, error) {
	v, err := report.Gate(rep, threshold)
	if err != nil {
		return exitUsage, "", usagef("%v", err)
	}
	if v.NoTarget {
		return v.Exit, "", fmt.Errorf("no target could be read")
	}
	return v.Exit, v.Text, nil
}

// checkOutput validates -o before the work starts (see outfile.Check):
// nil for standard output.
// readFiles are the files the flags name for reading that no report may
// be written over: each --rules and --ignore file, and ./.imgauditignore
// when no --ignore is given. Not --baseline: a report may replace the
// baseline it was compared with (read whole before the scan; the report
// is written atomically after it), which is how a baseline is kept.
func (rf *reportFlags) readFiles() []string {
	out := append([]string{}, rf.ruleFiles...)
	out = append(out, rf.ignoreFiles...)
	if len(rf.ignoreFiles) == 0 {
		out = append(out, report.DefaultIgnoreFile)
	}
	return out
}

func checkOutput(path string, inputs []string) (*outfile.Output, error) {
	if path == "" {
		return nil, nil
	}
	return outfile.Check(path, inputs)
}

// writeReport writes the report to out (atomically, refusing any file the
// run read) or to stdout.
func writeReport(rep *report.Report, format string, out *outfile.Output, maxLocs int, stdout io.Writer) error {
	write := func(w io.Writer) error {
		switch format {
		case "json":
			return report.WriteJSON(w, rep)
		case "sarif":
			return report.WriteSARIF(w, rep)
		case "html":
			return report.WriteHTML(w, rep)
		}
		return report.WriteTable(w, rep, report.TableOptions{MaxLocations: maxLocs})
	}
	var err error
	if out == nil {
		err = write(stdout)
	} else {
		err = out.Write(rep.Inputs, func(f *os.File) error { return write(f) })
	}
	var refused *outfile.Refused
	if err != nil && !errors.As(err, &refused) {
		return fmt.Errorf("writing report: %w", err)
	}
	return err
}

// finishReport writes the report, applies the gate and, when the report
// went to a file or is not a table, says the summary and the verdict on
// stderr so that a CI log shows why a run failed. afterWrite, when set,
// runs only once the report is written (registry's --state: a state that
// remembered findings whose report was never written would mark them
// seen, and a later --only-new run would drop them); its error fails the
// run as a failed report write does (exit 2).
func finishReport(cmdName string, rep *report.Report, rf *reportFlags, out *outfile.Output, threshold string,
	runErr error, afterWrite func() error, stdout, stderr io.Writer) (int, error) {
	if err := rf.write(rep, out, stdout); err != nil {
		return exitUsage, err
	}
	if afterWrite != nil {
		if err := afterWrite(); err != nil {
			return exitUsage, err
		}
	}
	var maxTime scanner.MaxTimeError
	switch {
	case errors.As(runErr, &maxTime):
		// Not an interruption: the report is incomplete, and the gate
		// fails closed on it (exit 2 or 3).
		fmt.Fprintf(stderr, "imgaudit %s: %v: the report holds what was read by then, marked incomplete\n", cmdName, runErr)
	case runErr != nil:
		return exitInterrupted, runErr
	}
	code, verdict, err := gateExit(rep, threshold)
	if out != nil || rf.format != "table" {
		where := "standard output"
		if out != nil {
			where = out.Path()
		}
		fmt.Fprintf(stderr, "imgaudit %s: %s\nimgaudit %s: report written to %s\n", cmdName, report.SummaryLine(rep), cmdName, where)
		if verdict != "" {
			fmt.Fprintf(stderr, "imgaudit %s: %s\n", cmdName, verdict)
		}
	}
	return code, err
}
