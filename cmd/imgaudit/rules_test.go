package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/downgrade"
)

// The user-rule example in docs/rules.md works as documented: it loads, is
// listed, finds its token in an image and can be disabled again.
func TestDocumentedUserRule(t *testing.T) {
	doc := string(readAll(t, repoFile(t, "docs/rules.md")))
	m := regexp.MustCompile("(?s)```toml\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("docs/rules.md has no toml example")
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.toml")
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(rules, []byte(m[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	token := "acme_" + "q7w2e9r4t1y8u3i6o5p0a2s7d4f9g1h3"
	data := make([]byte, 1<<20)
	copy(data[300000:], "ACME_TOKEN="+token+"\n")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "rules", "--rules", rules); code != 0 || !strings.Contains(out, "acme-api-token") {
		t.Fatalf("rules: exit %d %s %s", code, out, errs)
	}
	code, out, errs := runCLI(t, "scan", "--no-progress", "--format", "json", "--rules", rules, img)
	if code != exitFindings || !strings.Contains(out, `"rule": "acme-api-token"`) {
		t.Fatalf("scan: exit %d, stderr %s\n%s", code, errs, out)
	}
	if strings.Contains(out, token) {
		t.Fatal("report contains the token")
	}
	if code, out, _ := runCLI(t, "scan", "--no-progress", "--format", "json", "--rules", rules, "--disable-rule", "acme-api-token", img); code != exitOK || strings.Contains(out, "acme-api-token") {
		t.Fatalf("disabled rule still reports: exit %d", code)
	}
}

// Every TOML example in docs/rules.md loads: the documented keys are the
// keys imgaudit honours.
func TestDocumentedRulesFilesLoad(t *testing.T) {
	doc := string(readAll(t, repoFile(t, "docs/rules.md")))
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("docs/rules.md has %d toml examples, want the rule and the allowlist ones", len(blocks))
	}
	for i, m := range blocks {
		p := filepath.Join(t.TempDir(), "rules.toml")
		if err := os.WriteFile(p, []byte(m[1]), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errs := runCLI(t, "rules", "--rules", p); code != 0 {
			t.Errorf("example %d does not load: %s", i+1, errs)
		}
	}
}

// TestRulesPublishedKeys: `rules --published-keys` lists every published
// key, in the table and in JSON, as the list downgrade holds them.
func TestRulesPublishedKeys(t *testing.T) {
	var want []string
	for _, s := range downgrade.NewKnownPublic().Sources() {
		for _, k := range s.Keys {
			want = append(want, s.ID+" "+k.Fingerprint)
		}
	}
	code, out, errs := runCLI(t, "rules", "--published-keys")
	if code != 0 || !strings.HasSuffix(out, fmt.Sprintf("%d published keys\n", len(want))) {
		t.Fatalf("exit %d, stderr %s\n%s", code, errs, out)
	}
	for _, w := range want {
		id, fp, _ := strings.Cut(w, " ")
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+\S+\s+` + regexp.QuoteMeta(fp) + `\s`).MatchString(out) {
			t.Errorf("table lacks %s", w)
		}
	}
	code, out, _ = runCLI(t, "rules", "--published-keys", "--format", "json")
	var list []struct {
		ID   string `json:"id"`
		Keys []struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("json: exit %d, %v", code, err)
	}
	var got []string
	for _, s := range list {
		for _, k := range s.Keys {
			got = append(got, s.ID+" "+k.Fingerprint)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("json lists %q, want %q", got, want)
	}
}
