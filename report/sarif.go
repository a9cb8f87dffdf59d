package report

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SARIF constants. The $schema URI is the one GitHub code scanning and most
// viewers recognise; the document validates against the official OASIS /
// SARIF SDK 2.1.0 schema (see TestSARIFValidatesAgainstOfficialSchema).
const (
	SARIFSchemaURI = "https://json.schemastore.org/sarif-2.1.0.json"
	SARIFVersion   = "2.1.0"
	// SARIFFingerprintKey names the partialFingerprints entry that carries
	// Finding.Fingerprint; the /v1 suffix versions the recipe.
	SARIFFingerprintKey = "imgaudit/v1"
)

// SARIFLevel maps a severity to a SARIF level: critical and high are
// errors, medium a warning, low, info (and anything unknown) a note. SARIF
// 2.1.0 has four levels (error, warning, note, none); "none" is for
// results whose kind is not "fail", and GitHub code scanning fails a
// check on error (and, by default, on high or critical security
// severity), never on note.
func SARIFLevel(severity string) string {
	switch severity {
	case SeverityCritical, SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

// SARIFSecuritySeverity maps a severity to the CVSS-like score that GitHub
// code scanning reads from properties["security-severity"] (a numeric
// string: >= 9.0 critical, >= 7.0 high, >= 4.0 medium, 0.1 to 3.9 low).
// Info has none (""): the property is left out, so that GitHub shows the
// level (note) instead of ranking a public secret as a low-severity one.
func SARIFSecuritySeverity(severity string) string {
	switch severity {
	case SeverityCritical:
		return "9.5"
	case SeverityHigh:
		return "8.0"
	case SeverityMedium:
		return "5.0"
	case SeverityInfo:
		return ""
	}
	return "2.0"
}

// The SARIF object model, restricted to what imgaudit writes. Field order is
// the output order.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool sarifTool `json:"tool"`
		// OriginalURIBaseIDs resolves SARIFBaseID: the working directory
		// the report's relative paths are relative to.
		OriginalURIBaseIDs map[string]sarifArtifact `json:"originalUriBaseIds,omitempty"`
		Invocations        []sarifInvocation        `json:"invocations"`
		// Results is []sarifResult, or sarifResultsMark where WriteSARIF
		// writes them one at a time.
		Results    any            `json:"results"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri,omitempty"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name,omitempty"`
		ShortDescription     sarifText      `json:"shortDescription"`
		FullDescription      sarifText      `json:"fullDescription"`
		Help                 sarifHelp      `json:"help"`
		HelpURI              string         `json:"helpUri"`
		DefaultConfiguration sarifConfig    `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties"`
	}
	sarifHelp struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown"`
	}
	sarifConfig struct {
		Level string `json:"level"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifInvocation struct {
		ExecutionSuccessful        bool                `json:"executionSuccessful"`
		StartTimeUTC               string              `json:"startTimeUtc,omitempty"`
		EndTimeUTC                 string              `json:"endTimeUtc,omitempty"`
		ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications"`
		Properties                 map[string]any      `json:"properties,omitempty"`
	}
	sarifNotification struct {
		Level      string          `json:"level"`
		Message    sarifText       `json:"message"`
		Locations  []sarifLocation `json:"locations,omitempty"`
		Properties map[string]any  `json:"properties,omitempty"`
	}
	sarifResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             sarifText         `json:"message"`
		Locations           []sarifLocation   `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
		BaselineState       string            `json:"baselineState,omitempty"`
		Properties          map[string]any    `json:"properties"`
	}
	sarifLocation struct {
		PhysicalLocation *sarifPhysical `json:"physicalLocation,omitempty"`
		LogicalLocations []sarifLogical `json:"logicalLocations,omitempty"`
		Properties       map[string]any `json:"properties,omitempty"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI       string `json:"uri"`
		URIBaseID string `json:"uriBaseId,omitempty"`
	}
	sarifRegion struct {
		ByteOffset int64 `json:"byteOffset"`
		ByteLength int64 `json:"byteLength"`
	}
	sarifLogical struct {
		Name               string `json:"name"`
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
)

