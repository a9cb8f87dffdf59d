package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/mdblock"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

const docPath = "../../../docs/rules.md"

// TestRulesDocUpToDate: docs/rules.md lists every rule as rulesdoc writes
// it; run `go generate ./report` after changing the rules.
func TestRulesDocUpToDate(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := mdblock.Replace(doc, ruleBlock())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatal("docs/rules.md is out of date: run go generate ./report")
	}
	// Every rule has the anchor that SARIF's helpUri names.
	ids := []string{}
	for _, r := range detectors.Builtin() {
		ids = append(ids, r.ID)
	}
	for _, r := range scanner.DerivedRules() {
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		if !bytes.Contains(doc, []byte(`<a id="`+report.RuleAnchor(id)+`"></a>`)) {
			t.Errorf("docs/rules.md has no anchor for %s", id)
		}
	}
}

func TestRewrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.md")
	in := "# Rules\n\nintro\n\n" + begin + "stale\n" + end + "\nafter\n"
	if err := os.WriteFile(p, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rewrite(p); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(p)
	s := string(out)
	if !strings.HasPrefix(s, "# Rules\n\nintro\n\n"+begin) || !strings.HasSuffix(s, end+"\nafter\n") || strings.Contains(s, "stale") || !strings.Contains(s, "`rollback-host-key`") {
		t.Errorf("rewrite:\n%s", s)
	}
	if err := os.WriteFile(p, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rewrite(p); err == nil {
		t.Error("a file without markers was accepted")
	}
}
