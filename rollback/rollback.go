// Package rollback reports what reverting an image to one of its other disk
// views (an internal snapshot, a backing file, a parent layer) would bring
// back: accounts that are locked now, old passwords, SSH keys that were
// removed from authorized_keys, rotated host and TLS keys, revoked sudo
// rights and package versions that were since upgraded.
//
// It reads a small set of credential-bearing files through each view's
// filesystems that package guestfs can read by path (ext2/3/4, XFS) and
// diffs them against the current view. Secret values (password hashes,
// private keys) never leave the package: findings carry only their SHA-256
// fingerprints and redacted previews, like every other imgaudit finding.
package rollback

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/report"
)

// Category is the category of every rollback finding.
const Category = "rollback-risk"

// Rules of rollback findings.
const (
	RuleAccountUnlocked  = "rollback-account-unlocked"
	RulePasswordRestored = "rollback-password-restored"
	RuleAuthorizedKey    = "rollback-authorized-key"
	RuleHostKey          = "rollback-host-key"
	RuleTLSKey           = "rollback-tls-key"
	RulePrivilege        = "rollback-privilege"
	RulePackageDowngrade = "rollback-package-downgrade"
)

// Rules describes the rollback rules, at the severity each usually
// reports (an encrypted key is reported one step lower, as low).
func Rules() []report.RuleInfo {
	r := func(id, sev, desc string) report.RuleInfo {
		return report.RuleInfo{ID: id, Severity: sev, Category: Category, Description: desc}
	}
	return []report.RuleInfo{
		r(RuleAccountUnlocked, report.SeverityHigh, "Reverting restores an account that is locked, removed or given a nologin shell now, with a usable password hash"),
		r(RulePasswordRestored, report.SeverityHigh, "Reverting restores an account's old password hash"),
		r(RuleAuthorizedKey, report.SeverityHigh, "Reverting restores SSH keys in authorized_keys that were removed since"),
		r(RuleHostKey, report.SeverityMedium, "Reverting restores an SSH host key rotated or removed since"),
		r(RuleTLSKey, report.SeverityMedium, "Reverting restores a TLS private key rotated or removed since"),
		r(RulePrivilege, report.SeverityHigh, "Reverting restores sudoers rules or sudo/wheel/admin membership revoked since"),
		r(RulePackageDowngrade, report.SeverityMedium, "Reverting restores older package versions: patched vulnerabilities come back"),
	}
}

// ViewFS is a view and its guest filesystem. Err, when set, says why the
// filesystem cannot be read (the view is then skipped with a note).
type ViewFS struct {
	View model.View
	FS   FS
	Err  error
}

// ViewFSFromMap builds a ViewFS from a guestfs.Map that a caller (the
// scanner) already built for the view, so that it is not built twice.
func ViewFSFromMap(v model.View, m *guestfs.Map) ViewFS {
	if m == nil || !m.HasReadableFS() {
		why := "no filesystem readable by path"
		if m != nil {
			if u := m.Unattributed(); len(u) > 0 {
				why += " (" + strings.Join(u, "; ") + ")"
			}
		}
		return ViewFS{View: v, Err: fmt.Errorf("%s", why)}
	}
	return ViewFS{View: v, FS: MapFS(m)}
}

// isRollbackTarget: views an image can be reverted to.
func isRollbackTarget(k model.Kind) bool {
	return exposureOf(k) != ""
}

func exposureOf(k model.Kind) string {
	switch k {
	case model.KindSnapshot:
		return report.ExposureSnapshot
	case model.KindBacking:
		return report.ExposureBacking
	case model.KindLayer:
		return report.ExposureLayer
	}
	return ""
}

// AnalyzeFS compares each non-current disk view (snapshot, backing, layer)
// with the current view of the same image and returns one rollback-risk
// finding per difference that reverting to that view would bring back. A
// difference found in several views is one finding with a location per
// view. The caller opens the views' filesystems (the scanner has them
// already, see ViewFSFromMap). Views without a filesystem readable by path
// get one note each saying that rollback analysis was skipped and why;
// memory and unreferenced views are not rollback targets and are ignored.
// err is only the context's error.
func AnalyzeFS(ctx context.Context, target string, current ViewFS, others []ViewFS) ([]report.Finding, []string, error) {
	var notes []string
	var targets []ViewFS
	for _, o := range others {
		if isRollbackTarget(o.View.Kind) {
			targets = append(targets, o)
		}
	}
	if len(targets) == 0 {
		return nil, nil, ctx.Err()
	}
	if current.Err != nil || current.FS == nil {
		why := "no filesystem"
		if current.Err != nil {
			why = current.Err.Error()
		}
		return nil, []string{fmt.Sprintf("rollback analysis skipped for %s: the current view %s cannot be read: %s",
			plural(len(targets), "view"), current.View.ID, why)}, ctx.Err()
	}
	now, err := readState(ctx, current.FS)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range now.notes {
		notes = append(notes, fmt.Sprintf("rollback: current view %s: %s", current.View.ID, n))
	}
	var failed []string
	for c := range now.failed {
		failed = append(failed, c)
	}
	slices.Sort(failed)
	for _, c := range failed {
		notes = append(notes, fmt.Sprintf("rollback: %s not compared: a file of the current view %s could not be read", c, current.View.ID))
	}
	g := newGrouper(target)
	for _, o := range targets {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if o.Err != nil || o.FS == nil {
			why := "no filesystem"
			if o.Err != nil {
				why = o.Err.Error()
			}
			notes = append(notes, fmt.Sprintf("rollback analysis skipped for %s (%s): %s", viewPhrase(o.View), o.View.ID, why))
			continue
		}
		then, err := readState(ctx, o.FS)
		if err != nil {
			return nil, nil, err
		}
		for _, n := range then.notes {
			notes = append(notes, fmt.Sprintf("rollback: %s: %s", o.View.ID, n))
		}
		if then.rpmDB != "" {
			notes = append(notes, fmt.Sprintf("rollback: %s: RPM database in %s not compared (no pure-Go RPM database reader); package downgrades are checked for dpkg only", o.View.ID, then.rpmDB))
		}
		for _, r := range diff(then, now) {
			g.add(o.View, r)
		}
	}
	return g.findings(), notes, nil
}

