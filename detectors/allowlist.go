package detectors

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Allowlist drops matches, as Gitleaks' [allowlist] and [rules.allowlist]
// tables do. A match is allowlisted when any criterion matches (Condition
// "OR", the default) or when every criterion given matches ("AND"):
//
//   - Regexes: RE2 patterns matched against the RegexTarget: the secret
//     value ("secret", the default), the whole regex match ("match"), or
//     the line(s) holding the match ("line");
//   - Stopwords: substrings of the secret value (ASCII case-insensitive);
//   - Paths: RE2 patterns matched against the guest path of each location
//     (the scanner's job: see Match.AllowedAt). A location without a path
//     (free blocks, unreferenced clusters, RAM) is never allowlisted by
//     path.
type Allowlist struct {
	Description string
	Condition   string // "OR" (default) or "AND"
	RegexTarget string // "secret" (default), "match" or "line"
	Regexes     []string
	Paths       []string
	Stopwords   []string
	// TargetRules limits a global allowlist to these rule IDs (all rules
	// when empty).
	TargetRules []string
}

// Regex targets.
const (
	targetSecret = iota
	targetMatch
	targetLine
)

type compiledAllowlist struct {
	src       Allowlist // as given, for AllowlistKeys
	and       bool
	target    int
	regexes   []*regexp.Regexp
	paths     []*regexp.Regexp
	stopwords [][]byte // folded to lower case
	rules     []string
}

func compileAllowlist(a Allowlist) (*compiledAllowlist, error) {
	c := &compiledAllowlist{src: a, rules: a.TargetRules}
	switch strings.ToUpper(a.Condition) {
	case "", "OR":
	case "AND":
		c.and = true
	default:
		return nil, fmt.Errorf("condition %q: want OR or AND", a.Condition)
	}
	switch a.RegexTarget {
	case "", "secret":
	case "match":
		c.target = targetMatch
	case "line":
		c.target = targetLine
	default:
		return nil, fmt.Errorf("regexTarget %q: want secret, match or line", a.RegexTarget)
	}
	if len(a.Regexes)+len(a.Paths)+len(a.Stopwords) == 0 {
		return nil, fmt.Errorf("allowlist has no regexes, paths or stopwords")
	}
	for _, s := range a.Regexes {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("regexes: %w", err)
		}
		c.regexes = append(c.regexes, re)
	}
	for _, s := range a.Paths {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, fmt.Errorf("paths: %w", err)
		}
		c.paths = append(c.paths, re)
	}
	for _, s := range a.Stopwords {
		if s == "" {
			return nil, fmt.Errorf("stopwords: empty stopword")
		}
		c.stopwords = append(c.stopwords, bytes.ToLower([]byte(s)))
	}
	return c, nil
}

// appliesTo reports whether a global allowlist covers rule id.
func (c *compiledAllowlist) appliesTo(id string) bool {
	if len(c.rules) == 0 {
		return true
	}
	for _, r := range c.rules {
		if r == id {
			return true
		}
	}
	return false
}

// check evaluates the criteria that need the secret. drop means the match
// is allowlisted whatever its path; otherwise paths, when not nil, are the
// path patterns that allowlist a location of it.
func (c *compiledAllowlist) check(f *found) (drop bool, paths []*regexp.Regexp) {
	content := len(c.regexes)+len(c.stopwords) > 0
	var regexHit, stopHit bool
	if len(c.regexes) > 0 {
		target := f.secret
		switch c.target {
		case targetMatch:
			target = f.match
		case targetLine:
			target = f.line
		}
		if target == nil {
			target = f.secret // binary secrets have no match or line
		}
		for _, re := range c.regexes {
			if re.Match(target) {
				regexHit = true
				break
			}
		}
	}
	if len(c.stopwords) > 0 {
		low := bytes.ToLower(f.secret)
		for _, w := range c.stopwords {
			if bytes.Contains(low, w) {
				stopHit = true
				break
			}
		}
	}
	if !c.and {
		if regexHit || stopHit {
			return true, nil
		}
		return false, c.paths
	}
	if (len(c.regexes) > 0 && !regexHit) || (len(c.stopwords) > 0 && !stopHit) {
		return false, nil
	}
	if len(c.paths) == 0 {
		return content, nil
	}
	return false, c.paths
}

// allowed applies a rule's allowlists to a found match: drop is true when
// one allowlists it outright; paths collects the path patterns under which
// its locations are allowlisted.
func (c *compiledRule) allowed(f *found) (drop bool, paths []*regexp.Regexp) {
	for _, a := range c.allow {
		d, p := a.check(f)
		if d {
			return true, nil
		}
		paths = append(paths, p...)
	}
	return false, paths
}

// AllowedAt reports whether an allowlist's paths cover a location of m at
// guest path path. A location without a path is never allowlisted by path.
func (m Match) AllowedAt(path string) bool {
	if path == "" {
		return false
	}
	for _, re := range m.allowedPaths {
		if re.MatchString(path) {
			return true
		}
	}
	return false
}

// HasAllowedPaths reports whether allowlist paths may cover some of m's
// locations: AllowedAt must then be asked for each.
func (m Match) HasAllowedPaths() bool { return len(m.allowedPaths) > 0 }

// fillContext sets the match's regex match and line(s) in window w, for
// allowlists whose regexTarget is "match" or "line".
func (f *found) fillContext(w []byte) {
	ms, me := f.ms, f.me
	if ms == 0 && me == 0 {
		ms, me = f.s, f.e
	}
	if ms < 0 || me > len(w) || ms > me {
		return
	}
	f.match = w[ms:me]
	ls := lineStart(w[:ms])
	le := me
	if i := bytes.IndexByte(w[me:], '\n'); i >= 0 {
		le = me + i
	} else {
		le = len(w)
	}
	f.line = w[ls:le]
}

// AllowlistKeys describes every allowlist in effect, per rule, so that
// cached results (registry --state) are not reused under other
// allowlists.
func (e *Engine) AllowlistKeys() []string {
	var out []string
	for _, r := range e.rules {
		for _, a := range r.allow {
			out = append(out, fmt.Sprintf("%s:%+v", r.ID, a.src))
		}
	}
	return out
}
