package main

import (
	"context"
	"io"

	"github.com/imgaudit/imgaudit/report"
)

func cmdMerge(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("merge", "merge [flags] REPORT.json...",
		`Merge JSON reports (of 'imgaudit scan' or 'imgaudit registry', e.g. the shards
of a fanned-out registry scan) into one report: targets are concatenated,
findings with the same rule and fingerprint become one finding with all
their locations, exposures and the summary are recomputed. A finding is
new only if every report that marked it says so. The merged report is
complete only if every input is.

Exit codes: 0 no finding at or above --fail-on; 1 findings at or above it;
2 incomplete (an input is), usage error or unreadable input; 3 incomplete
and findings at or above --fail-on.`, stdout)
	format := fs.String("format", "json", "report `FORMAT`: table, json, sarif or html")
	var output string
	fs.StringVar(&output, "output", "", "write the merged report to `FILE` instead of standard output")
	fs.StringVar(&output, "o", "", "same as --output")
	failOn := fs.String("fail-on", "low", "exit 1 when a finding has this `SEVERITY` or higher: low, medium, high, critical, or none")
	maxLocs := fs.Int("max-locations", 5, "table format: `N` locations shown per finding")
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(paths) == 0 {
		return exitUsage, usagef("no REPORT given")
	}
	if err := checkFormat(*format); err != nil {
		return exitUsage, err
	}
	threshold, err := parseFailOn(*failOn)
	if err != nil {
		return exitUsage, err
	}
	rf := &reportFlags{format: *format, output: output, failOn: *failOn, maxLocs: *maxLocs}
	out, err := checkOutput(output, paths)
	if err != nil {
		return exitUsage, err
	}
	var reps []*report.Report
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return exitInterrupted, err
		}
		r, err := report.ReadJSONFile(p)
		if err != nil {
			return exitUsage, err
		}
		reps = append(reps, r)
	}
	merged := report.Merge(reps...)
	merged.Command = "merge"
	merged.FailOn = *failOn
	merged.Tool = report.Tool{Name: "imgaudit", Version: version}
	merged.Inputs = paths // the merged reports themselves, not the images they name
	return finishReport("merge", merged, rf, out, threshold, nil, nil, stdout, stderr)
}
