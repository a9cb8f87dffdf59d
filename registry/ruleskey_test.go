package registry

import (
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
)

// TestRulesKeyFollowsAllowlists: a state file's cached results are not
// reused under other allowlists, and the key without allowlists is what it
// was (existing state files stay valid).
func TestRulesKeyFollowsAllowlists(t *testing.T) {
	engine := func(al []detectors.Allowlist) *detectors.Engine {
		e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{Allowlists: al})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	plain := engine(nil)
	if got, want := RulesKey(plain, "v1"), hashStrings(append([]string{"imgaudit v1"}, plain.Rules()...)); got != want {
		t.Errorf("key without allowlists changed: %s, want %s", got, want)
	}
	a := RulesKey(engine([]detectors.Allowlist{{Paths: []string{"^/srv/"}}}), "v1")
	b := RulesKey(engine([]detectors.Allowlist{{Paths: []string{"^/opt/"}}}), "v1")
	if a == RulesKey(plain, "v1") || a == b {
		t.Errorf("allowlists do not change the key: %s %s", a, b)
	}
}

// TestRulesKeyFollowsUserRules: a user rule counts by its definition: an
// edited pattern under the same ID gives another key, the same file the
// same key, and the built-in set's key is unchanged by the digests.
func TestRulesKeyFollowsUserRules(t *testing.T) {
	engine := func(user ...detectors.Rule) *detectors.Engine {
		e, err := detectors.NewEngine(append(detectors.Builtin(), user...), detectors.EngineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	rule := func(re string) detectors.Rule {
		return detectors.Rule{ID: "acme-token", Description: "ACME token", Category: "token", Severity: detectors.SeverityHigh,
			Keywords: []string{"acme_"}, Regex: re}
	}
	a1, a2 := RulesKey(engine(rule(`acme_[a-z0-9]{32}`)), "v1"), RulesKey(engine(rule(`acme_[a-z0-9]{32}`)), "v1")
	b := RulesKey(engine(rule(`acme_[A-Za-z0-9]{32}`)), "v1")
	if a1 != a2 {
		t.Errorf("the same user rule gives keys %s and %s", a1, a2)
	}
	if a1 == b {
		t.Errorf("an edited pattern under the same ID keeps the key %s", a1)
	}
	plain := engine()
	if len(plain.UserRuleDigests()) != 0 {
		t.Errorf("built-in rules have user digests: %v", plain.UserRuleDigests())
	}
	if got, want := RulesKey(plain, "v1"), hashStrings(append([]string{"imgaudit v1"}, plain.Rules()...)); got != want {
		t.Errorf("the built-in set's key changed: %s, want %s", got, want)
	}
}
