package report

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// TableOptions tunes the human-readable report.
type TableOptions struct {
	// Color adds ANSI colours to severities (only when writing to a terminal).
	Color bool
	// MaxLocations caps the locations listed per finding; the rest are
	// counted ("... and N more"). 0 means DefaultMaxLocations, <0 means all.
	MaxLocations int
}

// DefaultMaxLocations is the per-finding location cap when
// TableOptions.MaxLocations is 0.
const DefaultMaxLocations = 5

// ANSI colour codes for severities. All have the same length, so that
// coloured and plain severities in one column stay aligned.
func severityColor(s string) string {
	switch s {
	case SeverityCritical:
		return "\x1b[1;31m"
	case SeverityHigh:
		return "\x1b[0;31m"
	case SeverityMedium:
		return "\x1b[0;33m"
	case SeverityLow:
		return "\x1b[0;36m"
	case SeverityInfo:
		return "\x1b[0;37m"
	}
	return "\x1b[0;39m"
}

const colorReset = "\x1b[0m"

// tableMetadataKeys are the metadata keys the table (and the visible part
// of the HTML report) may show. Metadata is non-secret by contract, but the
// table is what people paste into tickets, so only descriptive keys are
// shown.
func tableMetadataKeys() []string {
	return []string{"key_type", "type", "algorithm", "bits", "curve", "encrypted", "user", "username", MetadataLikely}
}

// tableMetadataKey reports whether a metadata key may be shown in the table.
func tableMetadataKey(k string) bool { return slices.Contains(tableMetadataKeys(), k) }

// WriteTable writes the report for people: a run header, the findings
// outside the guest's control, then the live ones, then target errors,
// unattributed filesystems and a summary. Only redacted previews and
// fingerprints of secrets are ever printed. Every string that comes from an
// image (paths, previews, partition names) is escaped, so that a hostile
// image cannot inject terminal control sequences.
func WriteTable(w io.Writer, r *Report, opts TableOptions) error {
	if r == nil {
		return errors.New("report: WriteTable: nil report")
	}
	maxLoc := opts.MaxLocations
	if maxLoc == 0 {
		maxLoc = DefaultMaxLocations
	}
	bw := bufio.NewWriter(w)
	tw := &tableWriter{w: bw, color: opts.Color, maxLoc: maxLoc, rm: newRemediator(r)}
	tw.header(r)

	all := SortedFindings(r)
	var findings, rollback, public []*Finding
	for _, f := range all {
		switch {
		case f.Category == CategoryRollbackRisk:
			rollback = append(rollback, f)
		case f.Category == CategoryClonedIdentity:
			// shown in the shared identity section
		case f.Severity == SeverityInfo:
			public = append(public, f)
		default:
			findings = append(findings, f)
		}
	}
	split := len(findings)
	for i, f := range findings {
		if !IsOutsideGuestControl(f) {
			split = i
			break
		}
	}
	tw.section(fmt.Sprintf("OUTSIDE THE GUEST'S CONTROL (%d)", split),
		"copies in snapshots, backing files, free blocks, unreferenced clusters, saved RAM or deleted layers: changing the guest does not remove them",
		findings[:split])
	tw.section(fmt.Sprintf("LIVE ONLY (%d)", len(findings)-split),
		liveSectionNote(findings[split:]),
		findings[split:])
	tw.knownPublic(public)
	tw.rollback(rollback)
	tw.sharedIdentity(r)
	tw.timelines(r)
	tw.problems(r)
	tw.summary(r, all)
	if tw.err != nil {
		return fmt.Errorf("report: writing table: %w", tw.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("report: writing table: %w", err)
	}
	return nil
}

type tableWriter struct {
	w      io.Writer
	color  bool
	maxLoc int
	rm     *remediator
	err    error
}

func (t *tableWriter) printf(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, args...)
	}
}

