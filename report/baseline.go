package report

import (
	"fmt"
	"os"
)

// ReadJSONFile reads the JSON report in the file at path (see ReadJSON).
// A read or parse error names the file.
func ReadJSONFile(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ReadBaseline returns the finding fingerprints of the JSON report at path,
// the --baseline of a later run (see SuppressBaseline).
func ReadBaseline(path string) (map[string]bool, error) {
	r, err := ReadJSONFile(path)
	if err != nil {
		return nil, err
	}
	return r.Fingerprints(), nil
}

// SuppressBaseline drops the findings whose fingerprint the baseline knows,
// counting them in Summary.SuppressedByBaseline, and marks the others new,
// unless a registry state has already said whether they are.
func SuppressBaseline(r *Report, known map[string]bool) {
	kept := r.Findings[:0]
	for _, f := range r.Findings {
		if known[f.Fingerprint] {
			r.Summary.SuppressedByBaseline++
			continue
		}
		if f.New == nil {
			t := true
			f.New = &t
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	Summarize(r)
}

// KeepOnlyNew drops the findings that are marked not new (a registry state
// knew them, --only-new); they count as suppressed by the baseline.
func KeepOnlyNew(r *Report) {
	kept := r.Findings[:0]
	for _, f := range r.Findings {
		if f.New != nil && !*f.New {
			r.Summary.SuppressedByBaseline++
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	Summarize(r)
}
