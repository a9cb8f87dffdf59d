package report

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
)

//go:generate go run ../internal/tools/htmlshot -o ../docs/html-report.png -C .. testdata/demo/web01.qcow2

// The page's template, style sheet and script. They are embedded, and the
// page links nothing: it opens on an air-gapped host or from a CI artifact.
//
//go:embed html/page.tmpl html/style.css html/app.js
var htmlAssets embed.FS

// The IDs of the page's JSON blocks: the report (its JSON form) and the
// orders and allow-lists the script shares with this package.
const (
	htmlDataID   = "imgaudit-report"
	htmlConfigID = "imgaudit-config"
)

// htmlPublicSeverity is the severity of findings proved public (KNOWN
// PUBLIC): the page folds them away.
const htmlPublicSeverity = "info"

// HTML sections of findings, in page order, as the script names them too.
const (
	htmlSectionOutside = "outside"
	htmlSectionLive    = "live"
	htmlSectionPublic  = "public"
	htmlSectionRisk    = "rollback"
	htmlSectionCloned  = "cloned"
)

// WriteHTML writes the report as one self-contained HTML page: a summary
// with the gate's verdict, a lifetime matrix per VM or image, the findings
// grouped by exposure with filters, and the rollback risks, shared
// identities, target errors and skipped files.
//
// The page embeds the report's JSON form, exactly as WriteJSON writes it,
// and a small script renders the interactive view from it; every string is
// set as text, never as markup. With JavaScript off, a <noscript> fallback
// rendered here with html/template lists every finding. No secret is on the
// page: the model holds only previews and fingerprints, as for every
// writer. A Content-Security-Policy lets only the page's own script and
// style run and forbids every fetch, so even a mistake in escaping could
// neither run a script nor call home.
func WriteHTML(w io.Writer, r *Report) error {
	if r == nil {
		return errors.New("report: WriteHTML: nil report")
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		return err
	}
	return writeHTML(w, r, js.Bytes())
}

// writeHTML writes the page of r, whose JSON form is js.
func writeHTML(w io.Writer, r *Report, js []byte) error {
	// The page renders generically from the JSON: fields that this
	// package's Report does not know (yet) still reach the fallback.
	var model map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&model); err != nil {
		return fmt.Errorf("report: WriteHTML: decoding the JSON form: %w", err)
	}
	page, err := newHTMLPage(r, model, scriptSafeJSON(js))
	if err != nil {
		return err
	}
	tmpl, err := template.New("page.tmpl").Funcs(htmlFuncs()).ParseFS(htmlAssets, "html/page.tmpl")
	if err != nil {
		return fmt.Errorf("report: WriteHTML: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := tmpl.Execute(bw, page); err != nil {
		return fmt.Errorf("report: writing HTML: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: writing HTML: %w", err)
	}
	return nil
}

// htmlPage is what the template renders.
type htmlPage struct {
	R       *Report
	Model   map[string]any // the JSON form, decoded
	Title   string
	Verdict Verdict
	// VerdictErr is set when the report's fail_on is not a severity (a
	// report read from a file).
	VerdictErr string
	Totals     runTotals
	// MaxLocations caps the locations each finding lists without script.
	MaxLocations int
	Duration     string
	BySeverity   []htmlCount
	ByExposure   []htmlCount
	Sections     []htmlSection
	// TargetExtras are the targets of the JSON form, by index, for
	// fields Target does not know.
	TargetExtras []map[string]any

	CSP              string
	Style            template.CSS
	Script           template.JS
	Config           template.JS // orders and allow-lists the script shares with Go
	Data             template.JS // the JSON form, safe inside <script>
	DataID, ConfigID string
}

type htmlCount struct {
	Name  string
	Count int
}

// htmlSection is one group of the no-script findings list.
type htmlSection struct {
	ID, Title, Why string
	Findings       []htmlFinding `json:"-"`
}

type htmlFinding struct {
	F        *Finding
	Extra    map[string]any // the finding's JSON form
	Exposure []string
	Meta     string
	Locs     []Location
	More     int // locations not listed
}

