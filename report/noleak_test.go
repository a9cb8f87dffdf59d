package report

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// writers lists every output format, so that each test below covers all.
func writers() []struct {
	name  string
	write func(*bytes.Buffer, *Report) error
} {
	return []struct {
		name  string
		write func(*bytes.Buffer, *Report) error
	}{
		{"json", func(b *bytes.Buffer, r *Report) error { return WriteJSON(b, r) }},
		{"table", func(b *bytes.Buffer, r *Report) error { return WriteTable(b, r, TableOptions{MaxLocations: -1}) }},
		{"table-color", func(b *bytes.Buffer, r *Report) error { return WriteTable(b, r, TableOptions{Color: true}) }},
		{"sarif", func(b *bytes.Buffer, r *Report) error { return WriteSARIF(b, r) }},
		{"html", func(b *bytes.Buffer, r *Report) error { return WriteHTML(b, r) }},
	}
}

// TestNoSecretLeaks: the report holds only fingerprints and redacted
// previews; no writer may print a secret, and the table and SARIF print no
// metadata outside the table's allow-list.
func TestNoSecretLeaks(t *testing.T) {
	for _, w := range writers() {
		for _, rc := range []struct {
			name string
			r    *Report
		}{{"sample", sampleReport()}, {"interrupted", interruptedReport()}} {
			t.Run(w.name+"/"+rc.name, func(t *testing.T) {
				var out bytes.Buffer
				if err := w.write(&out, rc.r); err != nil {
					t.Fatal(err)
				}
				s := out.String()
				for _, secret := range fixtureSecrets {
					// Any 16-byte window of the secret counts as a leak: a
					// preview shows at most a short prefix.
					for i := 0; i+16 <= len(secret); i++ {
						if strings.Contains(s, secret[i:i+16]) {
							t.Fatalf("output contains secret fragment %q", secret[i:i+16])
						}
					}
				}
				// The HTML page embeds the JSON form (which carries all
				// metadata); what it shows must keep to the allow-list.
				if shown := htmlWithoutData(t, w.name, s); w.name != "json" && strings.Contains(shown, metaDecoy) {
					t.Errorf("%s prints metadata outside the allow-list", w.name)
				}
				// Every finding is still identifiable by its fingerprint.
				for _, f := range rc.r.Findings {
					if !strings.Contains(s, f.Fingerprint) {
						t.Errorf("%s lacks fingerprint of %s", w.name, f.Rule)
					}
				}
			})
		}
	}
}

// TestModelHoldsNoSecretField guards the no-leak design: Finding and
// Location must never grow a field for the raw secret or matched bytes, so
// that no writer can print one. Rename carefully if this fails.
func TestModelHoldsNoSecretField(t *testing.T) {
	forbidden := func(s string) bool {
		s = strings.ToLower(strings.TrimSuffix(strings.Split(s, ",")[0], "_"))
		switch s {
		case "value", "content", "contents", "data", "bytes", "plaintext", "cleartext", "text":
			return true
		}
		for _, p := range []string{"secret", "raw", "match", "plain", "clear"} {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[Report](), reflect.TypeFor[Target](), reflect.TypeFor[View](), reflect.TypeFor[Finding](), reflect.TypeFor[Location](), reflect.TypeFor[DecodedStep](), reflect.TypeFor[ViewDecoding]()} {
		for f := range typ.Fields() {
			if forbidden(f.Name) || forbidden(f.Tag.Get("json")) {
				t.Errorf("%s.%s (json %q) looks like it holds secret material", typ.Name(), f.Name, f.Tag.Get("json"))
			}
		}
	}
}

// TestWritersDoNotModifyReport: writers sort and normalise copies; the
// caller's report (which the CLI may write in several formats) is intact.
func TestWritersDoNotModifyReport(t *testing.T) {
	for _, w := range writers() {
		t.Run(w.name, func(t *testing.T) {
			r, want := sampleReport(), sampleReport()
			r.Targets[1].Views = nil // nil must stay nil
			want.Targets[1].Views = nil
			var out bytes.Buffer
			if err := w.write(&out, r); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, want) {
				t.Errorf("%s modified the report", w.name)
			}
		})
	}
}

func TestWritersRejectNil(t *testing.T) {
	for _, w := range writers() {
		var out bytes.Buffer
		if err := w.write(&out, nil); err == nil {
			t.Errorf("%s accepted a nil report", w.name)
		}
	}
}

// failWriter fails after n bytes, like a full disk.
type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errShortWrite
	}
	f.n -= len(p)
	return len(p), nil
}

var errShortWrite = bytes.ErrTooLarge

func TestWritersReportWriteErrors(t *testing.T) {
	r := sampleReport()
	for name, write := range map[string]func(*failWriter) error{
		"json":  func(w *failWriter) error { return WriteJSON(w, r) },
		"table": func(w *failWriter) error { return WriteTable(w, r, TableOptions{}) },
		"sarif": func(w *failWriter) error { return WriteSARIF(w, r) },
		"html":  func(w *failWriter) error { return WriteHTML(w, r) },
	} {
		for _, n := range []int{0, 100, 2000} {
			if err := write(&failWriter{n: n}); err == nil {
				t.Errorf("%s: no error when the writer fails after %d bytes", name, n)
			}
		}
	}
}

// htmlWithoutData returns an HTML page without its embedded JSON report
// (other formats unchanged).
func htmlWithoutData(t *testing.T, format, s string) string {
	t.Helper()
	if format != "html" {
		return s
	}
	data, ok := htmlScript(s, htmlDataID)
	if !ok {
		t.Fatalf("no embedded report in the HTML page")
	}
	return strings.Replace(s, data, "", 1)
}
