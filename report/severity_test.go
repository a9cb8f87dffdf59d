package report

import "testing"

func TestLowerSeverity(t *testing.T) {
	cases := []struct {
		in    string
		steps int
		want  string
	}{
		{SeverityCritical, 1, SeverityHigh},
		{SeverityCritical, 2, SeverityMedium},
		{SeverityHigh, 2, SeverityLow},
		{SeverityMedium, 2, SeverityLow}, // never below low
		{SeverityLow, 1, SeverityLow},
		{SeverityInfo, 1, SeverityInfo},
		{"bogus", 1, "bogus"},
		{SeverityHigh, 0, SeverityHigh},
		{SeverityHigh, -1, SeverityHigh}, // never raised
	}
	for _, c := range cases {
		if got := LowerSeverity(c.in, c.steps); got != c.want {
			t.Errorf("LowerSeverity(%s, %d) = %s, want %s", c.in, c.steps, got, c.want)
		}
	}
	if SeverityRank(SeverityInfo) <= SeverityRank(SeverityLow) || SeverityRank("bogus") <= SeverityRank(SeverityInfo) {
		t.Errorf("info must rank below low and above unknown")
	}
}
