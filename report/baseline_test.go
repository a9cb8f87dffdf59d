package report

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// baselineFindings: a, b and c are secrets of this run; the registry
// state knew c (New false) and not d (New true).
func baselineFindings() *Report {
	f := func(name string, isNew *bool) Finding {
		return Finding{Rule: "r", Severity: SeverityHigh, Fingerprint: fp(name), Exposure: []string{ExposureLive}, New: isNew}
	}
	r := &Report{Complete: true, Findings: []Finding{f("a", nil), f("b", nil), f("c", bptr(false)), f("d", bptr(true))}}
	Summarize(r)
	return r
}

// newMarks lists the findings left as fingerprint → its new mark ("nil",
// "true", "false").
func newMarks(r *Report) map[string]string {
	m := map[string]string{}
	for _, f := range r.Findings {
		s := "nil"
		if f.New != nil {
			s = map[bool]string{true: "true", false: "false"}[*f.New]
		}
		m[f.Fingerprint] = s
	}
	return m
}

func TestSuppressBaselineAndKeepOnlyNew(t *testing.T) {
	for _, tc := range []struct {
		name       string
		known      map[string]bool // nil: no --baseline
		onlyNew    bool
		want       map[string]string
		suppressed int
	}{
		{"baseline knows a", map[string]bool{fp("a"): true}, false,
			map[string]string{fp("b"): "true", fp("c"): "false", fp("d"): "true"}, 1},
		{"baseline knows a and the state's c", map[string]bool{fp("a"): true, fp("c"): true}, false,
			map[string]string{fp("b"): "true", fp("d"): "true"}, 2},
		{"empty baseline marks the unmarked new", map[string]bool{}, false,
			map[string]string{fp("a"): "true", fp("b"): "true", fp("c"): "false", fp("d"): "true"}, 0},
		{"only new, no baseline", nil, true,
			map[string]string{fp("a"): "nil", fp("b"): "nil", fp("d"): "true"}, 1},
		{"baseline, then only new", map[string]bool{fp("b"): true}, true,
			map[string]string{fp("a"): "true", fp("d"): "true"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := baselineFindings()
			if tc.known != nil {
				SuppressBaseline(r, tc.known)
			}
			if tc.onlyNew {
				KeepOnlyNew(r)
			}
			if got := newMarks(r); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("findings left = %v, want %v", got, tc.want)
			}
			if r.Summary.SuppressedByBaseline != tc.suppressed || r.Summary.Findings != len(tc.want) {
				t.Errorf("summary: %d suppressed, %d findings; want %d, %d", r.Summary.SuppressedByBaseline, r.Summary.Findings, tc.suppressed, len(tc.want))
			}
		})
	}
}

func TestReadBaseline(t *testing.T) {
	dir := t.TempDir()
	var js bytes.Buffer
	if err := WriteJSON(&js, sampleReport()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, content string          // content "": no file
		want          map[string]bool // nil: an error that names the file
	}{
		{"report", js.String(), sampleReport().Fingerprints()},
		{"missing", "", nil},
		{"not JSON", "not json\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".json")
			if tc.content != "" {
				if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadBaseline(p)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), p) {
					t.Fatalf("error %v, want one that names %s", err, p)
				}
				return
			}
			if err != nil || len(got) == 0 || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ReadBaseline = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
