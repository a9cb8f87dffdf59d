package report

import "strings"

// The rule list of docs/rules.md, with the anchors RuleHelpURI links to.
//go:generate go run ../internal/cmd/rulesdoc ../docs/rules.md

// RuleInfo describes a rule for listings (`imgaudit rules`, docs/rules.md)
// and SARIF: a detector rule, or one the scanner applies to what it found
// (rollback risks, cloned identities).
type RuleInfo struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Category string `json:"category"`
	// Description says what the rule finds.
	Description string   `json:"description"`
	Tags        []string `json:"tags,omitempty"`
}

// Where imgaudit's documentation lives, for SARIF's informationUri and
// helpUri.
const (
	InformationURI = "https://github.com/imgaudit/imgaudit"
	RulesDocURI    = InformationURI + "/blob/main/docs/rules.md"
)

// RuleAnchor is the anchor of a rule's entry in docs/rules.md.
func RuleAnchor(id string) string {
	var b strings.Builder
	b.WriteString("rule-")
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// RuleHelpURI links a rule to its entry in docs/rules.md.
func RuleHelpURI(id string) string { return RulesDocURI + "#" + RuleAnchor(id) }
