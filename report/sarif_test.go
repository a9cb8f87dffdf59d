package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// sarifDoc is the part of a SARIF log the tests inspect.
type sarifDoc struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				Rules   []struct {
					ID                   string                 `json:"id"`
					DefaultConfiguration struct{ Level string } `json:"defaultConfiguration"`
					Properties           map[string]any         `json:"properties"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Invocations []struct {
			ExecutionSuccessful        bool `json:"executionSuccessful"`
			ToolExecutionNotifications []struct {
				Level   string `json:"level"`
				Message struct{ Text string }
			} `json:"toolExecutionNotifications"`
		} `json:"invocations"`
		Results []struct {
			RuleID    string `json:"ruleId"`
			RuleIndex int    `json:"ruleIndex"`
			Level     string `json:"level"`
			Message   struct{ Text string }
			Locations []struct {
				PhysicalLocation struct {
					ArtifactLocation struct{ URI string } `json:"artifactLocation"`
					Region           *struct {
						ByteOffset int64 `json:"byteOffset"`
						ByteLength int64 `json:"byteLength"`
					} `json:"region"`
				} `json:"physicalLocation"`
				LogicalLocations []struct {
					Name               string `json:"name"`
					FullyQualifiedName string `json:"fullyQualifiedName"`
					Kind               string `json:"kind"`
				} `json:"logicalLocations"`
				Properties map[string]any `json:"properties"`
			} `json:"locations"`
			PartialFingerprints map[string]string `json:"partialFingerprints"`
			BaselineState       string            `json:"baselineState"`
			Properties          map[string]any    `json:"properties"`
		} `json:"results"`
	} `json:"runs"`
}

func writeSARIF(t *testing.T, r *Report) ([]byte, sarifDoc) {
	t.Helper()
	var out bytes.Buffer
	if err := WriteSARIF(&out, r); err != nil {
		t.Fatal(err)
	}
	var doc sarifDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	return out.Bytes(), doc
}

func TestWriteSARIFMapping(t *testing.T) {
	r := sampleReport()
	_, doc := writeSARIF(t, r)
	if doc.Schema != SARIFSchemaURI || doc.Version != "2.1.0" || len(doc.Runs) != 1 {
		t.Fatalf("header: $schema %q version %q runs %d", doc.Schema, doc.Version, len(doc.Runs))
	}
	run := doc.Runs[0]
	if run.Tool.Driver.Name != "imgaudit" || run.Tool.Driver.Version != "0.1.0-test" {
		t.Errorf("driver = %q %q", run.Tool.Driver.Name, run.Tool.Driver.Version)
	}

	wantRule := map[string]struct{ level, secSev, category string }{
		"ssh-rsa-private-key":       {"error", "9.5", "private-key"},
		"aws-access-key":            {"error", "8.0", "cloud"},
		"password-hash-sha512crypt": {"warning", "5.0", "password-hash"},
		"generic-password":          {"note", "2.0", "credential"},
		"aws-access-key-pair":       {"warning", "5.0", "cloud"},
		// info: a note without a security-severity, so GitHub does not
		// rank public material as a low-severity alert
		"private-key-rsa": {"note", "<nil>", "private-key"},
	}
	if len(run.Tool.Driver.Rules) != len(wantRule) {
		t.Errorf("%d rules, want %d (one per rule id used)", len(run.Tool.Driver.Rules), len(wantRule))
	}
	for _, rule := range run.Tool.Driver.Rules {
		w, ok := wantRule[rule.ID]
		if !ok {
			t.Errorf("unexpected rule %q", rule.ID)
			continue
		}
		if rule.DefaultConfiguration.Level != w.level || fmt.Sprint(rule.Properties["security-severity"]) != w.secSev || rule.Properties["category"] != w.category {
			t.Errorf("rule %s: level %q security-severity %v category %v, want %+v", rule.ID,
				rule.DefaultConfiguration.Level, rule.Properties["security-severity"], rule.Properties["category"], w)
		}
	}

	if len(run.Results) != len(r.Findings) {
		t.Fatalf("%d results, want %d", len(run.Results), len(r.Findings))
	}
	byFP := map[string]*Finding{}
	for i := range r.Findings {
		byFP[r.Findings[i].Fingerprint] = &r.Findings[i]
	}
	for _, res := range run.Results {
		f := byFP[res.PartialFingerprints[SARIFFingerprintKey]]
		if f == nil {
			t.Fatalf("result %s: partialFingerprints %v match no finding", res.RuleID, res.PartialFingerprints)
		}
		if res.RuleID != f.Rule || run.Tool.Driver.Rules[res.RuleIndex].ID != f.Rule {
			t.Errorf("result ruleId %q ruleIndex %d, want %q", res.RuleID, res.RuleIndex, f.Rule)
		}
		if res.Level != SARIFLevel(f.Severity) {
			t.Errorf("%s: level %q, want %q", f.Rule, res.Level, SARIFLevel(f.Severity))
		}
		if !strings.Contains(res.Message.Text, f.Preview) || !strings.Contains(res.Message.Text, f.Description) ||
			!strings.Contains(res.Message.Text, strings.Join(FindingExposure(f), ", ")) {
			t.Errorf("%s: message %q lacks description, preview or exposure", f.Rule, res.Message.Text)
		}
		if res.Properties["outside_guest_control"] != f.OutsideGuestControl || res.Properties["category"] != f.Category {
			t.Errorf("%s: properties %v", f.Rule, res.Properties)
		}
		if kf, _ := res.Properties["key_fingerprint"].(string); kf != f.KeyFingerprint {
			t.Errorf("%s: key_fingerprint %q, want %q", f.Rule, kf, f.KeyFingerprint)
		}
		// reasons and provenance are result properties, as in the JSON
		// (absent when the finding has none)
		for key, field := range map[string]any{"reasons": f.Reasons, "provenance": f.Provenance} {
			b, _ := json.Marshal(field)
			var generic any // as the SARIF was read back: object keys sorted
			json.Unmarshal(b, &generic)
			want, _ := json.Marshal(generic)
			got, _ := json.Marshal(res.Properties[key])
			if string(got) != string(want) {
				t.Errorf("%s: properties[%s] = %s, want %s", f.Rule, key, got, want)
			}
		}
		for _, r := range f.Reasons {
			if !strings.Contains(res.Message.Text, r.Text) {
				t.Errorf("%s: message %q lacks reason %q", f.Rule, res.Message.Text, r.Text)
			}
		}
		wantBaseline := ""
		if f.New != nil {
			wantBaseline = map[bool]string{true: "new", false: "unchanged"}[*f.New]
		}
		if res.BaselineState != wantBaseline {
			t.Errorf("%s: baselineState %q, want %q", f.Rule, res.BaselineState, wantBaseline)
		}
		if len(res.Locations) != len(f.Locations) {
			t.Fatalf("%s: %d locations, want all %d", f.Rule, len(res.Locations), len(f.Locations))
		}
		for i, l := range sortedLocations(f) {
			got := res.Locations[i]
			reg := got.PhysicalLocation.Region
			if reg == nil {
				t.Fatalf("%s location %d: no region", f.Rule, i)
			}
			wantURI, wantOff, wantLen := "file://"+l.Target, l.Offset, l.Length
			if l.FileOffset != nil {
				wantURI, wantOff = "file://"+l.File, *l.FileOffset
			}
			if len(l.Decoded) > 0 {
				wantLen = 0 // decoded bytes: the container's first byte
				if got.Properties["decoded_text"] != DecodedText(l) {
					t.Errorf("%s location %d: decoded_text %v, want %q", f.Rule, i, got.Properties["decoded_text"], DecodedText(l))
				}
			}
			if got.PhysicalLocation.ArtifactLocation.URI != wantURI || reg.ByteOffset != wantOff || reg.ByteLength != wantLen {
				t.Errorf("%s location %d: %s @%d+%d, want %s @%d+%d", f.Rule, i,
					got.PhysicalLocation.ArtifactLocation.URI, reg.ByteOffset, reg.ByteLength, wantURI, wantOff, wantLen)
			}
			wantFQN := l.View
			if l.Path != "" {
				wantFQN += ":" + l.Path
			}
			// One logical location per name of the file (hard links).
			if len(got.LogicalLocations) != 1+len(l.Links) || got.LogicalLocations[0].FullyQualifiedName != wantFQN || got.LogicalLocations[0].Kind != l.ViewKind {
				t.Errorf("%s location %d: logicalLocations %+v, want fqn %q", f.Rule, i, got.LogicalLocations, wantFQN)
			}
			for j, p := range l.Links {
				if ll := got.LogicalLocations[min(1+j, len(got.LogicalLocations)-1)]; ll.FullyQualifiedName != l.View+":"+p || ll.Name != p {
					t.Errorf("%s location %d: link %d is %+v, want %s", f.Rule, i, j, ll, p)
				}
			}
			if len(l.Links) > 0 && (fmt.Sprint(got.Properties["links"]) != fmt.Sprint(l.Links) || got.Properties["links_omitted"] != float64(l.LinksOmitted)) {
				t.Errorf("%s location %d: properties links %v (%v omitted), want %q (%d)", f.Rule, i, got.Properties["links"], got.Properties["links_omitted"], l.Links, l.LinksOmitted)
			}
			for k, want := range map[string]any{"view": l.View, "view_kind": l.ViewKind, "state": l.State, "exposure": l.Exposure, "offset": float64(l.Offset)} {
				if got.Properties[k] != want {
					t.Errorf("%s location %d: properties[%s] = %v, want %v", f.Rule, i, k, got.Properties[k], want)
				}
			}
		}
	}

	inv := run.Invocations[0]
	if !inv.ExecutionSuccessful {
		t.Errorf("executionSuccessful = false for a complete run")
	}
	var texts []string
	for _, n := range inv.ToolExecutionNotifications {
		texts = append(texts, n.Level+" "+n.Message.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"error incoming/bad #1\x1b[31m.qcow2: qcow2: bad #1.qcow2 at offset 0x30",
		"error /srv/images/web01.qcow2: " + goneErr,
		"error /srv/images/web01.qcow2: /srv/images/web01.qcow2#memory:golden: vmstate truncated",
		"note /srv/images/web01.qcow2: unattributed filesystem: xfs on p2",
		"note /srv/images/web01.qcow2#current: partition p2 (xfs) is not attributed",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("notifications lack %q:\n%s", want, all)
		}
	}
}

// TestWriteSARIFSaysEachErrorOnce: a target's errors include its backing
// links' and views' errors (as the scanner makes them), and each is said in
// one notification, with the backing file or view in its properties; a
// backing or view error that the target's errors lack (a report of another
// tool) still gets its own.
func TestWriteSARIFSaysEachErrorOnce(t *testing.T) {
	const (
		img      = "/srv/images/web01.qcow2"
		backErr  = img + ": offset 528 (0x210): backing file \"/etc/shadow\": outside the allowed roots: not followed (see --backing-root)"
		viewErr  = "more than 2097152 extents: view cut at guest offset 4096 (the rest is not scanned)"
		orphan   = "saved VM state cut at its offset 131072"
		orphanBk = "open backing file \"gone.raw\": no such file or directory"
	)
	tests := []struct {
		name     string
		target   Target
		want     map[string]int // notification text -> times said
		wantProp map[string]string
	}{
		{
			name: "backing error in the target's errors",
			target: Target{Path: img, Views: []View{},
				Backing: []Backing{{Name: "/etc/shadow", Path: "/etc/shadow", Error: backErr}},
				Errors:  []string{backErr}},
			want:     map[string]int{img + ": " + backErr: 1},
			wantProp: map[string]string{"backing": "/etc/shadow"},
		},
		{
			name: "view error in the target's errors",
			target: Target{Path: img,
				Views:  []View{{ID: img + "#current", Kind: "current", Error: viewErr}},
				Errors: []string{img + "#current: " + viewErr}},
			want:     map[string]int{img + ": " + img + "#current: " + viewErr: 1},
			wantProp: map[string]string{"view": img + "#current", "view_kind": "current"},
		},
		{
			name: "errors the target's errors lack",
			target: Target{Path: img, Errors: []string{},
				Views:   []View{{ID: img + "#memory:s1", Kind: "memory", Error: orphan}},
				Backing: []Backing{{Name: "gone.raw", Error: orphanBk}}},
			want: map[string]int{
				img + "#memory:s1: " + orphan:                1,
				img + ": backing file gone.raw: " + orphanBk: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{SchemaVersion: SchemaVersion, Tool: Tool{Name: "imgaudit"}, Targets: []Target{tt.target}, Findings: []Finding{}}
			CheckComplete(r)
			var out bytes.Buffer
			if err := WriteSARIF(&out, r); err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Runs []struct {
					Invocations []struct {
						Notes []struct {
							Level      string
							Message    struct{ Text string }
							Properties map[string]any
						} `json:"toolExecutionNotifications"`
					}
				}
			}
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			var errs []string
			for _, n := range doc.Runs[0].Invocations[0].Notes {
				if strings.HasPrefix(n.Message.Text, "scan incomplete: ") {
					continue
				}
				got[n.Message.Text]++
				errs = append(errs, n.Level+" "+n.Message.Text)
				if n.Level != "error" {
					t.Errorf("%q: level %s, want error (it makes the run incomplete)", n.Message.Text, n.Level)
				}
				for k, v := range tt.wantProp {
					if n.Properties[k] != v {
						t.Errorf("%q: properties[%s] = %v, want %s", n.Message.Text, k, n.Properties[k], v)
					}
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("notifications:\n%s\nwant %d", strings.Join(errs, "\n"), len(tt.want))
			}
			for text, n := range tt.want {
				if got[text] != n {
					t.Errorf("%q said %d times, want %d; notifications:\n%s", text, got[text], n, strings.Join(errs, "\n"))
				}
			}
		})
	}
}

func TestWriteSARIFIncomplete(t *testing.T) {
	_, doc := writeSARIF(t, interruptedReport())
	inv := doc.Runs[0].Invocations[0]
	if inv.ExecutionSuccessful {
		t.Errorf("executionSuccessful = true for an interrupted run")
	}
	if len(inv.ToolExecutionNotifications) == 0 || !strings.Contains(inv.ToolExecutionNotifications[0].Message.Text, "interrupted (SIGINT)") {
		t.Errorf("no incomplete notification: %+v", inv.ToolExecutionNotifications)
	}
}

func TestWriteSARIFEmptyHasArrays(t *testing.T) {
	out, _ := writeSARIF(t, emptyReport())
	for _, want := range []string{`"results": []`, `"rules": []`, `"toolExecutionNotifications": []`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("empty SARIF lacks %s:\n%s", want, out)
		}
	}
}

// TestWriteSARIFRuleDefaultIsMostSevere: a rule seen at two severities (an
// encrypted key is reported lower) gets the most severe as its default.
func TestWriteSARIFRuleDefaultIsMostSevere(t *testing.T) {
	r := emptyReport()
	r.Findings = []Finding{
		{Rule: "pkcs8-private-key", Severity: SeverityMedium, Fingerprint: fp("a"), Exposure: []string{ExposureLive}},
		{Rule: "pkcs8-private-key", Severity: SeverityCritical, Fingerprint: fp("b"), Exposure: []string{ExposureLive}},
	}
	_, doc := writeSARIF(t, r)
	rules := doc.Runs[0].Tool.Driver.Rules
	if len(rules) != 1 || rules[0].DefaultConfiguration.Level != "error" || rules[0].Properties["security-severity"] != "9.5" {
		t.Errorf("rules = %+v", rules)
	}
	if doc.Runs[0].Results[0].Level != "error" || doc.Runs[0].Results[1].Level != "warning" {
		t.Errorf("result levels %q %q", doc.Runs[0].Results[0].Level, doc.Runs[0].Results[1].Level)
	}
}

func TestFileURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"/srv/images/web01.qcow2", "file:///srv/images/web01.qcow2"},
		{"/srv/my images/a#1%.qcow2", "file:///srv/my%20images/a%231%25.qcow2"},
		{"images/web01.qcow2", "images/web01.qcow2"},
		{"c:disk.raw", "./c:disk.raw"},
		{"a?b.raw", "a%3Fb.raw"},
	}
	for _, tc := range tests {
		if got := fileURI(tc.in); got != tc.want {
			t.Errorf("fileURI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// sarifValidatorDir is where report/testdata/sarif/install.sh put the
// pinned validator: $IMGAUDIT_SARIF_VALIDATOR_DIR, or .cache/sarif-validate
// at the module root.
func sarifValidatorDir(t *testing.T) string {
	if d := os.Getenv("IMGAUDIT_SARIF_VALIDATOR_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "sarif-validate")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// requireSARIFValidator skips (or fails under IMGAUDIT_REQUIRE_TOOLS=1, like
// testutil.RequireTool) when node or the installed validator is missing.
func requireSARIFValidator(t *testing.T) string {
	t.Helper()
	testutil.RequireTool(t, "node")
	dir := sarifValidatorDir(t)
	schema := filepath.Join(dir, "node_modules", "@microsoft", "sarif-multitool-linux", "sarif-2.1.0.json")
	for _, p := range []string{schema, filepath.Join(dir, "node_modules", "ajv"), filepath.Join(dir, "node_modules", "ajv-formats")} {
		if _, err := os.Stat(p); err != nil {
			msg := "SARIF validator not installed (" + p + " missing); run: sh report/testdata/sarif/install.sh"
			if os.Getenv("IMGAUDIT_REQUIRE_TOOLS") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return dir
}

// validateSARIF runs the official-schema validator on a SARIF document and
// returns its combined output and whether the document was valid. Exit
// status 2 (setup error) fails the test.
func validateSARIF(t *testing.T, validatorDir string, doc []byte) (string, bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.sarif")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join("testdata", "sarif", "validate.js"), validatorDir, path)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return string(out), true
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		return string(out), false
	}
	t.Fatalf("validator did not run: %v\n%s", err, out)
	return "", false
}

func TestSARIFValidatesAgainstOfficialSchema(t *testing.T) {
	dir := requireSARIFValidator(t)
	tests := []struct {
		name string
		r    *Report
	}{
		{"sample", sampleReport()},
		{"interrupted", interruptedReport()},
		{"empty", emptyReport()},
		{"relative and absolute URIs, rule help", githubReport()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, _ := writeSARIF(t, tc.r)
			if out, ok := validateSARIF(t, dir, doc); !ok {
				t.Fatalf("SARIF does not validate against the official schema:\n%s", out)
			}
		})
	}

	// Negative controls: the validator must reject broken documents, or the
	// test above proves nothing.
	valid, _ := writeSARIF(t, sampleReport())
	broken := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"missing version", func(m map[string]any) { delete(m, "version") }},
		{"wrong version", func(m map[string]any) { m["version"] = "2.0.0" }},
		{"unknown top-level property", func(m map[string]any) { m["findings"] = []any{} }},
		{"bad level", func(m map[string]any) {
			run := m["runs"].([]any)[0].(map[string]any)
			run["results"].([]any)[0].(map[string]any)["level"] = "critical"
		}},
		{"negative byteLength", func(m map[string]any) {
			run := m["runs"].([]any)[0].(map[string]any)
			loc := run["results"].([]any)[0].(map[string]any)["locations"].([]any)[0].(map[string]any)
			loc["physicalLocation"].(map[string]any)["region"].(map[string]any)["byteLength"] = -1
		}},
		{"helpUri not a URI", func(m map[string]any) {
			run := m["runs"].([]any)[0].(map[string]any)
			rule := run["tool"].(map[string]any)["driver"].(map[string]any)["rules"].([]any)[0].(map[string]any)
			rule["helpUri"] = "not a URI"
		}},
		{"help without text", func(m map[string]any) {
			run := m["runs"].([]any)[0].(map[string]any)
			rule := run["tool"].(map[string]any)["driver"].(map[string]any)["rules"].([]any)[0].(map[string]any)
			delete(rule["help"].(map[string]any), "text")
		}},
		{"invocation without executionSuccessful", func(m map[string]any) {
			run := m["runs"].([]any)[0].(map[string]any)
			delete(run["invocations"].([]any)[0].(map[string]any), "executionSuccessful")
		}},
	}
	for _, tc := range broken {
		t.Run("reject "+tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(valid, &m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			doc, _ := json.Marshal(m)
			if out, ok := validateSARIF(t, dir, doc); ok {
				t.Fatalf("validator accepted a broken SARIF document (%s):\n%s", tc.name, out)
			}
		})
	}
}

// TestWriteSARIFStreamsTheEncodersBytes holds WriteSARIF, which writes the
// results one at a time, to the bytes json.Encoder writes for the whole log.
func TestWriteSARIFStreamsTheEncodersBytes(t *testing.T) {
	tricky := sampleReport()
	tricky.Targets[0].Path = `dir/"results": "imgaudit:results"`
	tests := []struct {
		name string
		r    *Report
	}{
		{"sample", sampleReport()},
		{"empty", emptyReport()},
		{"interrupted", interruptedReport()},
		{"a path that spells the placeholder", tricky},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wd, err := os.Getwd()
			if err != nil {
				t.Fatal(err)
			}
			sc := newSARIFContext(tc.r, wd)
			log, findings, ruleIndex := sc.logFor(tc.r)
			results := []sarifResult{}
			for _, f := range findings {
				results = append(results, sc.resultFor(f, ruleIndex[f.Rule]))
			}
			log.Runs[0].Results = results
			var got bytes.Buffer
			if err := WriteSARIF(&got, tc.r); err != nil {
				t.Fatal(err)
			}
			checkEncoderBytes(t, got.Bytes(), log)
		})
	}
}
