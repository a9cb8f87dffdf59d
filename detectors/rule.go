package detectors

import (
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// Rule is one detector: literal keywords gate a validator (a regular
// expression on a bounded window around each keyword hit and/or a named
// structural check), and the validator extracts the secret value that the
// fingerprint is computed from.
type Rule struct {
	ID          string
	Description string
	Category    string
	Severity    Severity
	// Keywords are literal anchors for the prefilter, matched ASCII
	// case-insensitively. Each must be at least 3 bytes (4 or more keeps the
	// prefilter at full speed). A rule without keywords runs its regex over
	// every byte (slow; allowed for user rules only).
	Keywords []string
	// Regex (RE2 syntax) is run over the window around a keyword hit; a match
	// counts only if it overlaps the keyword occurrence. Named groups "user",
	// "host", "account", "keyid" and "email" are copied into Match.Meta (they
	// are the non-secret halves of pairs).
	Regex string
	// Follow (RE2, optional) is a cheap gate: it must match at the end of
	// the keyword occurrence (it should start with ^) before Regex runs.
	// Built-in rules use it to skip the frequent keyword hits that cannot
	// lead to a match (e.g. "password_min_length").
	Follow string
	// SecretGroup is the capture group holding the secret value (0: the
	// whole match).
	SecretGroup int
	// Entropy is the minimum Shannon entropy (bits per byte) of the secret.
	Entropy float64
	// Check names an extra validator: "pem", "ppk", "github-crc", "jwt",
	// "password", "docker-auth", "crypt", "pem-value", "kube-key-data",
	// "keytab", "aes-schedule", "rsa-der". See checks.go.
	Check string
	// Before and After bound the window around a keyword hit: the match may
	// start at most Before bytes before the keyword and end at most After
	// bytes after its end (characters, for UTF-16LE hits). The window start is
	// moved up to the last line break before the keyword.
	Before, After int
	// NoUTF16 turns off the UTF-16LE variant of a text rule.
	NoUTF16 bool
	// Memory marks memory-structure rules (AES key schedules, DER keys),
	// which run only when ScanOptions.Memory is set.
	Memory bool

	// builtin marks the embedded rules, whose regexps are compiled on
	// first use (see compiledRule.regexps); every other rule is compiled,
	// and so checked, by NewEngine.
	builtin bool
}

// Window defaults, and the caps that bound Margin.
const (
	defaultBefore = 32
	defaultAfter  = 256
	maxBefore     = 1024
	// maxAfter bounds how far a match may reach past its keyword: an
	// armoured 4096-bit RSA private key (PKCS#8 PEM) is about 3.3 KB, a
	// JSON-escaped one about 3.4 KB, a PGP block with a 4096-bit key and
	// subkey about 7 KB; 12 KiB covers all of them with room for headers and
	// 8192-bit keys.
	maxAfter = 12 << 10
)

// ruleFile is the TOML layout shared by the built-in rule set and --rules files.
type ruleFile struct {
	Rules []tomlRule `toml:"rules"`
}

type tomlRule struct {
	ID          string   `toml:"id"`
	Description string   `toml:"description"`
	Category    string   `toml:"category"`
	Severity    string   `toml:"severity"`
	Keywords    []string `toml:"keywords"`
	Regex       string   `toml:"regex"`
	Follow      string   `toml:"follow"`
	SecretGroup int      `toml:"secretGroup"`
	Entropy     float64  `toml:"entropy"`
	Check       string   `toml:"check"`
	Before      *int     `toml:"before"`
	After       *int     `toml:"after"`
	NoUTF16     bool     `toml:"noUTF16"`
	Memory      bool     `toml:"memory"`
}

// Builtin returns the built-in rule set (a fresh copy each call): the rules
// of builtin_rules.toml, compiled into Go (builtin_rules_gen.go, which
// TestBuiltinRulesGenerated keeps in step) so that start-up parses no TOML.
func Builtin() []Rule {
	// The built-in set is validated by its tests (TestBuiltinRules,
	// TestBuiltinRegexpsCompile); validating it here would slow every
	// start-up.
	rules := builtinRules()
	for i := range rules {
		rules[i].builtin = true
	}
	return rules
}

// LoadRulesFile reads user rules from a TOML file in the spirit of Gitleaks:
//
//	[[rules]]
//	id = "acme-api-token"                 # required, unique
//	description = "ACME API token"
//	regex = '''acme_[a-z0-9]{32}'''       # RE2; required unless check is set
//	keywords = ["acme_"]                  # literal anchors (>= 3 bytes each)
//	secretGroup = 0                       # capture group with the secret
//	entropy = 3.0                         # minimum Shannon entropy of the secret
//	severity = "high"                     # low|medium|high|critical (default medium)
//	category = "custom"                   # default "custom"
//	before = 32                           # optional window bounds (see Rule)
//	after = 256
//	follow = '^\s*='                     # optional gate at the keyword's end
//
// Unknown keys (Gitleaks' allowlist, tags, path…) are ignored.
func LoadRulesFile(path string) ([]Rule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	return parseRules(string(b), path, SeverityMedium, "custom", true)
}

func parseRules(text, name string, defSev Severity, defCat string, validate bool) ([]Rule, error) {
	var f ruleFile
	if _, err := toml.Decode(text, &f); err != nil {
		return nil, fmt.Errorf("rules %s: %w", name, err)
	}
	out := make([]Rule, 0, len(f.Rules))
	for i, tr := range f.Rules {
		r := Rule{
			ID: strings.TrimSpace(tr.ID), Description: tr.Description, Category: tr.Category,
			Severity: defSev, Keywords: tr.Keywords, Regex: tr.Regex, Follow: tr.Follow, SecretGroup: tr.SecretGroup,
			Entropy: tr.Entropy, Check: tr.Check, Before: defaultBefore, After: defaultAfter,
			NoUTF16: tr.NoUTF16, Memory: tr.Memory,
		}
		if r.Category == "" {
			r.Category = defCat
		}
		if tr.Severity != "" {
			s, err := ParseSeverity(tr.Severity)
			if err != nil {
				return nil, fmt.Errorf("rules %s: rule #%d (%s): %w", name, i+1, r.ID, err)
			}
			r.Severity = s
		}
		if tr.Before != nil {
			r.Before = *tr.Before
		}
		if tr.After != nil {
			r.After = *tr.After
		}
		if validate {
			if _, err := compileRule(r); err != nil {
				return nil, fmt.Errorf("rules %s: rule #%d: %w", name, i+1, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}