// SARIFBaseID is the uriBaseId of artifact locations relative to the
// working directory the report was written in (GitHub code scanning's
// name for the checkout root).
const SARIFBaseID = "%SRCROOT%"

// WriteSARIF writes r as a SARIF 2.1.0 log with one run. Each finding is one
// result whose locations are all the places its secret persists. Each
// location's physicalLocation is the host file and host byte range where the
// scanner knows them (file_offset); otherwise it is the target file with the
// guest offset inside the view, and properties.offset_space says which.
// Files under the working directory are written as URIs relative to it
// (uriBaseId SARIFBaseID, resolved by run.originalUriBaseIds); others as
// absolute file: URIs. The logicalLocation always names the view and guest
// path. The result message ends with what removes each copy (Remediate),
// and each rule carries a description, help and a helpUri to its entry
// in docs/rules.md. Target, backing and view errors become
// toolExecutionNotifications, and invocations[0].executionSuccessful is
// r.Complete. Only redacted previews and fingerprints appear; Metadata is
// not written. r is not modified.
//
// The results are written one at a time, as WriteJSON writes findings: the
// bytes are those json.Encoder would write for the whole log
// (TestWriteSARIFStreamsTheEncodersBytes).
func WriteSARIF(w io.Writer, r *Report) error {
	wd, _ := os.Getwd() // "" when unknown: every URI absolute
	return writeSARIFIn(w, r, wd)
}

func writeSARIFIn(w io.Writer, r *Report, wd string) error {
	if r == nil {
		return errors.New("report: WriteSARIF: nil report")
	}
	sc := newSARIFContext(r, wd)
	log, findings, ruleIndex := sc.logFor(r)
	log.Runs[0].Results = sarifResultsMark
	var head bytes.Buffer
	enc := json.NewEncoder(&head)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("report: encoding SARIF: %w", err)
	}
	// User strings are escaped, so the unescaped mark is ours, once.
	mark := []byte(`"results": "` + sarifResultsMark + `"`)
	if bytes.Count(head.Bytes(), mark) != 1 {
		return errors.New("report: encoding SARIF: results placeholder not found once")
	}
	before, after, _ := bytes.Cut(head.Bytes(), mark)
	jw := newJSONWriter(w)
	jw.raw(string(before))
	jw.raw(`"results": [`)
	for i, f := range findings {
		if i > 0 {
			jw.raw(",")
		}
		jw.raw("\n        ")
		jw.value(sc.resultFor(f, ruleIndex[f.Rule]), "        ")
	}
	if len(findings) > 0 {
		jw.raw("\n      ")
	}
	jw.raw("]")
	jw.raw(string(after))
	return jw.close()
}

// sarifResultsMark stands for the results in the log WriteSARIF encodes.
const sarifResultsMark = "imgaudit:results"

// sarifContext is what the SARIF writer needs besides a finding: the
// working directory that relative URIs are relative to, and the report's
// targets for remediation.
type sarifContext struct {
	wd string // absolute; "" for none
	rm *remediator
}

func newSARIFContext(r *Report, wd string) *sarifContext {
	if wd != "" && !filepath.IsAbs(wd) {
		wd = ""
	}
	return &sarifContext{wd: wd, rm: newRemediator(r)}
}

