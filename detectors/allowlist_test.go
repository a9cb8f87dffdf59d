package detectors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loadTestConfig writes text as a rules file and loads it.
func loadTestConfig(t *testing.T, text string) (Config, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(p)
}

// configEngine builds the built-in rules plus a rules file's.
func configEngine(t *testing.T, text string, opts EngineOptions) *Engine {
	t.Helper()
	c, err := loadTestConfig(t, text)
	if err != nil {
		t.Fatal(err)
	}
	opts.Allowlists = c.Allowlists
	opts.Disable = append(opts.Disable, c.Disable...)
	e, err := NewEngine(append(Builtin(), c.Rules...), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const acmeRule = `
[[rules]]
id = "acme-token"
description = "ACME token"
regex = '''(acme|ACME)_([0-9a-zA-Z]{24})'''
secretGroup = 2
keywords = ["acme_"]
`

// TestAllowlists: each allowlist criterion drops what it should and keeps
// the rest; path criteria are left to the caller through AllowedAt.
func TestAllowlists(t *testing.T) {
	g := newGen("allowlist")
	tok := "Zz" + g.s(csAlnum, 22)
	testTok := "TEST" + g.s(csAlnum, 20)
	gh := g.githubToken("ghp_")
	text := "a=acme_" + tok + "\nb=acme_" + testTok + " # fixture\nc=ACME_" + g.s(csAlnum, 24) + "\nGH=" + gh + "\n"
	type want struct {
		rule    string
		secret  string
		present bool
		paths   map[string]bool // path -> AllowedAt, for a present match
	}
	cases := []struct {
		name   string
		config string
		wants  []want
	}{
		{"no allowlist", acmeRule, []want{{"acme-token", tok, true, map[string]bool{"/etc/x": false, "": false}}, {"acme-token", testTok, true, nil}, {"github-pat", gh, true, nil}}},
		{"rule regexes match the secret", acmeRule + "[rules.allowlist]\nregexes = ['''^TEST''']\n",
			[]want{{"acme-token", testTok, false, nil}, {"acme-token", tok, true, nil}}},
		{"regexTarget match sees the whole match", acmeRule + "[[rules.allowlists]]\nregexTarget = \"match\"\nregexes = ['''^ACME_''']\n",
			[]want{{"acme-token", tok, true, nil}, {"acme-token", testTok, true, nil}}},
		{"regexTarget secret does not see the prefix", acmeRule + "[[rules.allowlists]]\nregexes = ['''^acme_''']\n",
			[]want{{"acme-token", tok, true, nil}}},
		{"regexTarget line sees the comment", acmeRule + "[[rules.allowlists]]\nregexTarget = \"line\"\nregexes = ['''# fixture$''']\n",
			[]want{{"acme-token", testTok, false, nil}, {"acme-token", tok, true, nil}}},
		{"stopwords are case-insensitive substrings of the secret", acmeRule + "[rules.allowlist]\nstopwords = [\"test\"]\n",
			[]want{{"acme-token", testTok, false, nil}, {"acme-token", tok, true, nil}}},
		{"global allowlist covers built-in rules", acmeRule + "[allowlist]\nregexes = ['''^ghp_''']\n",
			[]want{{"github-pat", gh, false, nil}, {"acme-token", tok, true, nil}}},
		{"global targetRules limits it", acmeRule + "[[allowlists]]\ntargetRules = [\"acme-token\"]\nregexes = ['''^ghp_|^TEST''']\n",
			[]want{{"github-pat", gh, true, nil}, {"acme-token", testTok, false, nil}}},
		{"AND needs every criterion", acmeRule + "[rules.allowlist]\ncondition = \"AND\"\nregexes = ['''^TEST''']\nstopwords = [\"zz\"]\n",
			[]want{{"acme-token", testTok, true, nil}, {"acme-token", tok, true, nil}}},
		{"AND with all criteria met", acmeRule + "[rules.allowlist]\ncondition = \"AND\"\nregexes = ['''^Zz''']\nstopwords = [\"zz\"]\n",
			[]want{{"acme-token", tok, false, nil}, {"acme-token", testTok, true, nil}}},
		{"paths are the caller's", acmeRule + "[rules.allowlist]\npaths = ['''^/srv/fixtures/''']\n",
			[]want{{"acme-token", tok, true, map[string]bool{"/srv/fixtures/a.env": true, "/etc/a.env": false, "": false}}}},
		{"AND paths apply only where the regex matched", acmeRule + "[rules.allowlist]\ncondition = \"AND\"\nregexes = ['''^TEST''']\npaths = ['''^/srv/''']\n",
			[]want{{"acme-token", testTok, true, map[string]bool{"/srv/a": true, "/etc/a": false}}, {"acme-token", tok, true, map[string]bool{"/srv/a": false}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := configEngine(t, c.config, EngineOptions{}).FindAll([]byte(text), ScanOptions{})
			for _, w := range c.wants {
				var got *Match
				for i := range ms {
					if ms[i].RuleID == w.rule && ms[i].Fingerprint == fp(w.secret) {
						got = &ms[i]
					}
				}
				if (got != nil) != w.present {
					t.Errorf("%s %s: present %v, want %v; matches:\n%s", w.rule, w.secret[:4], got != nil, w.present, describe(ms))
					continue
				}
				for path, allowed := range w.paths {
					if a := got.AllowedAt(path); a != allowed {
						t.Errorf("%s %s: AllowedAt(%q) = %v, want %v", w.rule, w.secret[:4], path, a, allowed)
					}
				}
			}
		})
	}
}

// TestRulesFileRefusals: every key a rules file may hold is honoured or
// refused with an error that names it.
func TestRulesFileRefusals(t *testing.T) {
	cases := []struct{ name, config, want string }{
		{"unknown rule key", acmeRule + "colour = \"red\"\n", "unknown key rules.colour"},
		{"unknown top-level table", acmeRule + "[output]\nformat = \"json\"\n", "unknown key output"},
		{"unknown allowlist key", acmeRule + "[rules.allowlist]\nregex = 'x'\n", "unknown key rules.allowlist.regex"},
		{"rule path", acmeRule + "path = '''\\.env$'''\n", "key path is not supported"},
		{"composite rule", acmeRule + "[[rules.required]]\nid = \"github-pat\"\n", "key required"},
		{"skipReport", acmeRule + "skipReport = true\n", "key skipReport"},
		{"commits", "[allowlist]\ncommits = [\"abc\"]\n", "key commits is not supported"},
		{"regexTarget", "[allowlist]\nregexTarget = \"blob\"\nregexes = ['x']\n", "regexTarget \"blob\""},
		{"condition", "[allowlist]\ncondition = \"XOR\"\nregexes = ['x']\n", "condition \"XOR\""},
		{"empty allowlist", "[allowlist]\ndescription = \"nothing\"\n", "no regexes, paths or stopwords"},
		{"bad allowlist regex", "[allowlist]\nregexes = ['(']\n", "regexes"},
		{"targetRules in a rule", acmeRule + "[rules.allowlist]\ntargetRules = [\"x\"]\nregexes = ['x']\n", "targetRules belongs in a global"},
		{"extend path", "[extend]\npath = \"other.toml\"\n", "[extend] path/url is not supported"},
		{"extend useDefault false", "[extend]\nuseDefault = false\n", "useDefault = false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadTestConfig(t, c.config)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	// Honoured: [extend] useDefault = true and disabledRules; unknown IDs
	// in targetRules, subsumedBy or disabledRules fail at NewEngine.
	c, err := loadTestConfig(t, "title = \"t\"\n[extend]\nuseDefault = true\ndisabledRules = [\"github-pat\"]\n")
	if err != nil || len(c.Disable) != 1 || c.Disable[0] != "github-pat" {
		t.Fatalf("extend: %+v, %v", c, err)
	}
	for _, bad := range []string{
		"[[allowlists]]\ntargetRules = [\"no-such-rule\"]\nregexes = ['x']\n",
		acmeRule + "subsumedBy = [\"no-such-rule\"]\n",
		"[extend]\ndisabledRules = [\"no-such-rule\"]\n",
	} {
		c, err := loadTestConfig(t, bad)
		if err != nil {
			t.Fatalf("%q: %v", bad, err)
		}
		if _, err := NewEngine(append(Builtin(), c.Rules...), EngineOptions{Allowlists: c.Allowlists, Disable: c.Disable}); err == nil || !strings.Contains(err.Error(), "no-such-rule") {
			t.Errorf("%q: NewEngine error %v", bad, err)
		}
	}
}

// TestSubsumedKeyID: an AWS key ID next to its secret is part of the pair's
// finding, in ASCII and UTF-16LE, wherever the chunks are cut; alone, or
// with the pair rule off, it is a finding of its own.
func TestSubsumedKeyID(t *testing.T) {
	g := newGen("subsumed")
	id, sec := "AKIA"+g.s(csUpperD, 16), g.s(csB64, 40)
	pair := "[default]\naws_access_key_id = " + id + "\naws_secret_access_key = " + sec + "\n"
	lone := "export AWS_ACCESS_KEY_ID=AKIA" + g.s(csUpperD, 16) + "\n"
	pad := string(g.bytes(300))
	cases := []struct {
		name        string
		text        []byte
		disable     []string
		pairs, ids  int
		chunkCutMax int // try every chunk size up to this (0: default only)
	}{
		{"pair", []byte(pad + pair + pad), nil, 1, 0, 120},
		{"pair in UTF-16LE", append([]byte(pad), toUTF16(pair)...), nil, 1, 0, 0},
		{"lone key ID", []byte(pad + lone), nil, 0, 1, 0},
		{"pair rule off", []byte(pair), []string{"aws-access-key-pair"}, 0, 1, 0},
		{"pair and a lone ID", []byte(pair + pad + lone), nil, 1, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sizes := []int{0}
			for cs := 40; cs <= c.chunkCutMax; cs += 7 {
				sizes = append(sizes, cs)
			}
			for _, cs := range sizes {
				ms := scanRanges(t, testEngine(t, EngineOptions{Disable: c.disable, ChunkSize: cs, Workers: 2}), c.text, []Range{{0, int64(len(c.text))}}, ScanOptions{})
				if p, i := len(matchesOf(ms, "aws-access-key-pair")), len(matchesOf(ms, "aws-access-key-id")); p != c.pairs || i != c.ids {
					t.Errorf("chunk size %d: %d pairs and %d key IDs, want %d and %d:\n%s", cs, p, i, c.pairs, c.ids, describe(ms))
				}
			}
		})
	}
}
