package main

import (
	"regexp"
	"strings"
	"testing"
)

// Every command: --help goes to stdout with exit 0 and shows flags the
// way they are typed, aligned; an unknown flag is one error line and a
// hint on stderr.
func TestHelpAndFlagErrors(t *testing.T) {
	multiLetterSingleDash := regexp.MustCompile(`(^|[\s,])-[a-z][a-z-]+`)
	for _, cmd := range []string{"scan", "info", "extract", "registry", "merge", "rules"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, errs := runCLI(t, cmd, "--help")
			if code != exitOK || errs != "" || !strings.HasPrefix(out, "Usage: imgaudit "+cmd) {
				t.Fatalf("--help: exit %d, stderr %q, stdout %q", code, errs, out)
			}
			_, flags, ok := strings.Cut(out, "\nFlags:\n")
			if !ok {
				t.Fatalf("no Flags section:\n%s", out)
			}
			descCol := -1
			for _, line := range strings.Split(strings.TrimRight(flags, "\n"), "\n") {
				if multiLetterSingleDash.MatchString(strings.Fields(line)[0]) {
					t.Errorf("flag shown with one dash: %q", line)
				}
				if !strings.HasPrefix(line, "  -") {
					// a wrapped description: it starts in the column
					if col := len(line) - len(strings.TrimLeft(line, " ")); descCol >= 0 && col != descCol {
						t.Errorf("continuation at column %d, descriptions at %d: %q", col, descCol, line)
					}
					continue
				}
				if i := strings.Index(line[2:], "  "); i >= 0 {
					rest := line[2+i:]
					col := 2 + i + len(rest) - len(strings.TrimLeft(rest, " "))
					if descCol < 0 {
						descCol = col
					} else if col != descCol {
						t.Errorf("description at column %d, others at %d: %q", col, descCol, line)
					}
				}
				if len(line) > 80 {
					t.Errorf("line longer than 80 columns: %q", line)
				}
			}

			code, out, errs = runCLI(t, cmd, "--frobnicate", "x")
			want := "imgaudit " + cmd + ": unknown flag --frobnicate\nRun 'imgaudit " + cmd + " --help' for usage.\n"
			if code != exitUsage || out != "" || errs != want {
				t.Errorf("unknown flag: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
			}
		})
	}
	for _, cmd := range []string{"scan", "registry", "merge"} {
		code, _, errs := runCLI(t, cmd, "--fail-on", "severe", "x")
		if code != exitUsage || !strings.Contains(errs, "low, medium, high, critical or none") {
			t.Errorf("%s --fail-on severe: exit %d, %q", cmd, code, errs)
		}
	}
}
