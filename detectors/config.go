package detectors

import (
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is what a rules file holds: rules, allowlists that apply to every
// rule (or to the rules they name), and built-in rules to turn off.
type Config struct {
	Rules []Rule
	// Allowlists are the file's global [allowlist] / [[allowlists]]
	// tables; EngineOptions.Allowlists takes them.
	Allowlists []Allowlist
	// Disable lists the rule IDs of [extend] disabledRules.
	Disable []string
}

// ruleFile is the TOML layout shared by the built-in rule set and --rules
// files: Gitleaks' layout, plus imgaudit's own rule keys.
type ruleFile struct {
	Title      string          `toml:"title"`
	Extend     *tomlExtend     `toml:"extend"`
	Allowlist  *tomlAllowlist  `toml:"allowlist"`
	Allowlists []tomlAllowlist `toml:"allowlists"`
	Rules      []tomlRule      `toml:"rules"`
}

type tomlExtend struct {
	UseDefault    *bool    `toml:"useDefault"`
	Path          string   `toml:"path"`
	URL           string   `toml:"url"`
	DisabledRules []string `toml:"disabledRules"`
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
	SubsumedBy  []string `toml:"subsumedBy"`
	Tags        []string `toml:"tags"`
	// Gitleaks keys imgaudit cannot honour: decoded only to refuse them
	// with a reason.
	Path       *string `toml:"path"`
	Required   any     `toml:"required"`
	SkipReport *bool   `toml:"skipReport"`

	Allowlist  *tomlAllowlist  `toml:"allowlist"`
	Allowlists []tomlAllowlist `toml:"allowlists"`
}

type tomlAllowlist struct {
	Description string   `toml:"description"`
	Condition   string   `toml:"condition"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	Paths       []string `toml:"paths"`
	Stopwords   []string `toml:"stopwords"`
	TargetRules []string `toml:"targetRules"`
	Commits     []string `toml:"commits"`
}

// LoadConfig reads a rules file in Gitleaks' TOML layout:
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
//	tags = ["internal"]
//	[[rules.allowlists]]                  # or [rules.allowlist]
//	regexes = ['''^acme_test_''']
//
//	[allowlist]                           # or [[allowlists]]: every rule
//	paths = ['''^/usr/share/doc/''']
//	stopwords = ["example"]
//
// Every key is either honoured or refused with an error that names it:
// nothing in a rules file is silently ignored. See docs/rules.md.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read rules: %w", err)
	}
	return parseConfig(string(b), path, SeverityMedium, "custom", true)
}

// ParseBuiltinRules parses the built-in rule set's TOML
// (builtin_rules.toml), for internal/cmd/rulesgen, which writes it as Go:
// a file of rules only, severity high unless a rule says otherwise. The
// rules are not compiled here: TestBuiltinRules and
// TestBuiltinRegexpsCompile check them.
func ParseBuiltinRules(text, name string) ([]Rule, error) {
	c, err := parseConfig(text, name, SeverityHigh, "", false)
	if err != nil {
		return nil, err
	}
	if len(c.Allowlists) > 0 || len(c.Disable) > 0 {
		return nil, fmt.Errorf("rules %s: global allowlists and [extend] are not allowed here", name)
	}
	return c.Rules, nil
}

func parseConfig(text, name string, defSev Severity, defCat string, validate bool) (Config, error) {
	var f ruleFile
	md, err := toml.Decode(text, &f)
	if err != nil {
		return Config{}, fmt.Errorf("rules %s: %w", name, err)
	}
	var keys []string
	for _, k := range md.Undecoded() {
		// Inside a composite rule's [[rules.required]]: refused below,
		// with the reason.
		if len(k) < 3 || k[0] != "rules" || k[1] != "required" {
			keys = append(keys, k.String())
		}
	}
	if len(keys) > 0 {
		return Config{}, fmt.Errorf("rules %s: unknown key %s (see docs/rules.md for the keys imgaudit reads)", name, strings.Join(keys, ", "))
	}
	var c Config
	if e := f.Extend; e != nil {
		switch {
		case e.Path != "" || e.URL != "":
			return Config{}, fmt.Errorf("rules %s: [extend] path/url is not supported: pass the other file with another --rules", name)
		case e.UseDefault != nil && !*e.UseDefault:
			return Config{}, fmt.Errorf("rules %s: [extend] useDefault = false is not supported: the built-in rules are always loaded; turn rules off with --disable-rule or [extend] disabledRules", name)
		}
		c.Disable = e.DisabledRules
	}
	global := f.Allowlists
	if f.Allowlist != nil {
		global = append([]tomlAllowlist{*f.Allowlist}, global...)
	}
	for i, ta := range global {
		a, err := ta.allowlist(true)
		if err != nil {
			return Config{}, fmt.Errorf("rules %s: global allowlist #%d: %w", name, i+1, err)
		}
		c.Allowlists = append(c.Allowlists, a)
	}
	c.Rules = make([]Rule, 0, len(f.Rules))
	for i, tr := range f.Rules {
		r, err := tr.rule(defSev, defCat)
		if err == nil && validate {
			_, err = compileRule(r)
		}
		if err != nil {
			return Config{}, fmt.Errorf("rules %s: rule #%d (%s): %w", name, i+1, strings.TrimSpace(tr.ID), err)
		}
		c.Rules = append(c.Rules, r)
	}
	return c, nil
}

func (tr tomlRule) rule(defSev Severity, defCat string) (Rule, error) {
	switch {
	case tr.Path != nil:
		return Rule{}, fmt.Errorf("key path is not supported: it limits a rule to files whose path matches, and imgaudit also scans free blocks, unreferenced clusters and RAM, which have no path; exclude paths with an allowlist's paths instead")
	case tr.Required != nil:
		return Rule{}, fmt.Errorf("key required (composite rules) is not supported")
	case tr.SkipReport != nil:
		return Rule{}, fmt.Errorf("key skipReport is not supported")
	}
	r := Rule{
		ID: strings.TrimSpace(tr.ID), Description: tr.Description, Category: tr.Category,
		Severity: defSev, Keywords: tr.Keywords, Regex: tr.Regex, Follow: tr.Follow, SecretGroup: tr.SecretGroup,
		Entropy: tr.Entropy, Check: tr.Check, Before: defaultBefore, After: defaultAfter,
		NoUTF16: tr.NoUTF16, Memory: tr.Memory, SubsumedBy: tr.SubsumedBy, Tags: tr.Tags,
	}
	if r.Category == "" {
		r.Category = defCat
	}
	if tr.Severity != "" {
		s, err := ParseSeverity(tr.Severity)
		if err != nil {
			return Rule{}, err
		}
		r.Severity = s
	}
	if tr.Before != nil {
		r.Before = *tr.Before
	}
	if tr.After != nil {
		r.After = *tr.After
	}
	tas := tr.Allowlists
	if tr.Allowlist != nil {
		tas = append([]tomlAllowlist{*tr.Allowlist}, tas...)
	}
	for i, ta := range tas {
		a, err := ta.allowlist(false)
		if err != nil {
			return Rule{}, fmt.Errorf("allowlist #%d: %w", i+1, err)
		}
		r.Allowlists = append(r.Allowlists, a)
	}
	return r, nil
}

func (ta tomlAllowlist) allowlist(global bool) (Allowlist, error) {
	if len(ta.Commits) > 0 {
		return Allowlist{}, fmt.Errorf("key commits is not supported: imgaudit scans images, not git history")
	}
	if len(ta.TargetRules) > 0 && !global {
		return Allowlist{}, fmt.Errorf("key targetRules belongs in a global [[allowlists]] table, not in a rule's")
	}
	a := Allowlist{
		Description: ta.Description, Condition: ta.Condition, RegexTarget: ta.RegexTarget,
		Regexes: ta.Regexes, Paths: ta.Paths, Stopwords: ta.Stopwords, TargetRules: ta.TargetRules,
	}
	if _, err := compileAllowlist(a); err != nil {
		return Allowlist{}, err
	}
	return a, nil
}
