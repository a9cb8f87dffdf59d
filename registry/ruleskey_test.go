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