func (t *tableWriter) header(r *Report) {
	tot := totalsOf(r)
	views, failed, scanned, allocated := tot.Views, tot.Failed, tot.Scanned, tot.Allocated
	state := "complete"
	if !r.Complete {
		state = "INCOMPLETE"
		if r.IncompleteReason != "" {
			state += ": " + clean(r.IncompleteReason)
		}
		state += " (findings are partial)"
	}
	name := cmp.Or(r.Tool.Name, "imgaudit")
	cmd := cmp.Or(r.Command, "scan")
	t.printf("%s %s: %s, %s, %s scanned of %s allocated, %s\n",
		clean(name), clean(cmd), plural(len(r.Targets), "target"), plural(views, "view"),
		humanBytes(scanned), humanBytes(allocated), state)
	if failed > 0 {
		t.printf("  %d of %d targets had errors (listed below)\n", failed, len(r.Targets))
	}
	if len(r.Skipped) > 0 {
		t.printf("  %s skipped (listed below)\n", plural(len(r.Skipped), "file"))
	}
	for _, tg := range r.Targets {
		format := cmp.Or(tg.Format, "?")
		kinds := make([]string, 0, len(tg.Views))
		for _, v := range tg.Views {
			kinds = append(kinds, clean(viewLabel(v)))
		}
		line := fmt.Sprintf("  %s [%s]", clean(tg.Path), clean(format))
		if tg.VirtualSize > 0 {
			line += " " + humanBytes(tg.VirtualSize)
		}
		if len(kinds) > 0 {
			line += ": " + strings.Join(kinds, ", ")
		}
		if len(tg.Errors) > 0 {
			line += " (ERROR)"
		}
		t.printf("%s\n", line)
		for _, n := range tg.Notes {
			t.printf("    note: %s\n", clean(n))
		}
	}
}

// runTotals are the run's size: what the header of every report says.
type runTotals struct {
	Targets, Failed, Views int
	Scanned, Allocated     int64
}

func totalsOf(r *Report) runTotals {
	t := runTotals{Targets: len(r.Targets)}
	for _, tg := range r.Targets {
		t.Views += len(tg.Views)
		if len(tg.Errors) > 0 {
			t.Failed++
		}
		for _, v := range tg.Views {
			t.Scanned += v.ScannedBytes
			t.Allocated += v.AllocatedBytes
		}
	}
	// The scanner's summary knows about bytes shared between views; prefer
	// it when it was filled in.
	if r.Summary.ScannedBytes > 0 || r.Summary.AllocatedBytes > 0 {
		t.Scanned, t.Allocated = r.Summary.ScannedBytes, r.Summary.AllocatedBytes
	}
	return t
}

// viewLabel is the short name of a view: its kind, plus its name when set.
func viewLabel(v View) string {
	switch {
	case v.Kind == "" && v.Name == "":
		return v.ID
	case v.Name == "" || v.Name == v.Kind:
		return v.Kind
	}
	return v.Kind + ":" + v.Name
}

func (t *tableWriter) section(title, why string, findings []*Finding) {
	t.printf("\n%s\n", title)
	if len(findings) == 0 {
		t.printf("  none\n")
		return
	}
	t.printf("  %s\n", why)
	ruleWidth := 0
	for _, f := range findings {
		ruleWidth = max(ruleWidth, utf8.RuneCountInString(clean(f.Rule)))
	}
	for _, f := range findings {
		t.finding(f, ruleWidth)
	}
}