// logFor builds the SARIF log of r without its results, and returns the
// findings in result order with each rule's index.
func (sc *sarifContext) logFor(r *Report) (sarifLog, []*Finding, map[string]int) {
	findings := SortedFindings(r)

	rules := []sarifRule{}
	ruleIndex := map[string]int{}
	for _, f := range findings {
		i, ok := ruleIndex[f.Rule]
		if !ok {
			i = len(rules)
			ruleIndex[f.Rule] = i
			rules = append(rules, sarifRuleFor(f))
		}
		// A rule can report at several severities (an encrypted key is
		// less severe); its default is the most severe one seen.
		rule := &rules[i]
		cur, _ := rule.Properties["severity"].(string)
		if cur == "" || SeverityRank(f.Severity) < SeverityRank(cur) {
			rule.Properties["severity"] = f.Severity
			delete(rule.Properties, "security-severity")
			if ss := SARIFSecuritySeverity(f.Severity); ss != "" {
				rule.Properties["security-severity"] = ss
			}
			rule.DefaultConfiguration.Level = SARIFLevel(f.Severity)
		}
	}

	inv := sarifInvocation{
		ExecutionSuccessful:        r.Complete,
		StartTimeUTC:               sarifTime(r.Started),
		EndTimeUTC:                 sarifTime(r.Finished),
		ToolExecutionNotifications: sc.notifications(r),
	}
	if !r.Complete {
		inv.Properties = map[string]any{"incomplete_reason": r.IncompleteReason}
	}

	runProps := map[string]any{
		"schema_version":         r.SchemaVersion,
		"command":                r.Command,
		"complete":               r.Complete,
		"fail_on":                r.FailOn,
		"targets":                len(r.Targets),
		"suppressed_by_baseline": r.Summary.SuppressedByBaseline,
		"scanned_bytes":          r.Summary.ScannedBytes,
	}
	if r.IncompleteReason != "" {
		runProps["incomplete_reason"] = r.IncompleteReason
	}

	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{
			Name:           cmp.Or(r.Tool.Name, "imgaudit"),
			Version:        r.Tool.Version,
			InformationURI: InformationURI,
			Rules:          rules,
		}},
		Invocations: []sarifInvocation{inv},
		Properties:  runProps,
	}
	if sc.wd != "" {
		run.OriginalURIBaseIDs = map[string]sarifArtifact{SARIFBaseID: {URI: fileURI(strings.TrimSuffix(sc.wd, string(filepath.Separator)) + string(filepath.Separator))}}
	}
	return sarifLog{Schema: SARIFSchemaURI, Version: SARIFVersion, Runs: []sarifRun{run}}, findings, ruleIndex
}

func (sc *sarifContext) resultFor(f *Finding, ruleIndex int) sarifResult {
	exposure := FindingExposure(f)
	outside := IsOutsideGuestControl(f)
	msg := cmp.Or(f.Description, f.Rule)
	if f.Preview != "" {
		msg += ": " + f.Preview
	}
	msg += ". Exposure: " + strings.Join(exposure, ", ")
	if outside {
		msg += " (outside the guest's control: rotating the secret in the guest does not remove every copy)"
	}
	msg += fmt.Sprintf(". %s.", plural(len(f.Locations), "location"))
	steps := sc.rm.remediate(f)
	if len(steps) > 0 {
		parts := make([]string, len(steps))
		for i, st := range steps {
			parts[i] = "(" + st.Class + ") " + st.Action
			if st.Command != "" {
				parts[i] += ": " + st.Command
			}
		}
		msg += " To remove the copies: " + strings.Join(parts, "; ") + "."
	}

	props := map[string]any{
		"exposure":              nonNil(exposure),
		"outside_guest_control": outside,
		"category":              f.Category,
		"severity":              f.Severity,
		"preview":               f.Preview,
		"remediation":           nonNil(steps),
	}
	if f.KeyFingerprint != "" {
		props["key_fingerprint"] = f.KeyFingerprint
	}
	if len(f.Reasons) > 0 {
		props["reasons"] = f.Reasons
		for _, r := range f.Reasons {
			msg += " " + r.Text + "."
		}
	}
	if len(f.Provenance) > 0 {
		props["provenance"] = f.Provenance
	}
	res := sarifResult{
		RuleID:              f.Rule,
		RuleIndex:           ruleIndex,
		Level:               SARIFLevel(f.Severity),
		Message:             sarifText{Text: msg},
		Locations:           make([]sarifLocation, 0, len(f.Locations)),
		PartialFingerprints: map[string]string{SARIFFingerprintKey: f.Fingerprint},
		Properties:          props,
	}
	if f.New != nil {
		props["new"] = *f.New
		res.BaselineState = "unchanged"
		if *f.New {
			res.BaselineState = "new"
		}
	}
	for _, l := range sortedLocations(f) {
		res.Locations = append(res.Locations, sc.locationFor(l))
	}
	return res
}

