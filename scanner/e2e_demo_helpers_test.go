package scanner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/report"
)

// secretFinding is the finding of a secret (not a rollback risk) with
// fingerprint fp.
func secretFinding(r *report.Report, fp string) *report.Finding {
	for i := range r.Findings {
		if r.Findings[i].Fingerprint == fp && report.IsSecret(&r.Findings[i]) {
			return &r.Findings[i]
		}
	}
	return nil
}

func tableOf(t *testing.T, r *report.Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := report.WriteTable(&b, r, report.TableOptions{MaxLocations: -1}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkDemoTimeline: the demo VM's timeline has the points base.qcow2,
// golden, now, and each secret the marks given (x a file, r residue only,
// . absent), in the report and in the table.
func checkDemoTimeline(t *testing.T, r *report.Report, want map[string]string) {
	t.Helper()
	if len(r.Timelines) != 1 {
		t.Fatalf("%d timelines", len(r.Timelines))
	}
	tl := r.Timelines[0]
	var labels []string
	for _, p := range tl.Points {
		labels = append(labels, p.Label)
	}
	if !slices.Equal(labels, []string{"base.qcow2", "golden", "now"}) {
		t.Fatalf("timeline points %q", labels)
	}
	table := tableOf(t, r)
	for fp, marks := range want {
		var row *report.TimelineRow
		for i := range tl.Secrets {
			if tl.Secrets[i].Fingerprint == fp {
				row = &tl.Secrets[i]
			}
		}
		if row == nil {
			t.Errorf("%s: no timeline row", fp[:15])
			continue
		}
		got := ""
		for _, p := range tl.Points {
			switch {
			case slices.Contains(row.Residue, p.View):
				got += "r"
			case slices.Contains(row.Present, p.View):
				got += "x"
			default:
				got += "."
			}
		}
		if got != marks {
			t.Errorf("%s %s: timeline %s, want %s (present %v, residue %v)", row.Rule, fp[:15], got, marks, row.Present, row.Residue)
		}
		// The table's row, found by its label: rule and preview, or the
		// fingerprint for keys (their previews are all alike).
		label := row.Rule + " " + row.Preview
		if strings.HasPrefix(row.Preview, "-----") {
			label = row.Rule + " " + fp[:19] + "…"
		}
		m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(label) + `((?:\s+[.xr])+)\s*$`).FindStringSubmatch(table)
		if m == nil {
			t.Errorf("%s: no table row %q in\n%s", fp[:15], label, table)
			continue
		}
		if tm := strings.Join(strings.Fields(m[1]), ""); tm != marks {
			t.Errorf("%s: table marks %s, want %s", label, tm, marks)
		}
	}
}

// checkDemoCounts: the table's section headers, its summary line and the
// JSON summary count the same findings.
func checkDemoCounts(t *testing.T, r *report.Report) {
	t.Helper()
	secrets, outside, rollback := 0, 0, 0
	for i := range r.Findings {
		f := &r.Findings[i]
		switch {
		case f.Category == report.CategoryRollbackRisk:
			rollback++
		case report.IsSecret(f):
			secrets++
			if f.OutsideGuestControl {
				outside++
			}
		}
	}
	s := r.Summary
	if s.Secrets != secrets || s.SecretsOutsideGuestControl != outside || s.RollbackRisks != rollback || s.Findings != len(r.Findings) {
		t.Errorf("summary %+v; counted %d secrets, %d outside, %d rollback risks", s, secrets, outside, rollback)
	}
	table := tableOf(t, r)
	for _, want := range []string{
		fmt.Sprintf("OUTSIDE THE GUEST'S CONTROL (%d)", outside),
		fmt.Sprintf("LIVE ONLY (%d)", secrets-outside),
		fmt.Sprintf("ROLLBACK RISK (%d)", rollback),
		fmt.Sprintf("SUMMARY: %d secrets (", secrets),
		fmt.Sprintf("%d outside the guest's control, %d live only;", outside, secrets-outside),
		fmt.Sprintf("; %d rollback risks (", rollback),
		fmt.Sprintf("; %d findings in all", len(r.Findings)),
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	// The OUTSIDE section lists exactly as many findings as its header says.
	sec := table[strings.Index(table, "OUTSIDE THE GUEST'S CONTROL"):strings.Index(table, "LIVE ONLY")]
	if n := len(regexp.MustCompile(`(?m)^(CRITICAL|HIGH|MEDIUM|LOW) `).FindAllString(sec, -1)); n != outside {
		t.Errorf("the OUTSIDE section lists %d findings, its header says %d", n, outside)
	}
}

// checkDemoRemediation: each finding's remediation has the given steps
// (class and command), rotation first for every finding outside the
// guest's control and none for the live-only one; the JSON and SARIF
// outputs carry the same steps.
func checkDemoRemediation(t *testing.T, r *report.Report, basePath string, want map[string][]report.Remediation, liveOnly string) {
	t.Helper()
	var js bytes.Buffer
	if err := report.WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []report.Finding `json:"findings"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var sarif bytes.Buffer
	if err := report.WriteSARIF(&sarif, r); err != nil {
		t.Fatal(err)
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		steps := report.Remediate(r, f)
		if len(steps) == 0 {
			t.Errorf("%s %s: no remediation", f.Rule, f.Fingerprint[:15])
			continue
		}
		rotates := steps[0].Class == report.RemediationAll && strings.HasPrefix(steps[0].Action, "rotate")
		if wantRotate := f.OutsideGuestControl && report.IsSecret(f); rotates != wantRotate {
			t.Errorf("%s %s (exposure %v): rotation first %v, want %v: %+v", f.Rule, f.Fingerprint[:15], f.Exposure, rotates, wantRotate, steps)
		}
		if f.Fingerprint == liveOnly && (len(steps) != 1 || steps[0].Class != report.ExposureLive) {
			t.Errorf("live-only finding: steps %+v", steps)
		}
		for _, st := range steps {
			if st.Class == report.ExposureBacking && !strings.Contains(st.Action, basePath) {
				t.Errorf("%s: backing step does not name %s: %s", f.Rule, basePath, st.Action)
			}
			if st.Command != "" && !bytes.Contains(sarif.Bytes(), jsonString(st.Command)) {
				t.Errorf("%s: SARIF lacks the command %q", f.Rule, st.Command)
			}
		}
		for _, w := range want[f.Fingerprint] {
			if !slices.ContainsFunc(steps, func(s report.Remediation) bool { return s.Class == w.Class && s.Command == w.Command }) {
				t.Errorf("%s %s: no %s step %q among %+v", f.Rule, f.Fingerprint[:15], w.Class, w.Command, steps)
			}
		}
		if !slices.ContainsFunc(doc.Findings, func(g report.Finding) bool {
			return g.Rule == f.Rule && g.Fingerprint == f.Fingerprint && slices.Equal(g.Remediation, steps)
		}) {
			t.Errorf("%s %s: the JSON remediation differs from Remediate", f.Rule, f.Fingerprint[:15])
		}
	}
}

// jsonString is s as the writers put it inside a JSON string (without
// HTML escapes).
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.Trim(bytes.TrimSpace(b.Bytes()), `"`)
}
