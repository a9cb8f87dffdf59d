package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// MaxReportBytes bounds what ReadJSON accepts, so that a wrong file given to
// --baseline or merge cannot exhaust memory.
const MaxReportBytes = 1 << 30

// WriteJSON writes r as indented JSON followed by a newline. Field order is
// the struct order and map keys are sorted, so the output is stable. Nil
// slices and maps are written as [] and {} so that jq filters such as
// `.findings[]` or `.targets[].errors[]` work on every report. r is not
// modified.
//
// The top-level arrays are written an element at a time: encoding/json
// builds a whole document in memory, twice over when indenting, and a key
// dump's report (340k findings, 380 MB of JSON) took 2.8 GB to write. The
// bytes are those json.Encoder with SetIndent("", "  ") would write
// (TestWriteJSONStreamsTheEncodersBytes).
func WriteJSON(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: WriteJSON: nil report")
	}
	n := normalizedTop(r)
	rm := newRemediator(r)
	jw := newJSONWriter(w)
	rv := reflect.ValueOf(n).Elem()
	rt := rv.Type()
	type member struct {
		key string
		v   reflect.Value
	}
	var members []member
	for i := range rt.NumField() {
		sf := rt.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		v := rv.Field(i)
		o := strings.Split(opts, ",")
		if slices.Contains(o, "omitempty") && emptyJSON(v) || slices.Contains(o, "omitzero") && v.IsZero() {
			continue
		}
		members = append(members, member{name, v})
	}
	jw.raw("{")
	for i, m := range members {
		if i > 0 {
			jw.raw(",")
		}
		key, err := json.Marshal(m.key)
		if err != nil {
			return fmt.Errorf("report: encoding JSON: %w", err)
		}
		jw.raw("\n  ")
		jw.raw(string(key))
		jw.raw(": ")
		if m.v.Kind() != reflect.Slice || m.v.Len() == 0 {
			jw.value(m.v.Interface(), "  ")
			continue
		}
		jw.raw("[")
		for j := range m.v.Len() {
			if j > 0 {
				jw.raw(",")
			}
			jw.raw("\n    ")
			e := m.v.Index(j).Interface()
			if f, ok := e.(Finding); ok {
				e = normalizedFinding(f, rm)
			}
			jw.value(e, "    ")
		}
		jw.raw("\n  ]")
	}
	jw.raw("\n}\n")
	return jw.close()
}

// emptyJSON is encoding/json's test for omitempty.
func emptyJSON(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// jsonWriter writes a JSON document piece by piece; the first error sticks.
type jsonWriter struct {
	bw  *bufio.Writer
	buf bytes.Buffer
	err error
}

func newJSONWriter(w io.Writer) *jsonWriter { return &jsonWriter{bw: bufio.NewWriter(w)} }

func (jw *jsonWriter) raw(s string) {
	if jw.err != nil {
		return
	}
	if _, err := jw.bw.WriteString(s); err != nil {
		jw.err = fmt.Errorf("report: writing JSON: %w", err)
	}
}

// value writes v indented as it would be at a line that starts with
// prefix, without the encoder's trailing newline.
func (jw *jsonWriter) value(v any, prefix string) {
	if jw.err != nil {
		return
	}
	jw.buf.Reset()
	enc := json.NewEncoder(&jw.buf)
	enc.SetIndent(prefix, "  ")
	// Paths and previews may contain <, > and &; escaping them as \u003c
	// is valid JSON but makes the report harder to read and grep.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		jw.err = fmt.Errorf("report: encoding JSON: %w", err)
		return
	}
	if _, err := jw.bw.Write(bytes.TrimSuffix(jw.buf.Bytes(), []byte("\n"))); err != nil {
		jw.err = fmt.Errorf("report: writing JSON: %w", err)
	}
}

func (jw *jsonWriter) close() error {
	if jw.err != nil {
		return jw.err
	}
	if err := jw.bw.Flush(); err != nil {
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

// normalizedTop returns a copy of r in which every array and object of the
// public schema is non-nil, but for each finding's own slices, which
// WriteJSON normalizes as it writes them (normalizedFinding). Slices are
// copied, so r is never modified.
func normalizedTop(r *Report) *Report {
	n := *r
	n.Targets = nonNil(slices.Clone(r.Targets))
	for i := range n.Targets {
		t := &n.Targets[i]
		t.Views = nonNil(slices.Clone(t.Views))
		t.Errors = nonNil(slices.Clone(t.Errors))
	}
	n.Findings = nonNil(r.Findings)
	n.IncompleteReasons = nonNil(r.IncompleteReasons)
	n.Skipped = nonNil(r.Skipped)
	n.Summary.BySeverity = nonNilMap(maps.Clone(r.Summary.BySeverity))
	n.Summary.ByExposure = nonNilMap(maps.Clone(r.Summary.ByExposure))
	return &n
}

// normalizedFinding also fills in the finding's remediation, from its
// locations as they are now.
func normalizedFinding(f Finding, rm *remediator) Finding {
	f.Exposure = nonNil(slices.Clone(f.Exposure))
	f.Locations = nonNil(slices.Clone(f.Locations))
	f.Remediation = nonNil(rm.remediate(&f))
	return f
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