func (sc *sarifContext) locationFor(l Location) sarifLocation {
	props := map[string]any{
		"target":    l.Target,
		"view":      l.View,
		"view_kind": l.ViewKind,
		"offset":    l.Offset,
		"state":     l.State,
		"exposure":  l.Exposure,
	}
	for k, v := range map[string]string{"partition": l.Partition, "path": l.Path, "file": l.File, "encoding": l.Encoding} {
		if v != "" {
			props[k] = v
		}
	}
	if len(l.Links) > 0 {
		props["links"] = l.Links
		if l.LinksOmitted > 0 {
			props["links_omitted"] = l.LinksOmitted
		}
	}
	if len(l.Decoded) > 0 {
		props["decoded"] = l.Decoded
		props["decoded_text"] = DecodedText(l)
		if l.DecodedOffset != nil {
			props["decoded_offset"] = *l.DecodedOffset
		}
	}
	phys := &sarifPhysical{}
	length := max(l.Length, 0)
	if len(l.Decoded) > 0 {
		// The secret is in decoded bytes: the region is where its
		// container starts, and has no length in the image file.
		length = 0
	}
	if l.FileOffset != nil && *l.FileOffset >= 0 {
		props["file_offset"] = *l.FileOffset
		props["offset_space"] = "host"
		phys.ArtifactLocation = sc.artifact(cmp.Or(l.File, l.Target))
		phys.Region = &sarifRegion{ByteOffset: *l.FileOffset, ByteLength: length}
	} else {
		props["offset_space"] = "guest"
		phys.ArtifactLocation = sc.artifact(l.Target)
		if l.Offset >= 0 {
			phys.Region = &sarifRegion{ByteOffset: l.Offset, ByteLength: length}
		}
	}
	view := cmp.Or(l.View, l.Target)
	name := cmp.Or(l.Path, view)
	fqn := view
	if l.Path != "" {
		fqn += ":" + l.Path
	}
	loc := sarifLocation{
		LogicalLocations: []sarifLogical{{
			Name:               name,
			FullyQualifiedName: fqn,
			Kind:               cmp.Or(l.ViewKind, "view"),
		}},
		Properties: props,
	}
	for _, p := range l.Links { // the same file's other names
		loc.LogicalLocations = append(loc.LogicalLocations, sarifLogical{Name: p, FullyQualifiedName: view + ":" + p, Kind: cmp.Or(l.ViewKind, "view")})
	}
	if phys.ArtifactLocation.URI != "" {
		loc.PhysicalLocation = phys
	}
	return loc
}

// artifact locates a host file: relative to the working directory (with
// SARIFBaseID) when it lies under it, else by its absolute file: URI. A
// relative path in the report is relative to the working directory; one
// that leaves it ("../x") is made absolute.
func (sc *sarifContext) artifact(path string) sarifArtifact {
	if path == "" {
		return sarifArtifact{}
	}
	if sc.wd == "" {
		return sarifArtifact{URI: fileURI(path)}
	}
	abs := path
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(sc.wd, abs)
	}
	rel, err := filepath.Rel(sc.wd, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return sarifArtifact{URI: fileURI(filepath.Clean(abs))}
	}
	return sarifArtifact{URI: fileURI(rel), URIBaseID: SARIFBaseID}
}