// risk is one difference found in one view.
type risk struct {
	rule, severity string
	secret         string // fingerprinted, never stored in a finding
	keyFP          string
	preview        string
	path           string
	meta           map[string]string
	// describe builds the sentence given the view(s) it comes from, e.g.
	// "snapshot before-hardening", and the kind word ("snapshot").
	describe func(where, kind string) string
}

func fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// grouper merges the risks of all views into findings, one per rule and
// fingerprint, with one location per view and path.
type grouper struct {
	target string
	order  []string
	byKey  map[string]*group
}

type group struct {
	first risk
	f     report.Finding
	views []model.View
}

func newGrouper(target string) *grouper {
	return &grouper{target: target, byKey: map[string]*group{}}
}

func (g *grouper) add(v model.View, r risk) {
	fp := fingerprint(r.secret)
	key := r.rule + "\x00" + fp
	gr := g.byKey[key]
	if gr == nil {
		gr = &group{first: r, f: report.Finding{
			Rule: r.rule, Category: Category, Severity: r.severity, Fingerprint: fp,
			KeyFingerprint: r.keyFP, Preview: r.preview, OutsideGuestControl: true,
			Metadata: map[string]string{},
		}}
		g.byKey[key] = gr
		g.order = append(g.order, key)
	}
	exp := exposureOf(v.Kind)
	if !slices.Contains(gr.f.Exposure, exp) {
		gr.f.Exposure = append(gr.f.Exposure, exp)
	}
	if !slices.ContainsFunc(gr.views, func(x model.View) bool { return x.ID == v.ID }) {
		gr.views = append(gr.views, v)
	}
	loc := report.Location{Target: g.target, View: v.ID, ViewKind: string(v.Kind), Path: r.path,
		State: report.StateAllocated, Exposure: exp}
	if !slices.ContainsFunc(gr.f.Locations, func(l report.Location) bool {
		return l.Target == loc.Target && l.View == loc.View && l.Path == loc.Path && l.Exposure == loc.Exposure
	}) {
		gr.f.Locations = append(gr.f.Locations, loc)
	}
	for k, val := range r.meta {
		mergeMeta(gr.f.Metadata, k, val)
	}
}

// mergeMeta adds val to a comma-separated metadata value.
func mergeMeta(m map[string]string, k, val string) {
	old, ok := m[k]
	if !ok || old == "" {
		m[k] = val
		return
	}
	if !slices.Contains(strings.Split(old, ", "), val) {
		m[k] = old + ", " + val
	}
}

func (g *grouper) findings() []report.Finding {
	out := make([]report.Finding, 0, len(g.order))
	for _, key := range g.order {
		gr := g.byKey[key]
		f := gr.f
		ids := make([]string, len(gr.views))
		for i, v := range gr.views {
			ids[i] = v.ID
		}
		f.Metadata["view"] = strings.Join(ids, ", ")
		f.Description = gr.first.describe(viewsPhrase(gr.views), kindWord(gr.views[0].Kind))
		slices.SortFunc(f.Exposure, func(a, b string) int { return cmp.Compare(report.ExposureRank(a), report.ExposureRank(b)) })
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b report.Finding) int {
		return cmp.Or(cmp.Compare(report.SeverityRank(a.Severity), report.SeverityRank(b.Severity)),
			cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Description, b.Description))
	})
	return out
}

// kindWord names a view kind in a sentence.
func kindWord(k model.Kind) string {
	switch k {
	case model.KindBacking:
		return "backing file"
	case model.KindLayer:
		return "layer"
	}
	return string(k)
}

// viewPhrase names a view in a sentence: "snapshot before-hardening",
// "backing file base.qcow2", "snapshot golden of backing file base.qcow2".
func viewPhrase(v model.View) string {
	name := v.Name
	if name == "" {
		name = v.ID
	}
	s := kindWord(v.Kind) + " " + name
	if v.Kind != model.KindBacking {
		if _, rest, ok := strings.Cut(v.ID, "#backing:"); ok {
			b, _, _ := strings.Cut(rest, "#")
			s += " of backing file " + b
		}
	}
	return s
}

// viewsPhrase lists up to three views, then a count.
func viewsPhrase(vs []model.View) string {
	var names []string
	for i, v := range vs {
		if i == 3 {
			names = append(names, plural(len(vs)-3, "other view"))
			break
		}
		names = append(names, viewPhrase(v))
	}
	switch len(names) {
	case 1:
		return names[0]
	case 2:
		return names[0] + " or " + names[1]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func itoa(n int) string { return strconv.Itoa(n) }
