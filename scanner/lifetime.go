package scanner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
)

// vmName is the VM a target belongs to: the name store discovery gave it,
// else the image file's name without its extension.
func (t *target) vmName() string {
	if t.vm != "" {
		return t.vm
	}
	b := filepath.Base(t.path)
	if i := strings.IndexByte(b, '.'); i > 0 {
		b = b[:i]
	}
	return b
}

// buildTimelines orders each VM's views in time and records, per secret,
// the points at which it exists.
func buildTimelines(ts []*target, findings []report.Finding) []report.Timeline {
	byVM := map[string][]*target{}
	var order []string
	for _, t := range ts {
		if t.img == nil || (t.plainData() && t.vm == "") {
			continue
		}
		vm := t.vmName()
		if byVM[vm] == nil {
			order = append(order, vm)
		}
		byVM[vm] = append(byVM[vm], t)
	}
	var out []report.Timeline
	for _, vm := range order {
		tl := report.Timeline{VM: vm, Points: []report.TimelinePoint{}, Secrets: []report.TimelineRow{}}
		// alias maps the extra memory views of a save (ROM blocks,
		// superseded pages) to the save's own point, and the unreferenced
		// clusters of an image file to the point of the view that file
		// holds (residue of that point).
		alias := map[string]string{}
		for _, t := range byVM[vm] {
			tl.Targets = append(tl.Targets, t.path)
			if t.plainData() {
				continue
			}
			var mainMemory string
			for _, v := range t.views {
				if v.view.Kind == model.KindMemory && mainMemory != "" && strings.HasPrefix(v.view.ID, mainMemory) {
					alias[v.view.ID] = mainMemory
					continue
				}
				if v.view.Kind == model.KindUnreferenced || v.view.Attrs[model.AttrArchiveFile] == "true" {
					// A file an archive ships beside its disks is there
					// now, as its disks are: no column of its own.
					if owner := unreferencedOwner(t, v); owner != "" {
						alias[v.view.ID] = owner
					}
					continue
				}
				if p, ok := timelinePoint(t, v); ok {
					tl.Points = append(tl.Points, p)
					if v.view.Kind == model.KindMemory {
						mainMemory = v.view.ID
					}
				}
			}
		}
		sort.SliceStable(tl.Points, func(i, j int) bool { return pointBefore(tl.Points[i], tl.Points[j]) })
		labelCurrentDisks(tl.Points)
		index := map[string]int{}
		for i, p := range tl.Points {
			index[p.View] = i
		}
		for from, to := range alias {
			index[from] = index[to]
		}
		for _, f := range findings {
			if f.Category == report.CategoryRollbackRisk || f.Category == report.CategoryClonedIdentity {
				continue // derived from the secrets' own rows
			}
			if f.Severity == report.SeverityInfo {
				continue // public material: no secret's history
			}
			var at []int
			file := map[int]bool{} // points where a file (not residue) holds it
			current := false
			for _, l := range f.Locations {
				i, ok := index[l.View]
				if !ok {
					continue
				}
				if !slices.Contains(at, i) {
					at = append(at, i)
				}
				if l.ViewKind != string(model.KindUnreferenced) && l.State != report.StateFree {
					file[i] = true
				}
				if l.ViewKind == string(model.KindCurrent) {
					current = true
				}
			}
			if len(at) == 0 {
				continue
			}
			slices.Sort(at)
			row := report.TimelineRow{Fingerprint: f.Fingerprint, Rule: f.Rule, Preview: f.Preview, Current: current}
			for _, i := range at {
				row.Present = append(row.Present, tl.Points[i].View)
				if !file[i] {
					row.Residue = append(row.Residue, tl.Points[i].View)
				}
			}
			row.First, row.Last = row.Present[0], row.Present[len(row.Present)-1]
			tl.Secrets = append(tl.Secrets, row)
		}
		if len(tl.Points) > 0 {
			out = append(out, tl)
		}
	}
	return out
}

// unreferencedOwner is the point view whose image file holds the
// unreferenced view's clusters: the backing view of a backing file's
// clusters ("T#backing:b#unreferenced"), else the current view (that of
// the first disk, for an archive's file).
func unreferencedOwner(t *target, v *viewState) string {
	id := v.view.ID
	if i := strings.LastIndex(id, "#unreferenced"); i > 0 {
		prefix := id[:i]
		for _, o := range t.views {
			if o.view.ID == prefix && o.view.Kind == model.KindBacking {
				return prefix
			}
		}
	}
	for _, o := range t.views {
		if o.view.Kind == model.KindCurrent && o.view.Attrs[model.AttrArchiveFile] != "true" {
			return o.view.ID
		}
	}
	return ""
}