func newHTMLPage(r *Report, model map[string]any, data []byte) (*htmlPage, error) {
	p := &htmlPage{R: r, Model: model, Totals: totalsOf(r), MaxLocations: DefaultMaxLocations,
		Data: template.JS(data), DataID: htmlDataID, ConfigID: htmlConfigID}
	p.Title = "imgaudit " + cmp.Or(r.Command, "scan")
	if len(r.Targets) == 1 {
		p.Title += ": " + clean(r.Targets[0].Path)
	} else {
		p.Title += fmt.Sprintf(": %s", plural(len(r.Targets), "target"))
	}
	if r.Judged != nil {
		p.Verdict = *r.Judged // the whole run's, before --severity
	} else if v, err := Gate(r, r.FailOn); err != nil {
		p.VerdictErr = err.Error()
	} else {
		p.Verdict = v
	}
	if !r.Started.IsZero() && r.Finished.After(r.Started) {
		p.Duration = r.Finished.Sub(r.Started).Round(time.Millisecond).String()
	}
	p.BySeverity = orderedCounts(r.Summary.BySeverity, append(severityNames(), htmlPublicSeverity))
	p.ByExposure = orderedCounts(r.Summary.ByExposure, exposureNames())
	for _, t := range anyList(model["targets"]) {
		m, _ := t.(map[string]any)
		p.TargetExtras = append(p.TargetExtras, m)
	}

	findings := anyList(model["findings"])
	index := make(map[*Finding]int, len(r.Findings))
	for i := range r.Findings {
		index[&r.Findings[i]] = i
	}
	sections := htmlSections()
	at := map[string]int{}
	for i, s := range sections {
		at[s.ID] = i
	}
	for _, f := range SortedFindings(r) {
		hf := htmlFinding{F: f, Exposure: FindingExposure(f), Meta: metadataText(f.Metadata)}
		if i := index[f]; i < len(findings) {
			hf.Extra, _ = findings[i].(map[string]any)
		}
		locs := sortedLocations(f)
		hf.Locs = capLocations(locs, p.MaxLocations)
		hf.More = len(locs) - len(hf.Locs)
		s := &sections[at[htmlSectionOf(f)]]
		s.Findings = append(s.Findings, hf)
	}
	p.Sections = sections

	style, err := htmlAssets.ReadFile("html/style.css")
	if err != nil {
		return nil, fmt.Errorf("report: WriteHTML: %w", err)
	}
	script, err := htmlAssets.ReadFile("html/app.js")
	if err != nil {
		return nil, fmt.Errorf("report: WriteHTML: %w", err)
	}
	p.Style, p.Script = template.CSS(style), template.JS(script)
	// Only this script and this style sheet may run; nothing may be
	// fetched, not even an image or a favicon.
	p.CSP = fmt.Sprintf("default-src 'none'; script-src '%s'; style-src '%s'; img-src data:; base-uri 'none'; form-action 'none'",
		cspHash(script), cspHash(style))
	cfg, err := json.Marshal(map[string]any{
		"severities":      append(severityNames(), htmlPublicSeverity),
		"public_severity": htmlPublicSeverity,
		"exposures":       exposureNames(),
		"live":            ExposureLive,
		"metadata_keys":   tableMetadataKeys(),
		"rollback":        CategoryRollbackRisk,
		"cloned":          CategoryClonedIdentity,
		"sections":        htmlSections(),
	})
	if err != nil {
		return nil, fmt.Errorf("report: WriteHTML: %w", err)
	}
	p.Config = template.JS(cfg) // json.Marshal escapes <, > and &
	return p, nil
}

// htmlSections are the groups of findings, in page order, without findings.
func htmlSections() []htmlSection {
	return []htmlSection{
		{ID: htmlSectionOutside, Title: "Outside the guest's control",
			Why: "copies in snapshots, backing files, free blocks, unreferenced clusters, saved RAM or deleted layers: nothing done inside the guest removes them"},
		{ID: htmlSectionLive, Title: "Live only", Why: "only in allocated files of the current state: the guest can remove every copy"},
		{ID: htmlSectionPublic, Title: "Known public", Why: "shipped unmodified by a package installed in the image, or a key that software publishes (a self-test or test key): public material, not a secret of this machine"},
		{ID: htmlSectionRisk, Title: "Rollback risks", Why: "what reverting to an older snapshot, backing file or backup would bring back"},
		{ID: htmlSectionCloned, Title: "Cloned identities", Why: "one machine's identity found in several VMs"},
	}
}

