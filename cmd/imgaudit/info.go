package main

import (
	"context"
	"fmt"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func cmdInfo(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("info", "info [--format table|json] IMAGE...",
		`Show each image's format, virtual size, backing chain, internal snapshots
(name, date, vm state size) and every view imgaudit will scan, with its ID
(for 'extract --view'), kind and allocated bytes, plus the bytes of
non-zero data that no table references. The files an image names are
opened only inside its own directory or a --backing-root DIR.`, stdout)
	format := fs.String("format", "table", "output `FORMAT`: table or json")
	noBacking := fs.Bool("no-backing", false, "do not open backing files")
	roots := addBackingRoots(fs)
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if err := roots.check(); err != nil {
		return exitUsage, err
	}
	if len(paths) == 0 {
		return exitUsage, usagef("no image given")
	}
	if *format != "table" && *format != "json" {
		return exitUsage, usagef("--format must be table or json, not %q", *format)
	}
	var out []report.ImageInfo
	failed := 0
	for _, p := range paths {
		ii, err := scanner.Describe(ctx, p, roots.options(p, model.Options{NoBacking: *noBacking, BlockDevice: true}))
		if err != nil {
			if ctx.Err() != nil {
				return exitInterrupted, ctx.Err()
			}
			failed++
			ii.Errors = append(ii.Errors, err.Error())
			fmt.Fprintf(stderr, "imgaudit info: %v\n", err)
		}
		out = append(out, ii)
	}
	if *format == "json" {
		if err := report.WriteInfoJSON(stdout, out); err != nil {
			return exitUsage, err
		}
	} else {
		for i, ii := range out {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			report.WriteInfoTable(stdout, ii)
		}
	}
	switch {
	case failed == len(paths):
		return exitUsage, nil
	case failed > 0:
		return exitFindings, nil
	}
	return exitOK, nil
}
