package main

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/mdblock"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

const (
	docPath    = "../../../docs/report.md"
	readmePath = "../../../README.md"
)

// randomKeys are the JSON fields whose values the demo's fresh secrets and
// build time decide: fingerprints, the AWS key ID, the snapshot's date,
// and where in the files a secret landed (key files differ in length), and
// so the bytes scanned (the detectors pack small ranges that lie close
// together into one chunk, so the margins scanned depend on the layout).
var randomKeys = map[string]bool{
	"fingerprint": true, "key_fingerprint": true, "key_id": true,
	"created": true, "time": true,
	"offset": true, "length": true, "file_offset": true,
	"scanned_bytes": true,
}

var randomText = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}|sha256:[0-9a-f]{64}`)

// normalize masks what randomKeys and randomText name in a JSON value.
func normalize(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			out[k] = normalize(x, k)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = normalize(x, key)
		}
		return out
	}
	if randomKeys[key] {
		return "<random>"
	}
	if s, ok := v.(string); ok {
		return randomText.ReplaceAllString(s, "<random>")
	}
	return v
}

// splitBlock returns the prose of a generated block and its JSON value.
func splitBlock(t *testing.T, text string) (string, any) {
	t.Helper()
	i := strings.Index(text, "```json\n")
	j := strings.LastIndex(text, "```\n")
	if i < 0 || j <= i {
		t.Fatalf("no JSON in block:\n%s", text)
	}
	dec := json.NewDecoder(strings.NewReader(text[i+len("```json\n") : j]))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("block JSON: %v", err)
	}
	return text[:i] + text[j:], v
}

// firstDiff names the first place where a and b differ.
func firstDiff(a, b any, path string) string {
	switch a := a.(type) {
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok {
			return path
		}
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		var names []string
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if d := firstDiff(a[k], bm[k], path+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		bl, ok := b.([]any)
		if !ok || len(a) != len(bl) {
			return fmt.Sprintf("%s (length %d vs %v)", path, len(a), b)
		}
		for i := range a {
			if d := firstDiff(a[i], bl[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%s: %v vs %v", path, a, b)
	}
	return ""
}

// committedBlock returns the text of docs/report.md between b's markers.
func committedBlock(t *testing.T, doc string, b mdblock.Block) string {
	t.Helper()
	text, ok := mdblock.Text([]byte(doc), b)
	if !ok {
		t.Fatalf("docs/report.md has no markers %q", strings.TrimSpace(b.Begin))
	}
	return text
}

// TestReportDocMatchesFreshDemo: the JSON examples of docs/report.md are
// what reportdoc writes from a demo built now (make-demo.sh, with fresh
// secrets): the same prose, and the same JSON but for the values the
// secrets decide (randomKeys, fingerprints in text). A field added to the
// report, or a change of what the demo's scan finds, fails it; run `go
// generate ./report`.
func TestReportDocMatchesFreshDemo(t *testing.T) {
	images, _ := testutil.BuildDemo(t)
	blocks, err := examples(context.Background(), images)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(testutil.FileSnapshot(t, docPath))
	for _, b := range blocks {
		t.Run(strings.Fields(b.Begin)[2], func(t *testing.T) {
			gotProse, gotJSON := splitBlock(t, committedBlock(t, doc, b))
			wantProse, wantJSON := splitBlock(t, b.Text)
			if gotProse != wantProse {
				t.Errorf("prose differs from what reportdoc writes (run go generate ./report):\n%s\nwant:\n%s", gotProse, wantProse)
			}
			if d := firstDiff(normalize(gotJSON, ""), normalize(wantJSON, ""), ""); d != "" {
				t.Errorf("docs/report.md's example differs from a fresh demo's at %s (run go generate ./report)", d)
			}
		})
	}
	// The schema tables' examples are the demo's too.
	_, incomplete := splitBlock(t, blocks[1].Text)
	errs := incomplete.(map[string]any)["targets"].([]any)[0].(map[string]any)["errors"]
	want, _ := json.Marshal(errs)
	if row := tableExample(t, doc, "errors"); row != string(want) {
		t.Errorf("Target table: errors example %s, want the truncated demo's %s", row, want)
	}
	_, full := splitBlock(t, blocks[0].Text)
	f := full.(map[string]any)["findings"].([]any)[0].(map[string]any)
	for _, field := range []string{"rule", "description", "category", "severity", "preview"} {
		want, _ := json.Marshal(f[field])
		if row := tableExample(t, doc, field); row != string(want) {
			t.Errorf("Finding table: %s example %s, want the demo's %s", field, row, want)
		}
	}
}

// tableExample returns the first example (in backquotes) of the row of
// field in the first table of docs/report.md that has one, after the
// "### Target" heading for errors and the "### Finding" heading otherwise.
func tableExample(t *testing.T, doc, field string) string {
	t.Helper()
	heading := "### Finding\n"
	if field == "errors" {
		heading = "### Target\n"
	}
	doc = doc[strings.Index(doc, heading):]
	m := regexp.MustCompile("(?m)^\\| `" + field + "` \\|.*\\| `([^`]*)`[^|]*\\|$").FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("no %s row after %q", field, heading)
	}
	return m[1]
}

// TestDocsNameRealRules: every rule the report docs and the README quote
// ("rule": "X") exists.
func TestDocsNameRealRules(t *testing.T) {
	known := map[string]bool{}
	for _, r := range scanner.DetectorRules(detectors.Builtin()) {
		known[r.ID] = true
	}
	for _, r := range scanner.DerivedRules() {
		known[r.ID] = true
	}
	quoted := regexp.MustCompile(`"rule":\s*"([^"]+)"`)
	for _, p := range []string{docPath, readmePath} {
		n := 0
		for _, m := range quoted.FindAllStringSubmatch(string(testutil.FileSnapshot(t, p)), -1) {
			n++
			if !known[m[1]] {
				t.Errorf("%s quotes rule %q, which does not exist", p, m[1])
			}
		}
		if p == docPath && n == 0 {
			t.Errorf("%s quotes no rule", p)
		}
	}
}

func TestNormalizeMasksOnlyRandomValues(t *testing.T) {
	in := map[string]any{"fingerprint": "sha256:" + strings.Repeat("a", 64), "rule": "x",
		"remediation": []any{map[string]any{"action": "revoke SHA256:" + strings.Repeat("B", 43) + " now"}},
		"locations":   []any{map[string]any{"offset": json.Number("5"), "state": "free"}}}
	got := normalize(in, "")
	want := map[string]any{"fingerprint": "<random>", "rule": "x",
		"remediation": []any{map[string]any{"action": "revoke <random> now"}},
		"locations":   []any{map[string]any{"offset": "<random>", "state": "free"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalize = %v", got)
	}
	if d := firstDiff(want, map[string]any{"rule": "x"}, ""); !strings.HasPrefix(d, ".fingerprint") {
		t.Errorf("firstDiff = %q", d)
	}
}
