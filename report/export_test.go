package report

import (
	"encoding/json"
	"io"
	"testing"
)

// WriteHTMLWithJSON writes the HTML page of r with js as its JSON form, so
// that tests outside the package can render fields that Report does not
// have yet (fields a newer imgaudit or a merge adds).
func WriteHTMLWithJSON(w io.Writer, r *Report, js []byte) error { return writeHTML(w, r, js) }

// LaterFieldsReport returns a report with a finding in every section of
// the HTML page, and its JSON form plus the fields of later schema
// versions (see extendedJSON), with a timeline whose snapshot point holds
// the host key only as residue.
func LaterFieldsReport(t testing.TB) (*Report, []byte) {
	t.Helper()
	r := sectionsReport()
	web := r.Targets[0].Path
	golden, now := web+"#snapshot:golden", web+"#current"
	r.Timelines = []Timeline{{VM: "web01", Targets: []string{web}, Points: []TimelinePoint{
		{View: golden, Target: web, Kind: "snapshot", Name: "golden", Label: "golden"},
		{View: now, Target: web, Kind: "current", Name: "current", Label: "now"},
	}}}
	var m map[string]any
	if err := json.Unmarshal(extendedJSON(t, r), &m); err != nil {
		t.Fatal(err)
	}
	m["timelines"].([]any)[0].(map[string]any)["secrets"] = []any{map[string]any{
		"fingerprint": r.Findings[1].Fingerprint, "rule": r.Findings[1].Rule, "present": []any{golden, now},
		"residue": []any{golden}, "first": golden, "last": now, "current": true,
	}}
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return r, js
}