// htmlSectionOf says in which section a finding is listed.
func htmlSectionOf(f *Finding) string {
	switch {
	case f.Category == CategoryRollbackRisk:
		return htmlSectionRisk
	case f.Category == CategoryClonedIdentity:
		return htmlSectionCloned
	case f.Severity == htmlPublicSeverity:
		return htmlSectionPublic
	case IsOutsideGuestControl(f):
		return htmlSectionOutside
	}
	return htmlSectionLive
}

// orderedCounts lists counts in the given order, then unknown keys
// sorted, skipping zeros.
func orderedCounts(m map[string]int, order []string) []htmlCount {
	var out []htmlCount
	seen := map[string]bool{}
	for _, k := range order {
		seen[k] = true
		if m[k] > 0 {
			out = append(out, htmlCount{k, m[k]})
		}
	}
	var rest []htmlCount
	for k, n := range m {
		if !seen[k] && n > 0 {
			rest = append(rest, htmlCount{cmp.Or(k, "unknown"), n})
		}
	}
	slices.SortFunc(rest, func(a, b htmlCount) int { return cmp.Compare(a.Name, b.Name) })
	return append(out, rest...)
}

// scriptSafeJSON escapes <, > and & (and the JavaScript line separators)
// in a JSON document as \u escapes, which leaves the same JSON value but
// can never end the <script> element that holds it (no "</script", no
// "<!--"). Those bytes occur only inside JSON strings, where the escapes
// mean the same characters.
func scriptSafeJSON(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/64)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '<':
			out.WriteString(`\u003c`)
		case c == '>':
			out.WriteString(`\u003e`)
		case c == '&':
			out.WriteString(`\u0026`)
		case c == 0xe2 && i+2 < len(b) && b[i+1] == 0x80 && (b[i+2] == 0xa8 || b[i+2] == 0xa9):
			fmt.Fprintf(&out, `\u202%c`, "89"[b[i+2]-0xa8])
			i += 2
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// cspHash is the Content-Security-Policy source that allows an inline
// element with exactly this text.
func cspHash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// htmlFuncs are the template's helpers. Strings from an image go through
// clean (control and invisible characters shown as escapes) and then
// html/template's escaping.
func htmlFuncs() template.FuncMap {
	return template.FuncMap{
		"clean": func(v any) string { return clean(anyString(v)) },
		"upper": func(v any) string { return strings.ToUpper(anyString(v)) },
		"hex":   func(n int64) string { return fmt.Sprintf("0x%x", n) },
		"bytes": func(v any) string {
			n, ok := anyInt(v)
			if !ok {
				return anyString(v)
			}
			return humanBytes(n)
		},
		"plural": plural,
		"deref":  func(b *bool) bool { return b != nil && *b },
		"dash":   func(s string) string { return dash(clean(s)) },
		// decoded is a location's chain ("gzip > tar member etc/x"), or "".
		"decoded": func(l Location) string { return clean(DecodedText(l)) },
		// links are a location's other names (hard links), or "".
		"links": func(l Location) string { return clean(linksText(l)) },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05 UTC")
		},
		"ptime": func(t *time.Time) string {
			if t == nil || t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		"join": func(s []string, sep string) string {
			out := make([]string, len(s))
			for i, x := range s {
				out[i] = clean(x)
			}
			return strings.Join(out, sep)
		},
		"label": viewLabel,
		// list makes a JSON value a list: an array as it is, an object
		// or a string as a list of one, nothing as an empty list.
		"list":     anyList,
		"isString": func(v any) bool { _, ok := v.(string); return ok },
		"isMap":    func(v any) bool { _, ok := v.(map[string]any); return ok },
		"field": func(v any, key string) any {
			if m, ok := v.(map[string]any); ok {
				return m[key]
			}
			return nil
		},
		"extra": func(i int, m []map[string]any) map[string]any {
			if i < len(m) {
				return m[i]
			}
			return nil
		},
		"text": anyString,
		// kv renders a JSON value in one line: "locations: 120, findings: 3".
		"kv": kvText,
	}
}

// anyList: see htmlFuncs.
func anyList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}

// anyString renders a JSON scalar as text.
func anyString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case fmt.Stringer:
		return x.String()
	}
	return kvText(v)
}

func anyInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case int64:
		return x, true
	case int:
		return int64(x), true
	}
	return 0, false
}

// kvText renders any JSON value in one line.
func kvText(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+kvText(x[k]))
		}
		return strings.Join(parts, ", ")
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, kvText(e))
		}
		return strings.Join(parts, "; ")
	}
	return anyString(v)
}
