package report

import (
	"strings"
	"testing"
)

func TestParseIgnore(t *testing.T) {
	a, b := fp("a"), fp("b")
	cases := []struct {
		name, text string
		want       IgnoreList
		err        string
	}{
		{"entries with reasons, comments and blank lines", "# header\n\n" + a + " # rotated\n  " + strings.ToUpper(b[:7]) + b[7:] + "  #  retired image \n",
			IgnoreList{a: "rotated", b: "retired image"}, ""},
		{"no comment", "# header\n" + a + "\n", nil, "line 2: " + a + " has no comment"},
		{"empty comment", a + " #   \n", nil, "line 1: " + a + " has no comment"},
		{"not a fingerprint", "sha256:1234 # short\n", nil, "line 1: \"sha256:1234\" is not a fingerprint"},
		{"other hash", "md5:" + a[7:39] + " # x\n", nil, "is not a fingerprint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseIgnore(strings.NewReader(c.text))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("got %v, %v", got, err)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s: %q, want %q", k[:15], got[k], v)
				}
			}
		})
	}
}

func TestSeverityFilters(t *testing.T) {
	if _, err := ParseSeverityList("critical,,HIGH "); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", ",", "critical,urgent"} {
		if _, err := ParseSeverityList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	r := sampleReport()
	n := len(r.Findings)
	want := 0
	for _, f := range r.Findings {
		if f.Severity == SeverityCritical || f.Severity == SeverityHigh {
			want++
		}
	}
	if want == 0 || want == n {
		t.Fatalf("the sample report needs findings of other severities than critical and high")
	}
	shown := ShowSeverities(r, []string{SeverityCritical, SeverityHigh})
	if len(shown.Findings) != want || shown.Summary.HiddenBySeverity != n-want || shown.Summary.Findings != want {
		t.Errorf("shown %d findings, hidden %d", len(shown.Findings), shown.Summary.HiddenBySeverity)
	}
	whole, err := Gate(r, r.FailOn)
	if err != nil {
		t.Fatal(err)
	}
	if shown.Judged == nil || *shown.Judged != whole || whole.AtOrAbove <= want {
		t.Errorf("the narrowed report's verdict %+v is not the whole run's %+v", shown.Judged, whole)
	}
	if len(r.Findings) != n || r.Summary.HiddenBySeverity != 0 {
		t.Error("ShowSeverities modified the report the gate judges")
	}
	Ignore(r, IgnoreList{r.Findings[0].Fingerprint: "accepted"})
	if len(r.Findings) != n-1 || r.Summary.Ignored != 1 || r.Summary.Findings != n-1 {
		t.Errorf("after Ignore: %d findings, ignored %d", len(r.Findings), r.Summary.Ignored)
	}
}