// timelinePoint describes a view as a point in time; unreferenced bytes
// belong to no point in time.
func timelinePoint(t *target, v *viewState) (report.TimelinePoint, bool) {
	kind := string(v.view.Kind)
	switch v.view.Kind {
	case model.KindUnreferenced:
		return report.TimelinePoint{}, false
	case model.KindBacking:
		if !v.view.Created.IsZero() {
			kind = "backup"
		}
	}
	p := report.TimelinePoint{View: v.view.ID, Target: t.path, Kind: kind, Name: v.view.Name}
	created := v.view.Created
	if v.view.Kind == model.KindMemory && created.IsZero() && !t.saved.IsZero() {
		// A memory file found by store discovery: its save time.
		created = t.saved
		if t.savedFor != "" {
			p.Name = t.savedFor
		}
	}
	if sn, ok := t.snapshots[v.view.Name]; ok && v.view.Kind == model.KindBacking {
		// A parent disk that holds a snapshot's state (VMware delta chains,
		// libvirt external snapshots): name it after the snapshot.
		p.Kind, p.Name = string(model.KindSnapshot), sn.Name
		created = sn.Created
	}
	if !created.IsZero() {
		c := created.UTC()
		p.Time = &c
	}
	switch v.view.Kind {
	case model.KindCurrent:
		p.Label = "now"
	case model.KindMemory:
		p.Label = "mem:" + p.Name
		if p.Name == "" || p.Name == "memory" {
			p.Label = "mem:save"
		}
	default:
		p.Label = p.Name
	}
	if p.Label == "" {
		p.Label = v.view.ID
	}
	return p, true
}

// labelCurrentDisks labels the current points of a VM of several disks
// "now:" and the disk (the view's name, an archive's member, else the
// target's file name): each disk's current state is "now", and columns
// that all read "now" would not say which is which.
func labelCurrentDisks(points []report.TimelinePoint) {
	var current []int
	for i, p := range points {
		if p.Kind == string(model.KindCurrent) {
			current = append(current, i)
		}
	}
	if len(current) < 2 {
		return
	}
	for _, i := range current {
		disk := points[i].Name
		if disk == "" || disk == string(model.KindCurrent) {
			disk = filepath.Base(points[i].Target)
		}
		points[i].Label = "now:" + disk
	}
}

// pointBefore orders points: backing files first (deepest, i.e. oldest,
// first), then dated points by time, then the current state.
func pointBefore(a, b report.TimelinePoint) bool {
	ra, rb := pointRank(a), pointRank(b)
	if ra != rb {
		return ra < rb
	}
	if a.Time != nil && b.Time != nil && !a.Time.Equal(*b.Time) {
		return a.Time.Before(*b.Time)
	}
	if ra == 0 {
		// Undated backing views: a longer ID is a deeper link of the chain.
		return strings.Count(a.View, "#backing:") > strings.Count(b.View, "#backing:")
	}
	return false
}

func pointRank(p report.TimelinePoint) int {
	switch {
	case p.Kind == string(model.KindCurrent):
		return 2
	case p.Time == nil && p.Kind == string(model.KindBacking):
		return 0
	}
	return 1
}

// identityKind names the kind of identity f is (ssh-host-key, tls-key,
// wireguard-key, tsig-key, private-key), or "" for a secret that is none: the
// shared secrets that make clones, one machine's identity copied into many.
func identityKind(f *report.Finding) string {
	if strings.HasPrefix(f.Rule, "wireguard-private") {
		return "wireguard-key"
	}
	if f.Rule == "dns-tsig-key" {
		return "tsig-key" // rndc.key: control of the name server
	}
	if f.Category != "private-key" {
		return ""
	}
	kind := "private-key"
	for _, l := range f.Locations {
		for _, p := range l.Names() { // a hard link elsewhere is the same file
			switch {
			case strings.HasPrefix(p, "/etc/ssh/ssh_host_"):
				return "ssh-host-key"
			case strings.HasPrefix(p, "/etc/ssl/"), strings.HasPrefix(p, "/etc/pki/"):
				kind = "tls-key"
			}
		}
	}
	return kind
}

