package scanner

import (
	"slices"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/rollback"
)

// RuleClonedIdentity is the rule of cloned-identity findings.
const RuleClonedIdentity = "cloned-identity"

// DerivedRules describes the rules the scanner applies to what it found,
// beside the detectors': the rollback rules and cloned identity. They are
// listed by `imgaudit rules` and turned off with --disable-rule, like the
// detectors' rules.
func DerivedRules() []report.RuleInfo {
	return append(rollback.Rules(), report.RuleInfo{
		ID: RuleClonedIdentity, Severity: report.SeverityHigh, Category: report.CategoryClonedIdentity,
		Description: "The same SSH host key, TLS key, WireGuard key, other private key (high) or /etc/machine-id (medium) in several VMs: clones that share one identity",
	})
}

// DetectorRules describes detector rules as `imgaudit rules` and
// docs/rules.md list them, beside DerivedRules.
func DetectorRules(rules []detectors.Rule) []report.RuleInfo {
	out := make([]report.RuleInfo, 0, len(rules))
	for _, r := range rules {
		out = append(out, report.RuleInfo{ID: r.ID, Severity: r.Severity.String(), Category: r.Category, Description: r.Description, Tags: r.Tags})
	}
	return out
}

// SplitDisabled splits rule IDs given to --disable-rule into the
// detectors' (for detectors.EngineOptions.Disable) and the scanner's own
// (for Options.DisableRules).
func SplitDisabled(ids []string) (detectorIDs, derivedIDs []string) {
	derived := DerivedRules()
	for _, id := range ids {
		if slices.ContainsFunc(derived, func(r report.RuleInfo) bool { return r.ID == id }) {
			derivedIDs = append(derivedIDs, id)
		} else {
			detectorIDs = append(detectorIDs, id)
		}
	}
	return detectorIDs, derivedIDs
}

// RulesOutside returns the IDs of the detector rules and DerivedRules that
// enable does not list: the rules --enable-rule turns off. unknown is the
// first ID of enable that no rule has, if any.
func RulesOutside(rules []detectors.Rule, enable []string) (others []string, unknown string) {
	known := map[string]bool{}
	for _, r := range rules {
		known[r.ID] = true
		if !slices.Contains(enable, r.ID) {
			others = append(others, r.ID)
		}
	}
	for _, r := range DerivedRules() {
		known[r.ID] = true
		if !slices.Contains(enable, r.ID) {
			others = append(others, r.ID)
		}
	}
	for _, id := range enable {
		if !known[id] {
			return nil, id
		}
	}
	return others, ""
}

// dropDisabled removes the findings of rules in Options.DisableRules.
func (s *Scanner) dropDisabled(fs []report.Finding) []report.Finding {
	if len(s.opts.DisableRules) == 0 {
		return fs
	}
	return slices.DeleteFunc(fs, func(f report.Finding) bool { return slices.Contains(s.opts.DisableRules, f.Rule) })
}
