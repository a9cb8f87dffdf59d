package downgrade

import (
	"encoding/hex"
	"regexp"
	"slices"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/report"
)

// sourceSpec is what the tests read of a source in known_public.toml.
type sourceSpec struct {
	ID      string   `toml:"id"`
	AESKeys []string `toml:"aes_keys"`
}

// sourcesSpec reads known_public.toml, the generator's input.
func sourcesSpec(t *testing.T) (spec struct {
	Source []sourceSpec `toml:"source"`
}) {
	t.Helper()
	if _, err := toml.DecodeFile("known_public.toml", &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestKnownPublicList: the generated list holds every source of
// known_public.toml, in order, each with keys of built-in rules,
// well-formed fingerprints, and no key in two sources.
func TestKnownPublicList(t *testing.T) {
	spec := sourcesSpec(t)
	sources := NewKnownPublic().Sources()
	var ids []string
	for _, s := range sources {
		ids = append(ids, s.ID)
	}
	var want []string
	for _, s := range spec.Source {
		want = append(want, s.ID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("knownpublic_gen.go has sources %q, known_public.toml %q: run go generate ./downgrade", ids, want)
	}
	rules := map[string]bool{}
	for _, r := range detectors.Builtin() {
		rules[r.ID] = true
	}
	fp := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	keyFP := regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
	seen := map[string]string{}
	for _, s := range sources {
		if len(s.Keys) == 0 || s.Description == "" || s.From == "" {
			t.Errorf("source %s: %d keys, description %q, from %q", s.ID, len(s.Keys), s.Description, s.From)
		}
		for _, k := range s.Keys {
			if !rules[k.Rule] || !fp.MatchString(k.Fingerprint) || (k.KeyFingerprint != "" && !keyFP.MatchString(k.KeyFingerprint)) {
				t.Errorf("source %s: malformed key %+v", s.ID, k)
			}
			for _, id := range []string{k.Fingerprint, k.KeyFingerprint} {
				if id == "" {
					continue
				}
				if other, ok := seen[id]; ok && other != s.ID {
					t.Errorf("%s in sources %s and %s", id, other, s.ID)
				}
				seen[id] = s.ID
			}
		}
	}
}

// TestKnownPublicAESKeys: the standard's example keys, expanded into the
// schedules a program keeps in memory and found by the aes-key-schedule
// rule, are known; a key one bit away is not.
func TestKnownPublicAESKeys(t *testing.T) {
	spec := sourcesSpec(t)
	engine, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	known := NewKnownPublic()
	n := 0
	for _, s := range spec.Source {
		for _, h := range s.AESKeys {
			key, _ := hex.DecodeString(h)
			for flip, wantKnown := range map[bool]bool{false: true, true: false} {
				k := slices.Clone(key)
				if flip {
					k[len(k)-1] ^= 1
				}
				ms := engine.FindAll(structural.ExpandAESKey(k), detectors.ScanOptions{Memory: true})
				if len(ms) != 1 {
					t.Fatalf("%x: %d matches", k, len(ms))
				}
				f := report.Finding{Rule: ms[0].RuleID, Severity: "high", Fingerprint: ms[0].Fingerprint}
				got, ok := known.Lookup(&f)
				if ok != wantKnown || (ok && got.ID != s.ID) {
					t.Errorf("%x: source %q, known %v; want known %v", k, got.ID, ok, wantKnown)
				}
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("known_public.toml lists no AES key")
	}
}

// TestKnownPublicApply: a finding whose fingerprint, or whose public
// key's fingerprint (another encoding of the key), is listed becomes
// info with a reason naming the source; others are left alone.
func TestKnownPublicApply(t *testing.T) {
	k := newKnownPublic([]KnownSource{{
		ID: "test-keys", Description: "a test key of a program", From: "prog 1.0: /usr/bin/prog",
		Keys: []KnownKey{{Rule: "rsa-private-key-der", Fingerprint: "sha256:aa", KeyFingerprint: "SHA256:key"}},
	}})
	cases := []struct {
		name string
		f    report.Finding
		want bool
	}{
		{"the DER bytes", report.Finding{Rule: "rsa-private-key-der", Severity: "critical", Fingerprint: "sha256:aa"}, true},
		{"the same key as PEM", report.Finding{Rule: "private-key-rsa", Severity: "critical", Fingerprint: "sha256:bb", KeyFingerprint: "SHA256:key"}, true},
		{"another key", report.Finding{Rule: "private-key-rsa", Severity: "critical", Fingerprint: "sha256:cc", KeyFingerprint: "SHA256:other"}, false},
		{"no key fingerprint", report.Finding{Rule: "aes-key-schedule", Severity: "high", Fingerprint: "sha256:dd"}, false},
	}
	for _, c := range cases {
		f := c.f
		if got := k.Apply(&f); got != c.want {
			t.Errorf("%s: Apply = %v, want %v", c.name, got, c.want)
			continue
		}
		if !c.want {
			if f.Severity != c.f.Severity || len(f.Reasons) != 0 {
				t.Errorf("%s: changed to %s, %+v", c.name, f.Severity, f.Reasons)
			}
			continue
		}
		if f.Severity != report.SeverityInfo || len(f.Reasons) != 1 {
			t.Fatalf("%s: %s, %+v", c.name, f.Severity, f.Reasons)
		}
		r := f.Reasons[0]
		if r.Code != report.ReasonKnownPublicKey || r.From != c.f.Severity || r.To != report.SeverityInfo ||
			r.Text != "a published key, which protects nothing: a test key of a program (prog 1.0: /usr/bin/prog)" {
			t.Errorf("%s: reason %+v", c.name, r)
		}
		if f.Metadata[report.MetadataPublishedBy] != "test-keys" {
			t.Errorf("%s: metadata %v", c.name, f.Metadata)
		}
	}
	shared := map[string]string{"bits": "2048"}
	a := report.Finding{Severity: "critical", Fingerprint: "sha256:aa", Metadata: shared}
	k.Apply(&a)
	if len(shared) != 1 || a.Metadata["bits"] != "2048" {
		t.Errorf("Apply changed a shared metadata map: %v, finding's %v", shared, a.Metadata)
	}
	var nilList *KnownPublic
	if _, ok := nilList.Lookup(&report.Finding{Fingerprint: "sha256:aa"}); ok {
		t.Error("a nil list knows a key")
	}
}