func (t *tableWriter) finding(f *Finding, ruleWidth int) {
	sev := strings.ToUpper(cmp.Or(f.Severity, "unknown"))
	sevText := fmt.Sprintf("%-8s", clean(sev))
	if t.color {
		sevText = severityColor(f.Severity) + sevText + colorReset
	}
	var tags []string
	if f.New != nil && *f.New {
		tags = append(tags, "NEW")
	}
	tagText := ""
	if len(tags) > 0 {
		tagText = "  [" + strings.Join(tags, ",") + "]"
	}
	t.printf("\n%s  %-*s  exposure: %s%s\n", sevText, ruleWidth, clean(f.Rule),
		clean(strings.Join(FindingExposure(f), ",")), tagText)
	t.printf("  preview:     %s\n", clean(f.Preview))
	if f.KeyFingerprint != "" {
		t.printf("  key:         %s\n", clean(f.KeyFingerprint))
	}
	if meta := metadataText(f.Metadata); meta != "" {
		t.printf("  details:     %s\n", meta)
	}
	t.printf("  fingerprint: %s\n", clean(f.Fingerprint))
	for _, r := range f.Reasons {
		t.printf("  %s\n", reasonText(r))
	}

	locs := sortedLocations(f)
	shown := capLocations(locs, t.maxLoc)
	if len(shown) > 0 {
		tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
		for _, l := range shown {
			view := cmp.Or(l.View, l.Target)
			fmt.Fprintf(tw, "    %s\t0x%x\t%s\t%s\t%s\t%s\n",
				dash(clean(view)), l.Offset, dash(clean(l.Partition)), dash(clean(l.Path)),
				dash(clean(l.State)), dash(clean(l.Exposure)))
			if len(l.Links) > 0 {
				// The file's other names (hard links), under the path.
				fmt.Fprintf(tw, "    \t\t\talso: %s\n", clean(linksText(l)))
			}
			if d := DecodedText(l); d != "" {
				// Under the path, as the row's last cell: it does not
				// widen the columns.
				fmt.Fprintf(tw, "    \t\t\tin: %s\n", clean(shorten(d, maxDecodedText)))
			}
		}
		if err := tw.Flush(); err != nil && t.err == nil {
			t.err = err
		}
	}
	if n := len(locs) - len(shown); n > 0 {
		t.printf("    ... and %s\n", plural(n, "more location"))
	}
	if steps := t.rm.remediate(f); len(steps) > 0 {
		t.printf("  remediation:\n")
		t.remediation("    ", steps)
	}
}

// linksText lists a location's other names as the table and the HTML
// report show them.
func linksText(l Location) string {
	s := strings.Join(l.Links, ", ")
	if l.LinksOmitted > 0 {
		s += fmt.Sprintf(" and %s", plural(l.LinksOmitted, "more name"))
	}
	return s
}

// maxDecodedText bounds a decoded chain on its table line.
const maxDecodedText = 120

// shorten cuts s to at most n bytes, keeping its end (the member that holds
// the secret) and marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := len(s) - (n - len("…"))
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return "…" + s[cut:]
}

// remediation prints one line per step: the class whose copies it
// removes, what to do and the command that does it.
func (t *tableWriter) remediation(indent string, steps []Remediation) {
	for _, s := range steps {
		line := s.Action
		if s.Command != "" {
			line += "  $ " + s.Command
		}
		t.printf("%s%-12s  %s\n", indent, clean(s.Class), clean(line))
	}
}

// reasonText is a finding's reason as one table line.
func reasonText(r Reason) string {
	head := "reason:     "
	if r.From != "" && r.To != "" && r.From != r.To {
		head = fmt.Sprintf("reason:      %s -> %s:", clean(r.From), clean(r.To))
	}
	return fmt.Sprintf("%s %s (%s)", head, clean(r.Text), clean(r.Code))
}

