package detectors

import (
	"bytes"
	"regexp/syntax"
	"slices"
	"strings"
	"testing"
)

// genericFamily is a generic rule in one of its real syntaxes: the text
// around a value is pre + value + post. tail marks the rules whose value
// ends their match (nothing after it is required).
type genericFamily struct {
	rule, pre, post string
	tail            bool
}

var genericFamilies = []genericFamily{
	{"config-password", "[database]\nuser = app\npassword = ", "\n", true},
	{"config-secret", "oauth:\n  client_secret: ", "\n", true},
	{"generic-api-key", "[service]\napi_key = \"", "\"\n", true},
	{"netrc-credentials", "machine git.corp.internal login deploy password ", "\n", true},
	{"url-credentials", "url = https://deploy:", "@git.corp.internal/app.git\n", false},
	{"database-url-credentials", "DATABASE_URL=postgres://app:", "@db.internal:5432/app\n", false},
	{"odbc-pwd", "Driver={ODBC Driver 18 for SQL Server};Server=db;Uid=sa;Pwd=", ";\n", true},
	{"pgpass-entry", "db.internal:5432:app:app:", "\n", false},
	{"xml-password", "<datasource><password>", "</password></datasource>\n", false},
	{"php-db-password", "define( 'DB_PASSWORD', '", "' );\n", false},
	{"shell-export-secret", "export DB_PASSWORD=", "\n", true},
	{"shell-pgpassword", "PGPASSWORD=", " psql -h db -U app\n", true},
}

// findIn scans text, raw and as UTF-16LE, in random binary context and
// returns the rule's findings in each encoding.
func findIn(e *Engine, g *gen, rule, text string) map[string][]Match {
	out := map[string][]Match{}
	for _, enc := range []string{"", "utf16le"} {
		b := []byte(text)
		if enc != "" {
			b = toUTF16(text)
		}
		buf, _ := wrap(g, b)
		out[enc] = matchesOf(e.FindAll(buf, ScanOptions{}), rule)
	}
	return out
}

func hasSecret(ms []Match, secret string) bool {
	return slices.ContainsFunc(ms, func(m Match) bool { return m.Fingerprint == fp(secret) })
}

// TestGenericRuleValuesStopAtControlBytes: a value never spans a NUL or
// another control byte, so in a NUL-separated string table a key and its
// value sit in the same string; a value that ends at a NUL (a C string) is
// still found.
func TestGenericRuleValuesStopAtControlBytes(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	const v = "Xk8pq2vLm4Zr7TnW" // fits every family's syntax and bounds
	for _, fam := range genericFamilies {
		g := newGen("ctl" + fam.rule)
		t.Run(fam.rule, func(t *testing.T) {
			if ms := findIn(e, g, fam.rule, fam.pre+v+fam.post); !hasSecret(ms[""], v) || !hasSecret(ms["utf16le"], v) {
				t.Fatalf("baseline %q not found: %v", fam.pre+v+fam.post, ms)
			}
			var neg []string
			for _, c := range []string{"\x00", "\x01", "\x0b", "\x1b", "\x7f"} {
				neg = append(neg, fam.pre+c+v+fam.post, fam.pre+v[:8]+c+v[8:]+fam.post)
			}
			// a gettext catalog or .rodata: the "value" is the next strings
			neg = append(neg, fam.pre+"\x00Linux-PAM\x00Database dump:\x00"+fam.post, strings.TrimRight(fam.pre, " ")+"\x00"+v+fam.post)
			for _, n := range neg {
				for enc, ms := range findIn(e, g, fam.rule, n) {
					if hasSecret(ms, v) || hasSecret(ms, "Linux-PAM") || hasSecret(ms, v[8:]) {
						t.Errorf("%q (%q) spans a control byte:\n%s", n, enc, describe(ms))
					}
				}
			}
			// a C string: key and value in one string, NUL after it
			pos := []string{"\x00" + fam.pre + v + fam.post + "\x00Database dump:\x00"}
			if fam.tail {
				pos = append(pos, "\x00"+fam.pre+v+"\x00Database dump:\x00", fam.pre+v+"\x1b[0m\n")
			}
			for _, p := range pos {
				for enc, ms := range findIn(e, g, fam.rule, p) {
					if !hasSecret(ms, v) {
						t.Errorf("%q (%q): value not found:\n%s", p, enc, describe(ms))
					}
				}
			}
		})
	}
}

// TestGenericRegexpsExcludeControlBytes: the regexps of the rules with a
// password check (and the other free-form values: npm and Docker tokens)
// match no control byte but the white space between a key and its value
// (tab, line breaks, form feed), so that their values stop at a NUL.
func TestGenericRegexpsExcludeControlBytes(t *testing.T) {
	isControl := func(r rune) bool {
		return r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\f' || r == 0x7f
	}
	var walk func(re *syntax.Regexp) bool
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			return false
		case syntax.OpCharClass:
			for i := 0; i < len(re.Rune); i += 2 {
				for c := re.Rune[i]; c <= re.Rune[i+1] && c <= 0x7f; c++ {
					if isControl(c) {
						return false
					}
				}
			}
		case syntax.OpAlternate:
			// (?:^|[^0-9A-Za-z]) is the boundary before a key, which
			// may be the NUL that ends the previous string
			if slices.ContainsFunc(re.Sub, func(s *syntax.Regexp) bool {
				return s.Op == syntax.OpBeginText || s.Op == syntax.OpBeginLine
			}) {
				return true
			}
		case syntax.OpLiteral:
			if slices.ContainsFunc(re.Rune, isControl) {
				return false
			}
		}
		for _, s := range re.Sub {
			if !walk(s) {
				return false
			}
		}
		return true
	}
	n := 0
	for _, r := range Builtin() {
		if r.Check != "password" && r.Check != "password-lax" && r.ID != "npmrc-auth-token" && r.ID != "docker-config-identitytoken" {
			continue
		}
		n++
		for _, src := range []string{r.Regex, r.Follow} {
			if src == "" {
				continue
			}
			re, err := syntax.Parse(src, syntax.Perl)
			if err != nil {
				t.Fatalf("%s: %v", r.ID, err)
			}
			if !walk(re) {
				t.Errorf("%s: %s can match a control byte", r.ID, src)
			}
		}
	}
	if n < 30 {
		t.Errorf("%d rules checked, want the 30 with password checks and more", n)
	}
}

// TestPasswordQualityText: a value is text.
func TestPasswordQualityText(t *testing.T) {
	for _, c := range []struct {
		v    []byte
		want bool
	}{
		{[]byte("Xk8#pq2!vL"), true}, {[]byte("Xk8#\tpq2!vL"), true}, {[]byte("Pässw0rd!"), true},
		{[]byte("Xk8#\x00pq2!vL"), false}, {[]byte("Xk8#pq2!vL\x7f"), false}, {[]byte("gecos\xfa"), false},
		{bytes.Repeat([]byte{0xe9}, 8), false},
	} {
		if got := passwordQuality(c.v, false, valueContext{}); got != c.want {
			t.Errorf("passwordQuality(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}
