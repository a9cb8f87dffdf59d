package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestLayerLimits: a layer file with more distinct key IDs than a small
// limit keeps the limit's worth of findings, one key repeated past the
// locations limit keeps the limit's worth of locations, and the JSON
// report counts what was cut: in the layer view's truncated, the
// finding's locations_truncated and summary.truncated.
func TestLayerLimits(t *testing.T) {
	keyID := func(i int) string { return fmt.Sprintf("AKIAQZ%014d", i) }
	var distinct strings.Builder
	for i := range 50 {
		distinct.WriteString(keyID(i) + "\n")
	}
	tests := []struct {
		name                     string
		files                    []entry
		limits                   report.Limits
		wantFindings, wantListed int
		wantTruncated, wantDrop  int64
	}{
		{name: "distinct keys past the findings limit", files: []entry{file("etc/keys", distinct.String())},
			limits: report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 100}, wantFindings: 10, wantListed: 10, wantDrop: 40},
		{name: "one key past the locations limit", files: []entry{file("etc/keys", strings.Repeat(keyID(7)+"\n", 30))},
			limits: report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 5}, wantFindings: 1, wantListed: 5, wantTruncated: 25},
		{name: "one key in two files past the locations limit", files: []entry{file("a", strings.Repeat(keyID(7)+"\n", 4)), file("b", strings.Repeat(keyID(7)+"\n", 4))},
			limits: report.Limits{FindingsPerRulePerView: 10, LocationsPerFinding: 5}, wantFindings: 1, wantListed: 5, wantTruncated: 3},
		{name: "within the limits nothing is cut", files: []entry{file("etc/keys", keyID(1)+"\n"+keyID(2)+"\n")},
			limits: report.Limits{FindingsPerRulePerView: 5, LocationsPerFinding: 5}, wantFindings: 2, wantListed: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScanner(t, Options{Limits: tt.limits})
			rep, err := s.ScanLocal(context.Background(), []string{writeSource(t, "oci-layout", imageOf(t, layer(t, "", tt.files...)))})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := report.WriteJSON(&out, rep); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Targets []struct {
					Views []struct {
						Kind      string
						Truncated *struct {
							MatchesDropped map[string]int64 `json:"matches_dropped"`
						}
					}
				}
				Findings []struct {
					Rule               string
					Locations          []json.RawMessage
					LocationsTruncated int64 `json:"locations_truncated"`
				}
				Summary struct {
					Truncated *struct {
						Limits           report.Limits
						MatchesDropped   int64 `json:"matches_dropped"`
						LocationsDropped int64 `json:"locations_dropped"`
					}
				}
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			var findings, listed int
			var truncated, drop int64
			for _, f := range got.Findings {
				if f.Rule == "aws-access-key-id" {
					findings++
					listed += len(f.Locations)
					truncated += f.LocationsTruncated
				}
			}
			for _, v := range got.Targets[0].Views {
				if v.Kind == "layer" && v.Truncated != nil {
					drop += v.Truncated.MatchesDropped["aws-access-key-id"]
				}
			}
			if findings != tt.wantFindings || listed != tt.wantListed || truncated != tt.wantTruncated || drop != tt.wantDrop {
				t.Errorf("findings %d, locations %d listed and %d truncated, %d matches dropped; want %d, %d, %d, %d",
					findings, listed, truncated, drop, tt.wantFindings, tt.wantListed, tt.wantTruncated, tt.wantDrop)
			}
			cut := tt.wantTruncated > 0 || tt.wantDrop > 0
			if st := got.Summary.Truncated; (st != nil) != cut {
				t.Errorf("summary.truncated = %+v, want present: %v", st, cut)
			} else if want := scanner.NewLimiter(tt.limits, nil).Limits(); st != nil && (st.Limits != want || st.MatchesDropped != tt.wantDrop || st.LocationsDropped != tt.wantTruncated) {
				// The limits in force: those given, the rest the defaults.
				t.Errorf("summary.truncated = %+v, want limits %+v, %d dropped, %d truncated", st, want, tt.wantDrop, tt.wantTruncated)
			}
		})
	}
}