// knownPublic lists the findings proved public, folded: one line each,
// with the package that ships the secret and how many places hold it.
func (t *tableWriter) knownPublic(findings []*Finding) {
	if len(findings) == 0 {
		return
	}
	t.printf("\nKNOWN PUBLIC (%d)\n", len(findings))
	t.printf("  shipped unmodified by packages installed in the image, so the same bytes are on every machine that installed them, or keys that software publishes (self-test and test keys); --fail-on never counts them (--no-downgrade reports them at full severity)\n")
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	for _, f := range findings {
		from := ""
		for _, r := range f.Reasons {
			if r.To == SeverityInfo && r.From != "" {
				from = r.From
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", clean(f.Rule), dash(clean(from)), clean(f.Fingerprint),
			publicSource(f), plural(len(f.Locations), "location"))
	}
	if err := tw.Flush(); err != nil && t.err == nil {
		t.err = err
	}
}

// publicSource names the first unmodified package file holding the
// finding, and how many more there are, or the source of a published
// key.
func publicSource(f *Finding) string {
	var first *Provenance
	n := 0
	for i := range f.Provenance {
		if p := &f.Provenance[i]; !p.Modified {
			if first == nil {
				first = p
			}
			n++
		}
	}
	if first == nil {
		if src := f.Metadata[MetadataPublishedBy]; src != "" {
			return "published: " + clean(src)
		}
		return "-"
	}
	s := fmt.Sprintf("%s %s (%s) %s", clean(first.Package), clean(first.Version), clean(first.Manager), clean(first.Path))
	if n > 1 {
		s += fmt.Sprintf(" and %s", plural(n-1, "more package file"))
	}
	return s
}

// capLocations picks at most max of the sorted locations (all when max < 0).
// It first takes one location of each exposure class, so that a capped
// finding still shows both where the secret persists and where it is live,
// then fills up in order. The result keeps the sorted order.
func capLocations(locs []Location, max int) []Location {
	if max < 0 || len(locs) <= max {
		return locs
	}
	pick := make([]bool, len(locs))
	n := 0
	seen := map[string]bool{}
	for i, l := range locs {
		if n < max && !seen[l.Exposure] {
			seen[l.Exposure] = true
			pick[i] = true
			n++
		}
	}
	for i := range locs {
		if n < max && !pick[i] {
			pick[i] = true
			n++
		}
	}
	out := make([]Location, 0, max)
	for i, l := range locs {
		if pick[i] {
			out = append(out, l)
		}
	}
	return out
}

// metadataText renders the allow-listed metadata keys, sorted.
func metadataText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if tableMetadataKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+clean(m[k]))
	}
	return strings.Join(parts, " ")
}

func (t *tableWriter) problems(r *Report) {
	var errs, notes []string
	for _, tg := range r.Targets {
		// A target's errors include those of its views and backing links
		// (docs/report.md), and each names its file or view: each is
		// printed once, as it is.
		for _, e := range tg.Errors {
			errs = append(errs, clean(e))
		}
		if len(tg.Partitions) == 0 {
			// Partitions, when present, say the same with offsets and sizes.
			for _, u := range tg.Unattributed {
				notes = append(notes, clean(tg.Path)+": "+clean(u))
			}
		}
		for _, p := range tg.Partitions {
			if p.Attributed {
				continue
			}
			desc := clean(cmp.Or(p.View, tg.Path)) + " " + clean(p.Name)
			if p.FS != "" {
				desc += " (" + clean(p.FS) + ")"
			}
			desc += fmt.Sprintf(" at 0x%x, %s", p.Start, humanBytes(p.Size))
			if p.Note != "" {
				desc += ": " + clean(p.Note)
			}
			notes = append(notes, desc)
		}
	}
	if len(errs) > 0 {
		t.printf("\nTARGET ERRORS (%d)\n", len(errs))
		for _, e := range errs {
			t.printf("  %s\n", e)
		}
	}
	if len(r.Skipped) > 0 {
		t.printf("\nSKIPPED (%d): files of the scanned directories that were not scanned\n", len(r.Skipped))
		for _, sk := range r.Skipped {
			t.printf("  %s: %s\n", clean(sk.Path), clean(sk.Reason))
		}
	}
	if len(notes) > 0 {
		t.printf("\nUNATTRIBUTED FILESYSTEMS (%d): findings there carry no path or allocation state\n", len(notes))
		for _, n := range notes {
			t.printf("  %s\n", n)
		}
	}
}

// summary counts what the sections above list: the secrets (OUTSIDE THE
// GUEST'S CONTROL plus LIVE ONLY), then the rollback risks and cloned
// identities the scanner derived from them, then what was left out.
func (t *tableWriter) summary(r *Report, findings []*Finding) {
	t.printf("\n%s\n", summaryLine(r, findings))
	if tr := r.Summary.Truncated; tr != nil {
		// Say what the limits cut, so that a person reading only the
		// table knows the lists are not exhaustive.
		perScan := func(n int) string {
			if n <= 0 { // a report made before the per-scan limits
				return ""
			}
			return fmt.Sprintf(" or %d per scan", n)
		}
		t.printf("TRUNCATED: %d matches beyond %d findings per rule and view%s, %d locations beyond %d per finding%s, %d keyword hits not validated (too dense); in %s\n",
			tr.MatchesDropped, tr.Limits.FindingsPerRulePerView, perScan(tr.Limits.FindingsPerScan), tr.LocationsDropped, tr.Limits.LocationsPerFinding,
			perScan(tr.Limits.LocationsPerScan), tr.HitsNotValidated, plural(len(tr.Views), "view"))
	}
}

