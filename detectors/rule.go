package detectors

import "fmt"

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
	// SubsumedBy names rules whose match, covering this rule's secret,
	// makes this match redundant: an AWS key ID next to its secret belongs
	// to the key pair's finding, not to a finding of its own.
	SubsumedBy []string
	// Allowlists drop matches of this rule (Gitleaks' [rules.allowlist]).
	Allowlists []Allowlist
	// Tags are free-form labels (Gitleaks' tags); `imgaudit rules` lists
	// them.
	Tags []string

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

// builtin_rules_gen.go is builtin_rules.toml as Go.
//go:generate go run ../internal/cmd/rulesgen builtin_rules.toml builtin_rules_gen.go

// Builtin returns the built-in rule set (a fresh copy each call): the rules
// of builtin_rules.toml, compiled into Go (builtin_rules_gen.go, written by
// `go generate ./detectors`; TestBuiltinRulesGenerated keeps it in step)
// so that start-up parses no TOML.
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

// LoadRulesFile reads the rules of a TOML rules file (see LoadConfig). A
// file that also holds global allowlists or disabled rules is refused:
// dropping them would report what the file allowlists; use LoadConfig.
func LoadRulesFile(path string) ([]Rule, error) {
	c, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if len(c.Allowlists) > 0 || len(c.Disable) > 0 {
		return nil, fmt.Errorf("rules %s: global allowlists and [extend] disabledRules need LoadConfig", path)
	}
	return c.Rules, nil
}
