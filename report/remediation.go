package report

import (
	"cmp"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Remediation is one step that removes copies of a finding's secret.
type Remediation struct {
	// Class is the exposure class whose copies the step removes, or
	// RemediationAll for a step that concerns every copy (rotating the
	// credential, giving clones their own identity).
	Class string `json:"class"`
	// Action says what to do, naming the snapshot, backing file, image
	// file, saved RAM or layer concretely.
	Action string `json:"action"`
	// Command is one command that does it, with the real paths and names
	// (shell-quoted), where one command does; omitted otherwise. Commands
	// marked "in the guest" run inside the VM, the others on the host
	// with the VM shut down.
	Command string `json:"command,omitempty"`
}

// RemediationAll is the class of steps that concern every copy.
const RemediationAll = "all"

// Remediate says what removes each copy of f's secret: one step per
// snapshot, backing file, image file, RAM save or layer that holds a
// copy, after rotating the credential when any copy left the guest's
// control. r supplies the targets (backing files, formats, stores) the
// locations name; it may be nil.
func Remediate(r *Report, f *Finding) []Remediation {
	return newRemediator(r).remediate(f)
}

// remediator indexes a report's targets and timelines once for the
// findings' remediation.
type remediator struct {
	targets map[string]*Target
	views   map[string]*View
	// snapshotOf names the store snapshot a backing view holds (timeline
	// points of kind snapshot).
	snapshotOf map[string]string
	// configOf is the VM configuration file of a VM (VMware .vmx).
	configOf map[string]string
}

func newRemediator(r *Report) *remediator {
	rm := &remediator{targets: map[string]*Target{}, views: map[string]*View{}, snapshotOf: map[string]string{}, configOf: map[string]string{}}
	if r == nil {
		return rm
	}
	for i := range r.Targets {
		t := &r.Targets[i]
		rm.targets[t.Path] = t
		for j := range t.Views {
			rm.views[t.Views[j].ID] = &t.Views[j]
		}
	}
	for _, tl := range r.Timelines {
		for _, p := range tl.Points {
			if p.Kind == ExposureSnapshot && p.Name != "" {
				if v := rm.views[p.View]; v != nil && v.Kind == ExposureBacking {
					rm.snapshotOf[p.View] = p.Name
				}
			}
		}
	}
	return rm
}

func (rm *remediator) remediate(f *Finding) []Remediation {
	if f.Severity == SeverityInfo {
		// Public material: removing this copy removes nothing secret.
		return []Remediation{{Class: RemediationAll, Action: "none needed: public material that an installed package ships unmodified (see provenance); every machine that installed it has the same bytes"}}
	}
	var out []Remediation
	add := func(s Remediation) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	switch {
	case f.Category == CategoryClonedIdentity:
		for _, s := range rm.cloned(f) {
			add(s)
		}
	case IsSecret(f) && IsOutsideGuestControl(f):
		action := "rotate the credential: a copy is outside the guest's control"
		if f.KeyFingerprint != "" {
			action = "rotate the key and revoke " + f.KeyFingerprint + " wherever it is trusted: a copy is outside the guest's control"
		}
		add(Remediation{Class: RemediationAll, Action: action})
	}
	for _, l := range sortedLocations(f) {
		if f.Category == CategoryClonedIdentity && l.Exposure == ExposureLive {
			continue // the clones' own step says it
		}
		if s, ok := rm.step(f, l); ok {
			add(rm.onHost(s, l.Target))
		}
	}
	slices.SortStableFunc(out, func(a, b Remediation) int {
		return cmp.Compare(remediationRank(a.Class), remediationRank(b.Class))
	})
	return out
}

func remediationRank(class string) int {
	if class == RemediationAll {
		return -1
	}
	return ExposureRank(class)
}

// step is what removes the copy at l.
func (rm *remediator) step(f *Finding, l Location) (Remediation, bool) {
	t := rm.targets[l.Target]
	image := l.Target
	v := rm.views[l.View]
	s := Remediation{Class: l.Exposure}
	if ref, disk, ok := strings.Cut(l.Target, "!"); ok && l.LayerDigest != "" {
		// A VM disk built into a container image: the copy ships with
		// the image, whatever its class inside the disk.
		s.Action = fmt.Sprintf("remove the %s copy from the disk image %s before building it into %s (it is in %s); rebuild the image and delete the old one from registries", l.Exposure, disk, ref, layerName(l))
		return s, true
	}
	switch l.Exposure {
	case ExposureLive:
		switch {
		case l.LayerDigest != "":
			s.Action = fmt.Sprintf("remove %s from the build of %s and rebuild the image", cmp.Or(l.Path, "the file"), image)
		case f.Category == CategoryRollbackRisk:
			return s, false
		case WindowsPagefile(l.Path):
			// Windows keeps it while paging is on; deleting is not the
			// way to clear it.
			s.Action = fmt.Sprintf("in the guest, have Windows clear its paging file %s at shutdown (the policy \"Shutdown: Clear virtual memory pagefile\"), then shut it down; or turn paging off and delete the file", l.Path)
			s.Command = `reg add "HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management" /v ClearPageFileAtShutdown /t REG_DWORD /d 1 /f   # in the guest, then shut it down`
		case t != nil && l.Path != "" && slices.ContainsFunc(t.Partitions, func(p Partition) bool {
			return p.View == l.View && p.Name == l.Partition && slices.Contains(p.SwapFiles, l.Path)
		}):
			// A swap file keeps paged-out memory until overwritten, and
			// deleting it leaves its blocks in free space.
			s.Action = fmt.Sprintf("in the guest, turn off the swap file %s, overwrite it in place (shred -n 0 -z keeps its size and blocks), then mkswap and swapon it again: it keeps paged-out memory until overwritten, and deleting it leaves its blocks in free space", l.Path)
			q := shellQuote(l.Path)
			s.Command = fmt.Sprintf("swapoff %s && shred -n 0 -z %s && mkswap %s && swapon %s   # in the guest", q, q, q, q)
		case l.Path != "" && len(l.Links) > 0:
			// Every name: the bytes stay while one links to them.
			names := l.Names()
			q := make([]string, len(names))
			for i, n := range names {
				q[i] = shellQuote(n)
			}
			more := ""
			if l.LinksOmitted > 0 {
				more = fmt.Sprintf(" and its %s not listed (find / -samefile %s)", plural(l.LinksOmitted, "other name"), q[0])
			}
			s.Action = fmt.Sprintf("delete or replace %s in the guest (one file under %s: hard links)%s, then wipe free space", strings.Join(names, ", "), plural(len(names), "name"), more)
			s.Command = "rm -- " + strings.Join(q, " ") + "   # in the guest"
		case l.Path != "":
			s.Action = fmt.Sprintf("delete or replace %s in the guest, then wipe free space", l.Path)
			s.Command = "rm -- " + shellQuote(l.Path) + "   # in the guest"
		case t != nil && l.Partition != "" && slices.ContainsFunc(t.Partitions, func(p Partition) bool {
			return p.View == l.View && p.Name == l.Partition && p.FS == "swap"
		}):
			// Paged-out memory: deleting nothing removes it; only
			// overwriting the area does.
			s.Action = fmt.Sprintf("in the guest, turn off the swap area %s, overwrite it (blkdiscard -z, or dd from /dev/zero), then mkswap and swapon it again: it keeps paged-out memory until overwritten", l.Partition)
		case v != nil && v.Attrs["archive_file"] == "true":
			// A file an archive ships beside its disks (a Vagrantfile,
			// an OVF): not the guest's.
			s.Action = fmt.Sprintf("remove it from %s in the archive %s, repack the archive, and delete the old one", v.Name, image)
		default:
			s.Action = "remove it in the guest"
		}
	case ExposureDeleted:
		s.Action = fmt.Sprintf("wipe free space in %s (fstrim with discard in the guest, zerofree, or offline)", image)
		s.Command = "virt-sparsify --in-place " + shellQuote(image)
	case ExposureSnapshot:
		return rm.snapshotStep(s, l, t, v), true
	case ExposureBacking:
		if t != nil && t.Format == "vma" {
			s.Action = fmt.Sprintf("delete the backup %s", image)
			s.Command = "rm -- " + shellQuote(image)
			return s, true
		}
		file := rm.backingFile(t, v, l)
		if t != nil && t.Format == "parallels" {
			// A Parallels image names no parent: DiskDescriptor.xml
			// does, which qemu-img does not read, so a qemu-img
			// rewrite of one image would drop what its parents hold.
			s.Action = fmt.Sprintf("delete the Parallels snapshot whose image is %s (prlctl snapshot-delete, or the Snapshot Manager), which merges it into its child; its file keeps the copy until then", file)
			return s, true
		}
		s.Action = fmt.Sprintf("flatten %s off backing file %s, then delete or rewrite %s (every image on it has the copy)", image, file, file)
		if t != nil && t.Format == "qcow2" {
			s.Command = "qemu-img rebase -b '' " + shellQuote(image)
		} else {
			s.Command = "qemu-img convert -O " + cmp.Or(formatOf(t), "qcow2") + " " + shellQuote(image) + " " + shellQuote(image+".flat")
		}
	case ExposureUnreferenced:
		file, format := rm.unreferencedFile(t, l)
		if format == "parallels" && len(t.Backing) > 0 {
			// qemu-img convert of one image of a snapshot chain reads
			// its parents' clusters as zeros (see above).
			s.Action = fmt.Sprintf("rewrite %s so that unreferenced clusters go, with Parallels' own tools (clone the VM, or delete its snapshots first): qemu-img does not read the chain's DiskDescriptor.xml", file)
			return s, true
		}
		s.Action = fmt.Sprintf("rewrite %s so that unreferenced clusters go", file)
		s.Command = "qemu-img convert -O " + format + " " + shellQuote(file) + " " + shellQuote(file+".new") + " && mv " + shellQuote(file+".new") + " " + shellQuote(file)
	case ExposureMemory:
		if v != nil && t != nil && t.Format == "qcow2" && strings.Contains(l.View, "#memory:") {
			s.Action = fmt.Sprintf("delete snapshot %s of %s (its saved RAM)", v.Name, image)
			s.Command = "qemu-img snapshot -d " + shellQuote(v.Name) + " " + shellQuote(image)
			return s, true
		}
		s.Action = fmt.Sprintf("delete the saved RAM %s", image)
		s.Command = "rm -- " + shellQuote(image)
		if st := storeOf(t); st != nil && st.Kind == "libvirt" && strings.Contains(filepath.ToSlash(image), "/qemu/save/") {
			s.Command = "virsh managedsave-remove " + shellQuote(st.VM)
		}
	case ExposureLayer:
		s.Action = fmt.Sprintf("rebuild %s without %s of %s, and delete the old image from registries (squashing alone keeps old layers)", image, cmp.Or(l.Path, "the file"), layerName(l))
	default:
		s.Action = fmt.Sprintf("remove view %s of %s", l.View, image)
	}
	return s, true
}

// viewKindCurrent is a View.Kind: a target's current state.
const viewKindCurrent = "current"

// proxmoxThinSnapshot is how Proxmox names a VM disk's snapshot on an
// LVM-thin storage: the VM's ID and the snapshot's name.
var proxmoxThinSnapshot = regexp.MustCompile(`^snap_vm-(\d+)-disk-\d+_(.+)$`)

// snapshotStep deletes the snapshot that holds the copy: an internal
// snapshot, or the store snapshot a parent disk holds.
func (rm *remediator) snapshotStep(s Remediation, l Location, t *Target, v *View) Remediation {
	image := l.Target
	if v != nil && v.Kind == viewKindCurrent && strings.Count(l.Partition, "/") >= 1 {
		// An LVM2 thin snapshot volume on the disk ("vg/lv", then
		// whatever lies in it): Proxmox names its snapshots of a VM on
		// local-lvm snap_vm-ID-disk-N_NAME.
		vg, rest, _ := strings.Cut(l.Partition, "/")
		lv, _, _ := strings.Cut(rest, "/")
		if m := proxmoxThinSnapshot.FindStringSubmatch(lv); m != nil {
			s.Action = fmt.Sprintf("delete snapshot %s of VM %s (the thin volume %s/%s on %s), then discard the thin pool's free blocks", m[2], m[1], vg, lv, image)
			s.Command = "qm delsnapshot " + shellQuote(m[1]) + " " + shellQuote(m[2]) + "   # on the Proxmox host"
			return s
		}
		s.Action = fmt.Sprintf("delete the thin snapshot volume %s/%s on %s, then discard the thin pool's free blocks", vg, lv, image)
		s.Command = "lvremove " + shellQuote(vg+"/"+lv) + "   # on the host"
		return s
	}
	name := rm.snapshotOf[l.View]
	external := name != ""
	if !external && v != nil {
		name = v.Name
	}
	name = cmp.Or(name, l.View)
	st := storeOf(t)
	if !external {
		// An internal snapshot lives in the file whose view it is: the
		// image, or a backing file with snapshots of its own.
		if i := strings.LastIndex(l.View, "#backing:"); i >= 0 {
			if j := strings.Index(l.View[i:], "#snapshot:"); j > 0 {
				image = rm.backingFile(t, rm.views[l.View[:i+j]], l)
				st = nil // the backing file is no VM's own disk
			}
		}
	}
	switch {
	case st != nil && st.Kind == "libvirt" && external:
		holder := rm.backingFile(t, v, l)
		s.Action = fmt.Sprintf("delete snapshot %s of VM %s, then delete or rewrite %s, which holds its state", name, st.VM, holder)
		s.Command = "virsh snapshot-delete " + shellQuote(st.VM) + " " + shellQuote(name)
	case st != nil && st.Kind == "libvirt":
		s.Action = fmt.Sprintf("delete snapshot %s of VM %s, then rewrite %s (freed clusters keep the bytes)", name, st.VM, image)
		s.Command = "virsh snapshot-delete " + shellQuote(st.VM) + " " + shellQuote(name)
	case st != nil && st.Kind == "proxmox" && st.ID != "":
		s.Action = fmt.Sprintf("delete snapshot %s of VM %s, then rewrite %s (freed clusters keep the bytes)", name, st.ID, image)
		s.Command = "qm delsnapshot " + shellQuote(st.ID) + " " + shellQuote(name)
	case st != nil && st.Kind == "vmware":
		s.Action = fmt.Sprintf("delete snapshot %s of VM %s (consolidates the delta disks)", name, st.VM)
		if st.Config != "" {
			s.Command = "vmrun deleteSnapshot " + shellQuote(st.Config) + " " + shellQuote(name)
		}
	case external:
		s.Action = fmt.Sprintf("delete snapshot %s of %s, then delete or rewrite %s, which holds its state", name, image, rm.backingFile(t, v, l))
	default:
		s.Action = fmt.Sprintf("delete snapshot %s of %s, then rewrite the image (freed clusters keep the bytes)", name, image)
		s.Command = "qemu-img snapshot -d " + shellQuote(name) + " " + shellQuote(image)
	}
	return s
}

// backingFile is the host path of the backing file a backing view reads.
func (rm *remediator) backingFile(t *Target, v *View, l Location) string {
	if v != nil && t != nil {
		for _, b := range t.Backing {
			if b.Name == v.Name || filepath.Base(b.Path) == v.Name || filepath.Base(b.Name) == v.Name {
				return cmp.Or(b.Path, b.Name)
			}
		}
		return v.Name
	}
	return cmp.Or(l.File, l.View)
}

// unreferencedFile is the image file whose unreferenced clusters hold the
// copy (the target's own, or a backing file's: "T#backing:Y#unreferenced"),
// and its format.
func (rm *remediator) unreferencedFile(t *Target, l Location) (string, string) {
	if i := strings.LastIndex(l.View, "#unreferenced"); i > 0 {
		if v := rm.views[l.View[:i]]; v != nil && v.Kind == ExposureBacking && t != nil {
			for _, b := range t.Backing {
				if b.Name == v.Name || filepath.Base(b.Path) == v.Name {
					return cmp.Or(b.Path, b.Name), cmp.Or(b.Format, "qcow2")
				}
			}
		}
	}
	return l.Target, cmp.Or(formatOf(t), "qcow2")
}

// cloned gives every clone but one its own identity.
func (rm *remediator) cloned(f *Finding) []Remediation {
	kind := f.Metadata["identity_kind"]
	op := ""
	switch kind {
	case "ssh-host-key":
		op = "ssh-hostkeys"
	case "machine-id":
		op = "machine-id"
	}
	var out []Remediation
	var images []string
	for _, l := range f.Locations {
		if l.Exposure == ExposureLive && !slices.Contains(images, l.Target) {
			images = append(images, l.Target)
		}
	}
	for _, image := range images {
		s := Remediation{Class: RemediationAll, Action: fmt.Sprintf("give %s its own %s (in every clone but one)", image, strings.ReplaceAll(cmp.Or(kind, "identity"), "-", " "))}
		if op != "" {
			s.Command = "virt-sysprep -a " + shellQuote(image) + " --operations " + op
		}
		out = append(out, rm.onHost(s, image))
	}
	return out
}

// WindowsPagefile reports a Windows paging file at a volume's root
// (pagefile.sys, and swapfile.sys for store apps): raw pages of paged-out
// memory, known by name only. The scanner searches them with the memory
// rules; their remediation is Windows' own.
func WindowsPagefile(p string) bool {
	switch strings.ToLower(p) {
	case "/pagefile.sys", "/swapfile.sys":
		return true
	}
	return false
}

// onHost rewrites a step for an image found as a file in another
// target's guest filesystem (Target.Inside: a VM's disk on a hypervisor
// host's disk): its name in the report ("host.raw#current:p1:/var/lib/
// libvirt/images/web01.qcow2") is no path anyone can open; the commands
// name the file by its path in that filesystem, to be run on the machine
// whose disk the outer target is, and the action says so.
func (rm *remediator) onHost(s Remediation, target string) Remediation {
	t := rm.targets[target]
	if t == nil || t.Inside == nil {
		return s
	}
	in := t.Inside
	prefix := in.View + ":"
	if in.Partition != "" {
		prefix += in.Partition + ":"
	}
	where := "on the machine whose disk is " + in.Target
	if strings.Contains(s.Command, prefix) {
		s.Command = strings.ReplaceAll(s.Command, prefix, "") + "   # " + where
	}
	if strings.Contains(s.Action, prefix) {
		s.Action = where + ": " + strings.ReplaceAll(s.Action, prefix, "")
	}
	return s
}

// layerName names the container layer of a location: "layer 2 (sha256:…)".
func layerName(l Location) string {
	layer := "a layer"
	if l.LayerIndex != nil {
		layer = "layer " + strconv.Itoa(*l.LayerIndex)
	}
	if l.LayerDigest != "" {
		layer += " (" + l.LayerDigest + ")"
	}
	return layer
}

func storeOf(t *Target) *StoreInfo {
	if t == nil {
		return nil
	}
	return t.Store
}

// formatOf is the qemu-img format name of a target.
func formatOf(t *Target) string {
	if t == nil {
		return ""
	}
	switch t.Format {
	case "qcow2", "vmdk", "vdi", "vhdx", "parallels", "qed", "raw":
		return t.Format
	case "vhd":
		return "vpc"
	}
	return ""
}

// shellQuote quotes s for a POSIX shell where it needs it: names from an
// image (a snapshot called "x; rm -rf /") must not become commands.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:@%+=,-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