// sarifNotifications turns target, backing and view errors into error
// notifications, an interruption into one more, and unattributed
// filesystems into notes. Each error is said once: targets[].errors
// already holds the errors of the target's views and backing links, so an
// entry that is a view's or a backing link's error becomes that one
// notification, carrying the view's or the backing file's properties, and
// only the view and backing errors that targets[].errors lacks (reports
// written by other tools or older versions) get notifications of their
// own.
func (sc *sarifContext) notifications(r *Report) []sarifNotification {
	out := []sarifNotification{}
	if !r.Complete {
		out = append(out, sarifNotification{
			Level:   "error",
			Message: sarifText{Text: "scan incomplete: " + cmp.Or(r.IncompleteReason, "interrupted") + "; findings are partial"},
		})
	}
	for _, t := range r.Targets {
		at := sc.targetLocations(t.Path)
		saidBacking := map[int]bool{}
		saidView := map[int]bool{}
		for _, e := range t.Errors {
			n := sarifNotification{Level: "error", Message: sarifText{Text: t.Path + ": " + e}, Locations: at,
				Properties: map[string]any{"target": t.Path}}
			if i := backingOfError(t, e); i >= 0 {
				saidBacking[i] = true
				b := t.Backing[i]
				n.Properties["backing"] = cmp.Or(b.Path, b.Name)
				n.Locations = sc.targetLocations(cmp.Or(b.Path, t.Path))
			} else if i := viewIndexOfError(t, e); i >= 0 {
				saidView[i] = true
				n.Properties["view"], n.Properties["view_kind"] = t.Views[i].ID, t.Views[i].Kind
			}
			out = append(out, n)
		}
		for i, b := range t.Backing {
			if b.Error != "" && !saidBacking[i] {
				out = append(out, sarifNotification{Level: "error", Message: sarifText{Text: t.Path + ": backing file " + cmp.Or(b.Path, b.Name) + ": " + b.Error},
					Locations: sc.targetLocations(cmp.Or(b.Path, t.Path)), Properties: map[string]any{"target": t.Path, "backing": cmp.Or(b.Path, b.Name)}})
			}
		}
		for i, v := range t.Views {
			if v.Error != "" && !saidView[i] {
				out = append(out, sarifNotification{Level: "error", Message: sarifText{Text: cmp.Or(v.ID, t.Path) + ": " + v.Error}, Locations: at,
					Properties: map[string]any{"target": t.Path, "view": v.ID, "view_kind": v.Kind}})
			}
		}
		for _, u := range t.Unattributed {
			out = append(out, sarifNotification{Level: "note", Message: sarifText{Text: t.Path + ": unattributed filesystem: " + u + " (findings there carry no path or allocation state)"},
				Locations: at, Properties: map[string]any{"target": t.Path, "unattributed": u}})
		}
		for _, p := range t.Partitions {
			if p.Attributed {
				continue
			}
			text := fmt.Sprintf("%s: partition %s", cmp.Or(p.View, t.Path), p.Name)
			if p.FS != "" {
				text += " (" + p.FS + ")"
			}
			text += " is not attributed: findings there carry no path or allocation state"
			if p.Note != "" {
				text += " (" + p.Note + ")"
			}
			out = append(out, sarifNotification{Level: "note", Message: sarifText{Text: text}, Locations: at,
				Properties: map[string]any{"target": t.Path, "view": p.View, "partition": p.Name, "fs": p.FS, "start": p.Start, "size": p.Size}})
		}
	}
	return out
}

func (sc *sarifContext) targetLocations(path string) []sarifLocation {
	if path == "" {
		return nil
	}
	return []sarifLocation{{PhysicalLocation: &sarifPhysical{ArtifactLocation: sc.artifact(path)}}}
}

// fileURI turns a host path into a SARIF artifact URI: absolute paths become
// file:// URIs, relative ones stay relative references; both are
// percent-encoded (a '#' or '%' in a file name must not start a fragment).
func fileURI(path string) string {
	if path == "" {
		return ""
	}
	p := filepath.ToSlash(path)
	if filepath.IsAbs(path) {
		if !strings.HasPrefix(p, "/") { // a Windows drive path
			p = "/" + p
		}
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	// url.URL.String prefixes "./" when the first segment has a colon,
	// so a relative path is never read as a scheme.
	return (&url.URL{Path: p}).String()
}

func sarifTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ruleName turns a rule id like "ssh-rsa-private-key" into the PascalCase
// name SARIF viewers show ("SshRsaPrivateKey").
func ruleName(id string) string {
	var b strings.Builder
	up := true
	for _, r := range id {
		switch {
		case r == '-' || r == '_' || r == '.' || r == ' ' || r == '/':
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func ruleTags(category string) []string {
	tags := []string{"security", "secret"}
	if category != "" && category != "security" && category != "secret" {
		tags = append(tags, category)
	}
	return tags
}
