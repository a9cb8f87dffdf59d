package detectors

import (
	_ "embed"
	"reflect"
	"testing"
)

// builtinTOML is the source of builtin_rules_gen.go; only this test reads it,
// so the binary does not carry it.
//
//go:embed builtin_rules.toml
var builtinTOML string

// TestBuiltinRulesGenerated: builtin_rules.toml is the source of the
// built-in rules; builtin_rules_gen.go holds them as Go, so that start-up
// does not parse TOML (2 ms of the 7 ms a scan of a small image takes). The
// two must agree; `go generate ./detectors` (internal/cmd/rulesgen)
// regenerates the Go file after an edit of the TOML.
func TestBuiltinRulesGenerated(t *testing.T) {
	want, err := ParseBuiltinRules(builtinTOML, "builtin_rules.toml")
	if err != nil {
		t.Fatal(err)
	}
	got := builtinRules()
	if len(got) != len(want) {
		t.Fatalf("builtin_rules_gen.go has %d rules, builtin_rules.toml %d: run go generate ./detectors", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("rule %d (%s) differs between builtin_rules_gen.go and builtin_rules.toml: run go generate ./detectors", i, want[i].ID)
		}
	}
	for _, r := range Builtin() {
		if !r.builtin {
			t.Fatalf("Builtin rule %s not marked built-in", r.ID)
		}
	}
}
