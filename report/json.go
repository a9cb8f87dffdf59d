package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// MaxReportBytes bounds what ReadJSON accepts, so that a wrong file given to
// --baseline or merge cannot exhaust memory.
const MaxReportBytes = 1 << 30

// WriteJSON writes r as indented JSON followed by a newline. Field order is
// the struct order and map keys are sorted, so the output is stable. Nil
// slices and maps are written as [] and {} so that jq filters such as
// `.findings[]` or `.targets[].errors[]` work on every report. r is not
// modified.
func WriteJSON(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: WriteJSON: nil report")
	}
	n := normalized(r)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetIndent("", "  ")
	// Paths and previews may contain <, > and &; escaping them as \u003c
	// is valid JSON but makes the report harder to read and grep.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(n); err != nil {
		return fmt.Errorf("report: encoding JSON: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: writing JSON: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON (by this or any other
// version of imgaudit). Unknown fields are ignored, as the compatibility
// promise in docs/report.md requires; a document without schema_version, or
// with data after the report, is rejected as not an imgaudit report.
func ReadJSON(rd io.Reader) (*Report, error) {
	lr := &io.LimitedReader{R: rd, N: MaxReportBytes + 1}
	dec := json.NewDecoder(lr)
	var raw struct {
		Report
		SchemaVersion *int `json:"schema_version"`
	}
	if err := dec.Decode(&raw); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("report: JSON report larger than %d bytes", int64(MaxReportBytes))
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("report: invalid JSON report at byte %d: %w", se.Offset, err)
		}
		return nil, fmt.Errorf("report: invalid JSON report: %w", err)
	}
	if raw.SchemaVersion == nil {
		return nil, errors.New("report: not an imgaudit JSON report (no schema_version)")
	}
	if *raw.SchemaVersion < 1 {
		return nil, fmt.Errorf("report: invalid schema_version %d", *raw.SchemaVersion)
	}
	if _, err := dec.Token(); err != io.EOF {
		if lr.N <= 0 {
			return nil, fmt.Errorf("report: JSON report larger than %d bytes", int64(MaxReportBytes))
		}
		return nil, fmt.Errorf("report: unexpected data after the JSON report at byte %d", dec.InputOffset())
	}
	r := raw.Report
	r.SchemaVersion = *raw.SchemaVersion
	return &r, nil
}

// Fingerprints returns the set of finding fingerprints in r, for --baseline.
func (r *Report) Fingerprints() map[string]bool {
	set := make(map[string]bool, len(r.Findings))
	for _, f := range r.Findings {
		if f.Fingerprint != "" {
			set[f.Fingerprint] = true
		}
	}
	return set
}

// normalized returns a copy of r in which every array and object of the
// public schema is non-nil. Slices are copied, so r is never modified.
func normalized(r *Report) *Report {
	n := *r
	n.Targets = nonNil(slices.Clone(r.Targets))
	for i := range n.Targets {
		t := &n.Targets[i]
		t.Views = nonNil(slices.Clone(t.Views))
		t.Errors = nonNil(slices.Clone(t.Errors))
	}
	n.Findings = nonNil(slices.Clone(r.Findings))
	for i := range n.Findings {
		f := &n.Findings[i]
		f.Exposure = nonNil(slices.Clone(f.Exposure))
		f.Locations = nonNil(slices.Clone(f.Locations))
	}
	n.Summary.BySeverity = nonNilMap(maps.Clone(r.Summary.BySeverity))
	n.Summary.ByExposure = nonNilMap(maps.Clone(r.Summary.ByExposure))
	return &n
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}
