package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestWriteJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    *Report
	}{
		{"sample", sampleReport()},
		{"empty", emptyReport()},
		{"interrupted", interruptedReport()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := WriteJSON(&out, tc.r); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSON(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("ReadJSON: %v\n%s", err, out.String())
			}
			if want := normalized(tc.r); !reflect.DeepEqual(got, want) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", got, want)
			}
			// Stable: writing what was read gives the same bytes.
			var again bytes.Buffer
			if err := WriteJSON(&again, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), again.Bytes()) {
				t.Errorf("re-encoding is not byte-identical")
			}
			if !bytes.HasSuffix(out.Bytes(), []byte("}\n")) || !bytes.Contains(out.Bytes(), []byte("\n  \"schema_version\": ")) {
				t.Errorf("output is not indented JSON ending in a newline:\n%.200s", out.String())
			}
		})
	}
}

// TestWriteJSONArraysNeverNull: consumers iterate .findings[], .targets[],
// .targets[].views[], .targets[].errors[], .findings[].locations[] and
// .findings[].exposure[] without null checks.
func TestWriteJSONArraysNeverNull(t *testing.T) {
	r := emptyReport()
	r.Targets = []Target{{Path: "a.raw"}}
	r.Findings = []Finding{{Rule: "x", Severity: SeverityLow, Fingerprint: fp("x")}}
	var out bytes.Buffer
	if err := WriteJSON(&out, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Targets []struct {
			Views  json.RawMessage `json:"views"`
			Errors json.RawMessage `json:"errors"`
		} `json:"targets"`
		Findings []struct {
			Exposure  json.RawMessage `json:"exposure"`
			Locations json.RawMessage `json:"locations"`
		} `json:"findings"`
		Summary struct {
			BySeverity json.RawMessage `json:"by_severity"`
			ByExposure json.RawMessage `json:"by_exposure"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]json.RawMessage{
		"targets[0].views": doc.Targets[0].Views, "targets[0].errors": doc.Targets[0].Errors,
		"findings[0].exposure": doc.Findings[0].Exposure, "findings[0].locations": doc.Findings[0].Locations,
	} {
		if string(raw) != "[]" {
			t.Errorf("%s = %s, want []", name, raw)
		}
	}
	if string(doc.Summary.BySeverity) != "{}" || string(doc.Summary.ByExposure) != "{}" {
		t.Errorf("summary maps = %s, %s, want {}", doc.Summary.BySeverity, doc.Summary.ByExposure)
	}
	if r.Targets[0].Views != nil || r.Findings[0].Locations != nil {
		t.Errorf("WriteJSON modified its input")
	}
}

func TestReadJSONToleratesUnknownFields(t *testing.T) {
	var out bytes.Buffer
	if err := WriteJSON(&out, sampleReport()); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	// A future imgaudit adds fields at every level and bumps the version.
	doc["schema_version"] = 7
	doc["future_top"] = map[string]any{"x": 1}
	doc["findings"].([]any)[0].(map[string]any)["future_finding"] = []any{1, 2}
	doc["findings"].([]any)[0].(map[string]any)["locations"].([]any)[0].(map[string]any)["future_loc"] = "y"
	doc["targets"].([]any)[0].(map[string]any)["future_target"] = true
	b, _ := json.Marshal(doc)
	got, err := ReadJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("ReadJSON rejected a newer report: %v", err)
	}
	if got.SchemaVersion != 7 || len(got.Findings) != len(sampleReport().Findings) || got.Findings[0].Fingerprint == "" {
		t.Errorf("ReadJSON lost data: version %d, %d findings", got.SchemaVersion, len(got.Findings))
	}
	want := sampleReport().Fingerprints()
	if fps := got.Fingerprints(); !reflect.DeepEqual(fps, want) {
		t.Errorf("Fingerprints() = %v, want %v", fps, want)
	}
}

func TestReadJSONRejects(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "invalid JSON"},
		{"not json", "imgaudit 0.1 scan: 1 target", "invalid JSON"},
		{"truncated", `{"schema_version": 1, "findings": [`, "invalid JSON"},
		{"array", `[{"schema_version": 1}]`, "invalid JSON"},
		{"no schema_version", `{"findings": []}`, "no schema_version"},
		{"schema_version 0", `{"schema_version": 0}`, "invalid schema_version"},
		{"wrong type", `{"schema_version": 1, "findings": {"a": 1}}`, "invalid JSON"},
		{"trailing data", `{"schema_version": 1} {"schema_version": 1}`, "after the JSON report"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ReadJSON(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

// TestJSONSurvivesJQ runs the jq cookbook of docs/report.md on a report and
// compares each answer with the same query done in Go.
func TestJSONSurvivesJQ(t *testing.T) {
	testutil.RequireTool(t, "jq")
	r := sampleReport()
	CheckComplete(r) // its targets have errors
	r.Skipped = []Skipped{{Path: "/srv/images/README", Reason: "not an image: text"}}
	path := filepath.Join(t.TempDir(), "report.json")
	var out bytes.Buffer
	if err := WriteJSON(&out, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	var outside, criticalPaths, fingerprints, errs []string
	for _, f := range r.Findings {
		fingerprints = append(fingerprints, f.Fingerprint)
		if f.OutsideGuestControl {
			outside = append(outside, f.Rule+"\t"+strings.Join(f.Exposure, ","))
		}
		if f.Severity == SeverityCritical {
			for _, l := range f.Locations {
				if l.Path != "" {
					criticalPaths = append(criticalPaths, l.View+":"+l.Path)
				}
			}
		}
	}
	for _, tg := range r.Targets {
		for _, e := range tg.Errors {
			errs = append(errs, tg.Path+": "+e)
		}
	}
	firstPath, _ := json.Marshal(r.Findings[0].Locations[0].Path)
	var reasons, skipped []string
	for _, x := range r.IncompleteReasons {
		reasons = append(reasons, cmp.Or(x.Target, "run")+": "+x.Reason)
	}
	for _, x := range r.Skipped {
		skipped = append(skipped, x.Path+": "+x.Reason)
	}

	tests := []struct {
		name, filter string
		want         []string
	}{
		{"first location path", `.findings[0].locations[0].path`, []string{string(firstPath)}},
		{"outside guest control", `.findings[] | select(.outside_guest_control) | "\(.rule)\t\(.exposure | join(","))"`, quoteAll(outside)},
		{"paths of critical findings", `.findings[] | select(.severity == "critical") | .locations[] | select(.path) | "\(.view):\(.path)"`, quoteAll(criticalPaths)},
		{"baseline fingerprints", `[.findings[].fingerprint]`, nil},
		{"target errors", `.targets[] | .path as $p | .errors[] | "\($p): \(.)"`, quoteAll(errs)},
		{"complete", `.complete`, []string{"false"}},
		{"incomplete reasons", `.incomplete_reasons[] | "\(.target // "run"): \(.reason)"`, quoteAll(reasons)},
		{"skipped", `.skipped[] | "\(.path): \(.reason)"`, quoteAll(skipped)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("jq", "-c", tc.filter, path)
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("jq %s: %v", tc.filter, err)
			}
			if tc.want == nil { // compare as JSON
				var fps []string
				if err := json.Unmarshal(got, &fps); err != nil {
					t.Fatalf("jq output %q: %v", got, err)
				}
				if !reflect.DeepEqual(fps, fingerprints) {
					t.Errorf("jq fingerprints = %v, want %v", fps, fingerprints)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(string(got)), "\n")
			if len(tc.want) == 0 {
				tc.want = []string{""}
			}
			if !reflect.DeepEqual(lines, tc.want) {
				t.Errorf("jq %s =\n%q\nwant\n%q", tc.filter, lines, tc.want)
			}
		})
	}
}

// quoteAll renders strings as jq -c prints them (JSON strings).
func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		out[i] = strings.TrimSpace(b.String())
	}
	return out
}

// TestWriteJSONStreamsTheEncodersBytes holds WriteJSON, which writes the
// top-level arrays an element at a time, to the bytes json.Encoder writes
// for the whole normalized report.
func TestWriteJSONStreamsTheEncodersBytes(t *testing.T) {
	full := sampleReport()
	full.IncompleteReason = "stopped <early> & \"quoted\""
	full.Timelines = []Timeline{{
		VM: "vm1", Targets: []string{"a.qcow2", "b <x>.qcow2"},
		Points:  []TimelinePoint{{View: "a.qcow2#current", Target: "a.qcow2", Kind: "current", Name: "current"}},
		Secrets: []TimelineRow{{}},
	}}
	full.SharedIdentity = []SharedIdentity{{Fingerprint: fp("k"), Kind: "ssh-host-key", Rule: "r", Preview: "AAAA…", VMs: []string{"vm1", "vm2"}}}
	withNils := emptyReport()
	withNils.Findings = []Finding{{Rule: "x", Severity: SeverityLow, Fingerprint: fp("x")}, {Rule: "y", Fingerprint: fp("y"), Exposure: []string{"live"}}}
	withNils.Targets = []Target{{Path: "a&b.raw"}}
	tests := []struct {
		name string
		r    *Report
	}{
		{"sample", sampleReport()},
		{"empty", emptyReport()},
		{"interrupted", interruptedReport()},
		{"every top-level field", full},
		{"nil slices", withNils},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			if err := WriteJSON(&got, tc.r); err != nil {
				t.Fatal(err)
			}
			checkEncoderBytes(t, got.Bytes(), normalized(tc.r))
		})
	}
}

// checkEncoderBytes fails unless got is what json.Encoder, indenting by two
// spaces without HTML escapes, writes for v.
func checkEncoderBytes(t *testing.T, got []byte, v any) {
	t.Helper()
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	w := want.Bytes()
	if bytes.Equal(got, w) {
		return
	}
	i := 0
	for i < min(len(got), len(w)) && got[i] == w[i] {
		i++
	}
	t.Errorf("differs from json.Encoder at byte %d:\n got …%q\nwant …%q", i, got[max(0, i-40):min(len(got), i+40)], w[max(0, i-40):min(len(w), i+40)])
}

// normalized is what WriteJSON writes for r, the oracle of the encoder's
// tests: a copy of r in which every array and object of the public schema
// is non-nil and every finding has its remediation. Slices are copied, so
// r is never modified.
func normalized(r *Report) *Report {
	n := normalizedTop(r)
	rm := newRemediator(r)
	n.Findings = slices.Clone(n.Findings)
	for i, f := range n.Findings {
		n.Findings[i] = normalizedFinding(f, rm)
	}
	return n
}
