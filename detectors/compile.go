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

// finderCheck reports checks that locate the match themselves (no regex).
func (c checkKind) finder() bool { return c == checkPEM || c == checkPPK }

// structuralCheck reports checks that scan raw bytes without keywords.
func (c checkKind) structural() bool {
	return c == checkKeytab || c == checkAESSchedule || c == checkRSADER
}

// metaGroups are the named regex groups copied into Match.Meta.
var metaGroups = map[string]string{
	"user": "user", "host": "host", "account": "account", "keyid": "key_id", "email": "email",
}

type compiledRule struct {
	Rule
	idx         int
	re          *regexp.Regexp
	follow      *regexp.Regexp
	gateOnce    [2]sync.Once
	gates       [2]*gateProg // DFA programs for follow and re, built on first use
	check       checkKind
	meta        [][2]int // (group index, index into metaKeys)
	metaKeys    []string
	lockedGroup int
	prefixes    []string // keywords as written, for previews
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
	if r.Regex != "" {
		re, err := regexp.Compile(r.Regex)
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.ID, err)
		}
		if r.SecretGroup < 0 || r.SecretGroup > re.NumSubexp() {
			return nil, fmt.Errorf("rule %s: secretGroup %d but regex has %d groups", r.ID, r.SecretGroup, re.NumSubexp())
		}
		c.re = re
		for i, name := range re.SubexpNames() {
			if key, ok := metaGroups[name]; ok && i != r.SecretGroup {
				c.meta = append(c.meta, [2]int{i, len(c.metaKeys)})
				c.metaKeys = append(c.metaKeys, key)
			}
			if name == "locked" {
				c.lockedGroup = i
			}
		}
	}
	if r.Follow != "" {
		if len(r.Keywords) == 0 {
			return nil, fmt.Errorf("rule %s: follow needs keywords", r.ID)
		}
		re, err := regexp.Compile(r.Follow)
		if err != nil {
			return nil, fmt.Errorf("rule %s: follow: %w", r.ID, err)
		}
		c.follow = re
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
		case which == gateFollow && c.follow != nil:
			c.gates[which] = newGateProg(c.Follow)
		case which == gateRegex && c.re != nil:
			c.gates[which] = newGateProg(c.Regex)
		}
	})
	return c.gates[which]
}
