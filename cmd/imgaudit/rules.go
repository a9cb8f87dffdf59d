package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/imgaudit/imgaudit/downgrade"
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
	published := fs.Bool("published-keys", false, "list instead the keys that software publishes (kernel and library self-test keys, openssl speed's, the AES standard's examples), which scans report at severity info wherever they are found: source, rule, fingerprint and key fingerprint")
	if _, err := parseInterspersed(fs, args); err != nil {
		return exitUsage, err
	}
	if *format != "table" && *format != "json" {
		return exitUsage, usagef("--format must be table or json, not %q", *format)
	}
	if *published {
		return listPublishedKeys(stdout, *format == "json")
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

// listPublishedKeys prints the list of published keys.
func listPublishedKeys(stdout io.Writer, asJSON bool) (int, error) {
	sources := downgrade.NewKnownPublic().Sources()
	if asJSON {
		type key struct {
			Rule           string `json:"rule"`
			Fingerprint    string `json:"fingerprint"`
			KeyFingerprint string `json:"key_fingerprint,omitempty"`
		}
		type source struct {
			ID          string `json:"id"`
			Description string `json:"description"`
			From        string `json:"from"`
			Keys        []key  `json:"keys"`
		}
		out := []source{}
		for _, s := range sources {
			src := source{ID: s.ID, Description: s.Description, From: s.From, Keys: []key{}}
			for _, k := range s.Keys {
				src.Keys = append(src.Keys, key{k.Rule, k.Fingerprint, k.KeyFingerprint})
			}
			out = append(out, src)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return exitOK, enc.Encode(out)
	}
	n := 0
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tRULE\tFINGERPRINT\tKEY FINGERPRINT")
	for _, s := range sources {
		for _, k := range s.Keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, k.Rule, k.Fingerprint, cmp.Or(k.KeyFingerprint, "-"))
			n++
		}
	}
	tw.Flush()
	for _, s := range sources {
		fmt.Fprintf(stdout, "%s: %s (%s)\n", s.ID, s.Description, s.From)
	}
	fmt.Fprintf(stdout, "%d published keys\n", n)
	return exitOK, nil
}