// sharedIdentity reports every fingerprint seen in more than one VM, and
// adds a cloned-identity finding for keys and machine IDs, so that
// --fail-on catches cloned machines.
func (s *Scanner) sharedIdentity(ctx context.Context, ts []*target, rep *report.Report) {
	vmOf := map[string]string{}
	vms := map[string]bool{}
	for _, t := range ts {
		if t.img != nil && !t.plainData() {
			vmOf[t.path] = t.vmName()
			vms[t.vmName()] = true
		}
	}
	if len(vms) < 2 {
		return
	}
	var clones []report.Finding
	for i := range rep.Findings {
		f := &rep.Findings[i]
		if f.Severity == report.SeverityInfo {
			continue // public bytes (a library's self-test key) identify no machine
		}
		var names, paths []string
		for _, l := range f.Locations {
			if vm, ok := vmOf[l.Target]; ok && !slices.Contains(names, vm) {
				names = append(names, vm)
			}
			if l.Path != "" && !slices.Contains(paths, l.Path) {
				paths = append(paths, l.Path)
			}
		}
		if len(names) < 2 {
			continue
		}
		slices.Sort(names)
		kind := identityKind(f)
		shared := report.SharedIdentity{
			Fingerprint: f.Fingerprint, Kind: cmpOr(kind, "secret"), Rule: f.Rule,
			Preview: f.Preview, KeyFingerprint: f.KeyFingerprint, VMs: names, Paths: paths,
		}
		rep.SharedIdentity = append(rep.SharedIdentity, shared)
		if kind != "" {
			clones = append(clones, clonedFinding(shared, "high", f.Locations))
		}
	}
	for _, m := range s.machineIDs(ctx, ts) {
		rep.SharedIdentity = append(rep.SharedIdentity, m.shared)
		clones = append(clones, clonedFinding(m.shared, "medium", m.locs))
	}
	rep.Findings = append(rep.Findings, s.dropDisabled(clones)...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func clonedFinding(sh report.SharedIdentity, severity string, locs []report.Location) report.Finding {
	f := report.Finding{
		Rule: RuleClonedIdentity, Category: report.CategoryClonedIdentity, Severity: severity,
		Description: fmt.Sprintf("The same %s is in %d VMs (%s): clones share one identity", strings.ReplaceAll(sh.Kind, "-", " "), len(sh.VMs), strings.Join(sh.VMs, ", ")),
		Fingerprint: sh.Fingerprint, KeyFingerprint: sh.KeyFingerprint, Preview: sh.Preview,
		Metadata:  map[string]string{"identity_kind": sh.Kind, "vms": strings.Join(sh.VMs, ",")},
		Locations: slices.Clone(locs),
	}
	report.RecomputeExposure(&f)
	return f
}

type machineID struct {
	shared report.SharedIdentity
	locs   []report.Location
}

// machineIDs reads /etc/machine-id from each VM's current state and returns
// the IDs that more than one VM shares.
func (s *Scanner) machineIDs(ctx context.Context, ts []*target) []machineID {
	type seen struct {
		vms  []string
		locs []report.Location
		n    int
	}
	ids := map[string]*seen{}
	var order []string
	for _, t := range ts {
		if t.plainData() {
			continue
		}
		for _, v := range t.views {
			if v.view.Kind != model.KindCurrent || v.view.Disk == nil {
				continue
			}
			fi := v.filesystem(ctx)
			if fi == nil || fi.m == nil {
				continue
			}
			b, err := fi.m.ReadFile("/etc/machine-id")
			if err != nil {
				continue
			}
			id := string(bytes.TrimSpace(b))
			if len(id) < 16 || strings.Trim(id, "0") == "" || id == "uninitialized" {
				continue // empty, zeroed or first-boot placeholder: not an identity yet
			}
			sum := sha256.Sum256([]byte(id))
			fp := "sha256:" + hex.EncodeToString(sum[:])
			if ids[fp] == nil {
				ids[fp] = &seen{}
				order = append(order, fp)
			}
			e := ids[fp]
			e.n = len(id)
			if !slices.Contains(e.vms, t.vmName()) {
				e.vms = append(e.vms, t.vmName())
			}
			e.locs = append(e.locs, report.Location{
				Target: t.path, View: v.view.ID, ViewKind: string(v.view.Kind),
				Path: "/etc/machine-id", State: report.StateAllocated, Exposure: report.ExposureLive,
			})
		}
	}
	var out []machineID
	for _, fp := range order {
		e := ids[fp]
		if len(e.vms) < 2 {
			continue
		}
		slices.Sort(e.vms)
		out = append(out, machineID{
			shared: report.SharedIdentity{Fingerprint: fp, Kind: "machine-id", Rule: RuleClonedIdentity,
				Preview: fmt.Sprintf("machine-id …(%d chars)", e.n), VMs: e.vms, Paths: []string{"/etc/machine-id"}},
			locs: e.locs,
		})
	}
	return out
}
