package detectors

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// checkKind is a named validator (Rule.Check).
type checkKind int

const (
	checkNone checkKind = iota
	checkPEM
	checkPPK
	checkGitHubCRC
	checkJWT
	checkPassword
	checkPasswordLax
	checkDockerAuth
	checkCrypt
	checkPEMValue
	checkKubeKeyData
	checkKeytab
	checkAESSchedule
	checkRSADER
)

var checkNames = map[string]checkKind{
	"":              checkNone,
	"pem":           checkPEM,
	"ppk":           checkPPK,
	"github-crc":    checkGitHubCRC,
	"jwt":           checkJWT,
	"password":      checkPassword,
	"password-lax":  checkPasswordLax,
	"docker-auth":   checkDockerAuth,
	"crypt":         checkCrypt,
	"pem-value":     checkPEMValue,
	"kube-key-data": checkKubeKeyData,
	"keytab":        checkKeytab,
	"aes-schedule":  checkAESSchedule,
	"rsa-der":       checkRSADER,
}

// finder reports checks that locate the match themselves (no regex).
func (c checkKind) finder() bool { return c == checkPEM || c == checkPPK }

// structural reports checks that scan raw bytes without keywords.
func (c checkKind) structural() bool {
	return c == checkKeytab || c == checkAESSchedule || c == checkRSADER
}

// metaGroups are the named regex groups copied into Match.Meta.
var metaGroups = map[string]string{
	"user": "user", "host": "host", "account": "account", "keyid": "key_id", "email": "email",
}

type compiledRule struct {
	Rule
	idx      int
	rxOnce   sync.Once
	rx       *ruleRegexps // see regexps
	gateOnce [2]sync.Once
	gates    [2]*gateProg // DFA programs for follow and re, built on first use
	check    checkKind
	prefixes []string // keywords as written, for previews
	// allow are the rule's own allowlists and the global ones that cover
	// it.
	allow []*compiledAllowlist
	// subsumedBy are the indexes of the enabled rules whose whole match
	// covering this rule's secret drops this rule's match; subsumes marks
	// those rules.
	subsumedBy []int
	subsumes   bool
}

// ruleRegexps are a rule's compiled regexps and what is derived from them.
type ruleRegexps struct {
	re, follow  *regexp.Regexp
	meta        [][2]int // (group index, index into metaKeys)
	metaKeys    []string
	lockedGroup int
	// keyGroup is the "key" group: the name a generic rule's value is
	// assigned to (password, DB_PASSWORD, client_secret), which
	// passwordQuality compares the value with.
	keyGroup int
	// userGroup is the "user" group (a login name beside the secret).
	userGroup int
}

// regexps returns the rule's compiled regexps. The built-in rules compile
// theirs on first use: most of them never see a keyword hit in a scan, and
// compiling all 171 up front was a third of the start-up of a scan. Their
// regexps are tested to compile (TestBuiltinRegexpsCompile); should one not,
// it matches nothing rather than take the scan down.
func (c *compiledRule) regexps() *ruleRegexps {
	c.rxOnce.Do(func() {
		rx, err := compileRegexps(c.Rule)
		if err != nil {
			rx = &ruleRegexps{re: regexp.MustCompile(matchNothing)}
		}
		c.rx = rx
	})
	return c.rx
}

// matchNothing is a valid regexp without matches.
const matchNothing = `[^\x00-\x{10FFFF}]`

func compileRegexps(r Rule) (*ruleRegexps, error) {
	rx := &ruleRegexps{}
	if r.Regex != "" {
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.ID, err)
		}
		if r.SecretGroup < 0 || r.SecretGroup > re.NumSubexp() {
			return nil, fmt.Errorf("rule %s: secretGroup %d but regex has %d groups", r.ID, r.SecretGroup, re.NumSubexp())
		}
		rx.re = re
		for i, name := range re.SubexpNames() {
			if key, ok := metaGroups[name]; ok && i != r.SecretGroup {
				rx.meta = append(rx.meta, [2]int{i, len(rx.metaKeys)})
				rx.metaKeys = append(rx.metaKeys, key)
			}
			switch name {
			case "locked":
				rx.lockedGroup = i
			case "key":
				rx.keyGroup = i
			case "user":
				rx.userGroup = i
			}
		}
	}
	if r.Follow != "" {
		re, err := regexp.Compile(r.Follow)
		if err != nil {
			return nil, fmt.Errorf("rule %s: follow: %w", r.ID, err)
		}
		rx.follow = re
	}
	return rx, nil
}

func compileRule(r Rule) (*compiledRule, error) {
	if r.ID == "" {
		return nil, fmt.Errorf("rule without id")
	}
	if r.Severity < SeverityLow || r.Severity > SeverityCritical {
		return nil, fmt.Errorf("rule %s: invalid severity %d", r.ID, int(r.Severity))
	}
	ck, ok := checkNames[r.Check]
	if !ok {
		return nil, fmt.Errorf("rule %s: unknown check %q", r.ID, r.Check)
	}
	if r.Before < 0 || r.Before > maxBefore || r.After < 0 || r.After > maxAfter {
		return nil, fmt.Errorf("rule %s: before/after must be within [0,%d]/[0,%d]", r.ID, maxBefore, maxAfter)
	}
	c := &compiledRule{Rule: r, check: ck}
	for i, a := range r.Allowlists {
		ca, err := compileAllowlist(a)
		if err != nil {
			return nil, fmt.Errorf("rule %s: allowlist #%d: %w", r.ID, i+1, err)
		}
		c.allow = append(c.allow, ca)
	}
	switch {
	case ck.structural():
		if r.Regex != "" || len(r.Keywords) > 0 {
			return nil, fmt.Errorf("rule %s: check %s takes no regex or keywords", r.ID, r.Check)
		}
		return c, nil
	case ck.finder():
		if len(r.Keywords) == 0 {
			return nil, fmt.Errorf("rule %s: check %s needs keywords", r.ID, r.Check)
		}
	default:
		if r.Regex == "" {
			return nil, fmt.Errorf("rule %s: regex required", r.ID)
		}
	}
	if r.Memory {
		return nil, fmt.Errorf("rule %s: only structural checks can be memory rules", r.ID)
	}
	for _, k := range r.Keywords {
		if len(k) < minKeyword {
			return nil, fmt.Errorf("rule %s: keyword %q shorter than %d bytes", r.ID, k, minKeyword)
		}
		if strings.IndexByte(k, 0) >= 0 {
			return nil, fmt.Errorf("rule %s: keyword holds a NUL byte", r.ID)
		}
	}
	if r.Follow != "" && len(r.Keywords) == 0 {
		return nil, fmt.Errorf("rule %s: follow needs keywords", r.ID)
	}
	if !r.builtin {
		rx, err := compileRegexps(r)
		if err != nil {
			return nil, err
		}
		c.rxOnce.Do(func() { c.rx = rx })
	}
	c.prefixes = r.Keywords
	return c, nil
}

// Gate indexes into compiledRule.gates.
const (
	gateFollow = iota
	gateRegex
)

// gate returns the gate program of the rule's follow or main regexp (nil if
// there is none).
func (c *compiledRule) gate(which int) *gateProg {
	c.gateOnce[which].Do(func() {
		switch {
		case which == gateFollow && c.Follow != "":
			c.gates[which] = newGateProg(c.Follow)
		case which == gateRegex && c.Regex != "":
			c.gates[which] = newGateProg(c.Regex)
		}
	})
	return c.gates[which]
}
