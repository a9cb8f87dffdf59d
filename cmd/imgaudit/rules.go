package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/imgaudit/imgaudit/scanner"
)

func cmdRules(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("rules", "rules [--rules FILE] [--format table|json]",
		`List the rules: the built-in detection rules, those from --rules files, and
the scanner's own rules (rollback risks, cloned identity), with their ID
(for --enable-rule and --disable-rule), severity, category and description.`, stdout)
	var ruleFiles stringList
	fs.Var(&ruleFiles, "rules", "TOML `FILE` of extra rules (repeatable)")
	format := fs.String("format", "table", "output `FORMAT`: table or json")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage, err
	}
	c, err := loadRules(ruleFiles)
	if err != nil {
		return exitUsage, err
	}
	// Building an engine validates the rules (regexes compile, IDs unique).
	if _, err := buildEngine(c, nil, 1); err != nil {
		return exitUsage, err
	}
	rows := append(scanner.DetectorRules(c.Rules), scanner.DerivedRules()...)
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return exitOK, enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tCATEGORY\tDESCRIPTION")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Severity, r.Category, r.Description)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d rules\n", len(rows))
	return exitOK, nil
}
