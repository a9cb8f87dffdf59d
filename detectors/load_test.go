package detectors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadRules(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	acme := write("acme.toml", "[[rules]]\nid = \"acme-token\"\nregex = '''acme_[a-z0-9]{32}'''\nkeywords = [\"acme_\"]\n"+
		"[allowlist]\nstopwords = [\"example\"]\n[extend]\ndisabledRules = [\"github-pat\"]\n")
	other := write("other.toml", "[[rules]]\nid = \"other-token\"\nregex = '''other_[a-z0-9]{32}'''\nkeywords = [\"other_\"]\n")
	bad := write("bad.toml", "[[rules]]\nid = \"x\"\npath = '''^/etc/'''\nregex = 'x'\n")
	builtin := len(Builtin())
	for _, tc := range []struct {
		name       string
		files      []string
		rules      int
		allowlists int
		disable    []string
		err        string // substring of the error: it names the file
	}{
		{"built-in only", nil, builtin, 0, nil, ""},
		{"two files", []string{acme, other}, builtin + 2, 1, []string{"github-pat"}, ""},
		{"refused key", []string{other, bad}, 0, 0, nil, bad},
		{"missing file", []string{filepath.Join(dir, "missing.toml")}, 0, 0, nil, "missing.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadRules(tc.files)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Rules) != tc.rules || len(c.Allowlists) != tc.allowlists || strings.Join(c.Disable, ",") != strings.Join(tc.disable, ",") {
				t.Errorf("%d rules, %d allowlists, disable %v; want %d, %d, %v", len(c.Rules), len(c.Allowlists), c.Disable, tc.rules, tc.allowlists, tc.disable)
			}
			for _, ids := range [][]string{{"github-pat"}, tc.disable} {
				if id, ok := c.UnknownRule(ids); ok {
					t.Errorf("UnknownRule(%v) = %q", ids, id)
				}
			}
			if id, ok := c.UnknownRule([]string{"github-pat", "no-such-rule", "other"}); !ok || id != "no-such-rule" {
				t.Errorf("UnknownRule = %q, %v; want no-such-rule", id, ok)
			}
			if _, err := c.NewEngine([]string{"aws-access-key-pair"}, 1); err != nil {
				t.Errorf("NewEngine: %v", err)
			}
		})
	}
}