// SummaryLine is the table's last line ("SUMMARY: 3 secrets (...)"),
// which the CLI also prints on standard error when the report goes to a
// file.
func SummaryLine(r *Report) string {
	findings := make([]*Finding, len(r.Findings))
	for i := range r.Findings {
		findings[i] = &r.Findings[i]
	}
	return summaryLine(r, findings)
}

func summaryLine(r *Report, findings []*Finding) string {
	secretSev, rollbackSev := map[string]int{}, map[string]int{}
	byExp := map[string]int{}
	secrets, outside, rollback, cloned, public := 0, 0, 0, 0, 0
	for _, f := range findings {
		switch {
		case f.Category == CategoryRollbackRisk:
			rollback++
			rollbackSev[f.Severity]++
			continue
		case f.Category == CategoryClonedIdentity:
			cloned++
			continue
		case f.Severity == SeverityInfo:
			// listed, folded, under KNOWN PUBLIC
			public++
			continue
		}
		secrets++
		secretSev[f.Severity]++
		for _, e := range FindingExposure(f) {
			byExp[e]++
		}
		if IsOutsideGuestControl(f) {
			outside++
		}
	}
	line := "SUMMARY: " + plural(secrets, "secret")
	if secrets > 0 {
		line += " (" + countList(secretSev, severityNames()) + ")"
		line += fmt.Sprintf(": %d outside the guest's control, %d live only; exposure: %s", outside, secrets-outside, countList(byExp, exposureNames()))
	}
	if public > 0 {
		line += "; " + plural(public, "known public finding")
	}
	if rollback > 0 {
		line += "; " + plural(rollback, "rollback risk") + " (" + countList(rollbackSev, severityNames()) + ")"
	}
	if cloned > 0 {
		line += "; " + pluralY(cloned, "cloned identit")
	}
	if rollback+cloned+public > 0 {
		line += "; " + plural(len(findings), "finding") + " in all"
	}
	if r.Summary.SuppressedByBaseline > 0 {
		line += fmt.Sprintf("; %d suppressed by baseline", r.Summary.SuppressedByBaseline)
	}
	if r.Summary.Ignored > 0 {
		line += fmt.Sprintf("; %d ignored", r.Summary.Ignored)
	}
	if r.Summary.HiddenBySeverity > 0 {
		line += fmt.Sprintf("; %d hidden by --severity", r.Summary.HiddenBySeverity)
	}
	if !r.Complete {
		line += "; INCOMPLETE"
	}
	return line
}

// pluralY is plural for words ending in y: "1 identity", "2 identities".
func pluralY(n int, stem string) string {
	if n == 1 {
		return fmt.Sprintf("%d %sy", n, stem)
	}
	return fmt.Sprintf("%d %sies", n, stem)
}

// countList renders counts in the given order, then any unknown keys
// sorted, skipping zeros: "2 critical, 1 low".
func countList(counts map[string]int, order []string) string {
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		seen[k] = true
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	var rest []string
	for k := range counts {
		if !seen[k] && counts[k] > 0 {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], clean(cmp.Or(k, "unknown"))))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func dash(s string) string { return cmp.Or(s, "-") }

// HumanBytes formats a byte count with binary units: "3.7 MiB".
func HumanBytes(n int64) string { return humanBytes(n) }

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// clean makes a string from an image safe to print on a terminal: control
// characters (including ESC, tabs and newlines, which would also break the
// alignment), invisible format characters and invalid UTF-8 are written as
// Go escapes.
func clean(s string) string {
	safe := true
	for _, r := range s {
		if !printable(r) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !printable(r):
			q := fmt.Sprintf("%+q", string(r))
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

func printable(r rune) bool {
	return r != utf8.RuneError && unicode.IsPrint(r)
}
