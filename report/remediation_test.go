package report

import (
	"slices"
	"strings"
	"testing"
)

// TestRemediate: each class of copy gets the step that removes it, naming
// the snapshot, backing file, image file, RAM save or layer, with the real
// paths in the command; rotation comes first whenever a copy is outside
// the guest's control.
func TestRemediate(t *testing.T) {
	layer := 2
	web := Target{Path: "/srv/web01.qcow2", Format: "qcow2",
		Backing: []Backing{{Name: "base.qcow2", Path: "/srv/base.qcow2", Format: "qcow2"}},
		Views: []View{
			{ID: "web01.qcow2#current", Kind: "current", Name: "current"},
			{ID: "web01.qcow2#snapshot:golden", Kind: "snapshot", Name: "golden"},
			{ID: "web01.qcow2#snapshot:x; rm -rf ~", Kind: "snapshot", Name: "x; rm -rf ~"},
			{ID: "web01.qcow2#memory:golden", Kind: "memory", Name: "golden"},
			{ID: "web01.qcow2#backing:base.qcow2", Kind: "backing", Name: "base.qcow2"},
			{ID: "web01.qcow2#backing:base.qcow2#snapshot:s0", Kind: "snapshot", Name: "s0"},
			{ID: "web01.qcow2#backing:base.qcow2#unreferenced", Kind: "unreferenced", Name: "base.qcow2"},
			{ID: "web01.qcow2#unreferenced", Kind: "unreferenced", Name: "web01.qcow2"},
		}}
	prl := Target{Path: "/vm/w.hdd/w.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds", Format: "parallels",
		Backing: []Backing{{Name: "w.hdd.0.root.hds", Path: "/vm/w.hdd/w.hdd.0.root.hds", Format: "parallels"}},
		Views: []View{
			{ID: "top.hds#current", Kind: "current", Name: "current"},
			{ID: "top.hds#backing:w.hdd.0.root.hds", Kind: "backing", Name: "w.hdd.0.root.hds"},
			{ID: "top.hds#unreferenced", Kind: "unreferenced", Name: "top.hds"},
		}}
	libvirt := Target{Path: "/var/lib/libvirt/images/db.pre", Format: "qcow2",
		Backing: []Backing{{Name: "/var/lib/libvirt/images/db.qcow2", Path: "/var/lib/libvirt/images/db.qcow2", Format: "qcow2"}},
		Store:   &StoreInfo{Kind: "libvirt", VM: "db"},
		Views: []View{
			{ID: "db.pre#current", Kind: "current", Name: "current"},
			{ID: "db.pre#backing:db.qcow2", Kind: "backing", Name: "db.qcow2"},
			{ID: "db.pre#snapshot:s1", Kind: "snapshot", Name: "s1"},
		}}
	save := Target{Path: "/var/lib/libvirt/qemu/save/db.save", Format: "libvirt-save", Store: &StoreInfo{Kind: "libvirt", VM: "db"},
		Views: []View{{ID: "db.save#memory", Kind: "memory", Name: "memory"}}}
	vmware := Target{Path: "/vm/web/web-000001.vmdk", Format: "vmdk", Store: &StoreInfo{Kind: "vmware", VM: "web", Config: "/vm/web/web.vmx"},
		Backing: []Backing{{Name: "web.vmdk", Path: "/vm/web/web.vmdk", Format: "vmdk"}},
		Views:   []View{{ID: "web-000001.vmdk#backing:web.vmdk", Kind: "backing", Name: "web.vmdk"}}}
	pve := Target{Path: "/pve/images/100/vm-100-disk-0.qcow2", Format: "qcow2", Store: &StoreInfo{Kind: "proxmox", VM: "vm100", ID: "100"},
		Views: []View{{ID: "vm-100-disk-0.qcow2#snapshot:before", Kind: "snapshot", Name: "before"}}}
	host := Target{Path: "/img/pve-host.raw", Format: "raw", Views: []View{{ID: "pve-host.raw#current", Kind: "current", Name: "current"}},
		Partitions: []Partition{{View: "pve-host.raw#current", Name: "p3", FS: "swap"}, {View: "pve-host.raw#current", Name: "p2", FS: "ext4", SwapFiles: []string{"/swap.img"}}}}
	vma := Target{Path: "/pve/dump/vzdump-qemu-100.vma", Format: "vma", Views: []View{{ID: "vzdump-qemu-100.vma#backing:disk0", Kind: "backing", Name: "disk0"}}}
	vhd := Target{Path: "/h/diff.vhd", Format: "vhd", Backing: []Backing{{Name: "parent.vhd", Path: "/h/parent.vhd", Format: "vhd"}},
		Views: []View{{ID: "diff.vhd#backing:parent.vhd", Kind: "backing", Name: "parent.vhd"}}}
	// A VM's disk found as a file on a hypervisor host's disk: a target
	// of its own, named by the host's view, partition and path.
	inner := Target{Path: "host.raw#current:p1:/var/lib/libvirt/images/web01.qcow2", Format: "qcow2",
		Inside: &Containment{Target: "/srv/host.raw", View: "host.raw#current", Partition: "p1", Path: "/var/lib/libvirt/images/web01.qcow2"},
		Views: []View{
			{ID: "host.raw#current:p1:/var/lib/libvirt/images/web01.qcow2#current", Kind: "current", Name: "current"},
			{ID: "host.raw#current:p1:/var/lib/libvirt/images/web01.qcow2#snapshot:golden", Kind: "snapshot", Name: "golden"},
		}}
	r := &Report{
		Targets: []Target{web, prl, libvirt, save, vmware, pve, host, vma, vhd, inner, {Path: "reg.example/app:1@sha256:ab"}},
		Timelines: []Timeline{
			{VM: "db", Points: []TimelinePoint{{View: "db.pre#backing:db.qcow2", Kind: "snapshot", Name: "pre-rotate"}}},
			{VM: "web", Points: []TimelinePoint{{View: "web-000001.vmdk#backing:web.vmdk", Kind: "snapshot", Name: "clean install"}}},
		},
	}
	loc := func(target, view, class string) Location {
		return Location{Target: target, View: view, Exposure: class, State: StateAllocated}
	}
	rotate := Remediation{Class: RemediationAll, Action: "rotate the credential: a copy is outside the guest's control"}
	cases := []struct {
		name string
		f    Finding
		want []Remediation
	}{
		{"live only: the guest can remove it", Finding{Category: "cloud", Locations: []Location{{Target: web.Path, View: "web01.qcow2#current", Path: "/root/.aws/credentials", Exposure: ExposureLive}}},
			[]Remediation{{ExposureLive, "delete or replace /root/.aws/credentials in the guest, then wipe free space", "rm -- /root/.aws/credentials   # in the guest"}}},
		{"live under several names (hard links), one hostile: every name removed, quoted", Finding{Category: "private-key", Locations: []Location{{Target: web.Path, View: "web01.qcow2#current", Path: "/srv/testdata/tls.key", Links: []string{"/etc/ssl/private/tls.key", "/tmp/x; rm -rf ~"}, Exposure: ExposureLive}}},
			[]Remediation{{ExposureLive, "delete or replace /srv/testdata/tls.key, /etc/ssl/private/tls.key, /tmp/x; rm -rf ~ in the guest (one file under 3 names: hard links), then wipe free space", "rm -- /srv/testdata/tls.key /etc/ssl/private/tls.key '/tmp/x; rm -rf ~'   # in the guest"}}},
		{"live under more names than listed", Finding{Category: "private-key", Locations: []Location{{Target: web.Path, View: "web01.qcow2#current", Path: "/a.key", Links: []string{"/b.key"}, LinksOmitted: 3, Exposure: ExposureLive}}},
			[]Remediation{{ExposureLive, "delete or replace /a.key, /b.key in the guest (one file under 2 names: hard links) and its 3 other names not listed (find / -samefile /a.key), then wipe free space", "rm -- /a.key /b.key   # in the guest"}}},
		{"deleted", Finding{Category: "cloud", Locations: []Location{{Target: web.Path, View: "web01.qcow2#current", State: StateFree, Exposure: ExposureDeleted}}},
			[]Remediation{rotate, {ExposureDeleted, "wipe free space in /srv/web01.qcow2 (fstrim with discard in the guest, zerofree, or offline)", "virt-sparsify --in-place /srv/web01.qcow2"}}},
		{"internal snapshot, and a hostile snapshot name quoted", Finding{Category: "cloud", Locations: []Location{loc(web.Path, "web01.qcow2#snapshot:golden", ExposureSnapshot), loc(web.Path, "web01.qcow2#snapshot:x; rm -rf ~", ExposureSnapshot)}},
			[]Remediation{rotate,
				{ExposureSnapshot, "delete snapshot golden of /srv/web01.qcow2, then rewrite the image (freed clusters keep the bytes)", "qemu-img snapshot -d golden /srv/web01.qcow2"},
				{ExposureSnapshot, "delete snapshot x; rm -rf ~ of /srv/web01.qcow2, then rewrite the image (freed clusters keep the bytes)", "qemu-img snapshot -d 'x; rm -rf ~' /srv/web01.qcow2"}}},
		{"a backing file's own snapshot", Finding{Category: "cloud", Locations: []Location{loc(web.Path, "web01.qcow2#backing:base.qcow2#snapshot:s0", ExposureSnapshot)}},
			[]Remediation{rotate, {ExposureSnapshot, "delete snapshot s0 of /srv/base.qcow2, then rewrite the image (freed clusters keep the bytes)", "qemu-img snapshot -d s0 /srv/base.qcow2"}}},
		{"backing file read through: live and backing", Finding{Category: "cloud", Locations: []Location{loc(web.Path, "web01.qcow2#backing:base.qcow2", ExposureBacking), {Target: web.Path, View: "web01.qcow2#current", Path: "/etc/app.env", Exposure: ExposureLive}}},
			[]Remediation{rotate,
				{ExposureBacking, "flatten /srv/web01.qcow2 off backing file /srv/base.qcow2, then delete or rewrite /srv/base.qcow2 (every image on it has the copy)", "qemu-img rebase -b '' /srv/web01.qcow2"},
				{ExposureLive, "delete or replace /etc/app.env in the guest, then wipe free space", "rm -- /etc/app.env   # in the guest"}}},
		{"unreferenced clusters of the image and of its backing file", Finding{Category: "cloud", Locations: []Location{loc(web.Path, "web01.qcow2#unreferenced", ExposureUnreferenced), loc(web.Path, "web01.qcow2#backing:base.qcow2#unreferenced", ExposureUnreferenced)}},
			[]Remediation{rotate,
				{ExposureUnreferenced, "rewrite /srv/base.qcow2 so that unreferenced clusters go", "qemu-img convert -O qcow2 /srv/base.qcow2 /srv/base.qcow2.new && mv /srv/base.qcow2.new /srv/base.qcow2"},
				{ExposureUnreferenced, "rewrite /srv/web01.qcow2 so that unreferenced clusters go", "qemu-img convert -O qcow2 /srv/web01.qcow2 /srv/web01.qcow2.new && mv /srv/web01.qcow2.new /srv/web01.qcow2"}}},
		{"Parallels: a parent snapshot image, and the top image's unreferenced clusters: no qemu-img rewrite of one image of the chain", Finding{Category: "cloud", Locations: []Location{loc(prl.Path, "top.hds#backing:w.hdd.0.root.hds", ExposureBacking), loc(prl.Path, "top.hds#unreferenced", ExposureUnreferenced)}},
			[]Remediation{rotate,
				{ExposureBacking, "delete the Parallels snapshot whose image is /vm/w.hdd/w.hdd.0.root.hds (prlctl snapshot-delete, or the Snapshot Manager), which merges it into its child; its file keeps the copy until then", ""},
				{ExposureUnreferenced, "rewrite /vm/w.hdd/w.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds so that unreferenced clusters go, with Parallels' own tools (clone the VM, or delete its snapshots first): qemu-img does not read the chain's DiskDescriptor.xml", ""}}},
		{"a snapshot's saved RAM", Finding{Category: "memory", Locations: []Location{loc(web.Path, "web01.qcow2#memory:golden", ExposureMemory)}},
			[]Remediation{rotate, {ExposureMemory, "delete snapshot golden of /srv/web01.qcow2 (its saved RAM)", "qemu-img snapshot -d golden /srv/web01.qcow2"}}},
		{"libvirt: external snapshot, internal snapshot, managed save", Finding{Category: "cloud", Locations: []Location{loc(libvirt.Path, "db.pre#backing:db.qcow2", ExposureSnapshot), loc(libvirt.Path, "db.pre#snapshot:s1", ExposureSnapshot), loc(save.Path, "db.save#memory", ExposureMemory)}},
			[]Remediation{rotate,
				{ExposureSnapshot, "delete snapshot pre-rotate of VM db, then delete or rewrite /var/lib/libvirt/images/db.qcow2, which holds its state", "virsh snapshot-delete db pre-rotate"},
				{ExposureSnapshot, "delete snapshot s1 of VM db, then rewrite /var/lib/libvirt/images/db.pre (freed clusters keep the bytes)", "virsh snapshot-delete db s1"},
				{ExposureMemory, "delete the saved RAM /var/lib/libvirt/qemu/save/db.save", "virsh managedsave-remove db"}}},
		{"VMware parent disk holding a snapshot", Finding{Category: "cloud", Locations: []Location{loc(vmware.Path, "web-000001.vmdk#backing:web.vmdk", ExposureSnapshot)}},
			[]Remediation{rotate, {ExposureSnapshot, "delete snapshot clean install of VM web (consolidates the delta disks)", "vmrun deleteSnapshot /vm/web/web.vmx 'clean install'"}}},
		{"Proxmox snapshot", Finding{Category: "cloud", Locations: []Location{loc(pve.Path, "vm-100-disk-0.qcow2#snapshot:before", ExposureSnapshot)}},
			[]Remediation{rotate, {ExposureSnapshot, "delete snapshot before of VM 100, then rewrite /pve/images/100/vm-100-disk-0.qcow2 (freed clusters keep the bytes)", "qm delsnapshot 100 before"}}},
		{"LVM thin snapshots on a host's disk: Proxmox's, and another's", Finding{Category: "cloud", Locations: []Location{
			{Target: host.Path, View: "pve-host.raw#current", Partition: "pve/snap_vm-100-disk-0_before/p1", Exposure: ExposureSnapshot},
			{Target: host.Path, View: "pve-host.raw#current", Partition: "vg0/nightly/ubuntu-vg/ubuntu-lv", Exposure: ExposureSnapshot}}},
			[]Remediation{rotate,
				{ExposureSnapshot, "delete snapshot before of VM 100 (the thin volume pve/snap_vm-100-disk-0_before on /img/pve-host.raw), then discard the thin pool's free blocks", "qm delsnapshot 100 before   # on the Proxmox host"},
				{ExposureSnapshot, "delete the thin snapshot volume vg0/nightly on /img/pve-host.raw, then discard the thin pool's free blocks", "lvremove vg0/nightly   # on the host"}}},
		{"in a swap partition: overwrite it", Finding{Category: "cloud", Locations: []Location{
			{Target: host.Path, View: "pve-host.raw#current", Partition: "p3", State: StateUnknown, Exposure: ExposureLive},
			{Target: host.Path, View: "pve-host.raw#current", Partition: "p2", State: StateUnknown, Exposure: ExposureLive}}},
			[]Remediation{
				{ExposureLive, "in the guest, turn off the swap area p3, overwrite it (blkdiscard -z, or dd from /dev/zero), then mkswap and swapon it again: it keeps paged-out memory until overwritten", ""},
				{ExposureLive, "remove it in the guest", ""}}},
		{"in a swap file: overwrite it in place; another file of the same name elsewhere is a file", Finding{Category: "cloud", Locations: []Location{
			{Target: host.Path, View: "pve-host.raw#current", Partition: "p2", Path: "/swap.img", State: StateAllocated, Exposure: ExposureLive},
			{Target: host.Path, View: "pve-host.raw#current", Partition: "p3", Path: "/swap.img", State: StateAllocated, Exposure: ExposureLive}}},
			[]Remediation{
				{ExposureLive, "in the guest, turn off the swap file /swap.img, overwrite it in place (shred -n 0 -z keeps its size and blocks), then mkswap and swapon it again: it keeps paged-out memory until overwritten, and deleting it leaves its blocks in free space",
					"swapoff /swap.img && shred -n 0 -z /swap.img && mkswap /swap.img && swapon /swap.img   # in the guest"},
				{ExposureLive, "delete or replace /swap.img in the guest, then wipe free space", "rm -- /swap.img   # in the guest"}}},
		{"Windows' paging file: cleared at shutdown", Finding{Category: "memory", Locations: []Location{{Target: web.Path, View: "web01.qcow2#current", Partition: "p2", Path: "/pagefile.sys", State: StateAllocated, Exposure: ExposureLive}}},
			[]Remediation{{ExposureLive, "in the guest, have Windows clear its paging file /pagefile.sys at shutdown (the policy \"Shutdown: Clear virtual memory pagefile\"), then shut it down; or turn paging off and delete the file", `reg add "HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management" /v ClearPageFileAtShutdown /t REG_DWORD /d 1 /f   # in the guest, then shut it down`}}},
		{"VMA backup", Finding{Category: "cloud", Locations: []Location{loc(vma.Path, "vzdump-qemu-100.vma#backing:disk0", ExposureBacking)}},
			[]Remediation{rotate, {ExposureBacking, "delete the backup /pve/dump/vzdump-qemu-100.vma", "rm -- /pve/dump/vzdump-qemu-100.vma"}}},
		{"VHD parent: flattened with convert", Finding{Category: "cloud", Locations: []Location{loc(vhd.Path, "diff.vhd#backing:parent.vhd", ExposureBacking)}},
			[]Remediation{rotate, {ExposureBacking, "flatten /h/diff.vhd off backing file /h/parent.vhd, then delete or rewrite /h/parent.vhd (every image on it has the copy)", "qemu-img convert -O vpc /h/diff.vhd /h/diff.vhd.flat"}}},
		{"container layer", Finding{Category: "cloud", Locations: []Location{{Target: "reg.example/app:1@sha256:ab", View: "reg.example/app:1@sha256:ab#layer:2:cd", Path: "/app/.env", Exposure: ExposureLayer, LayerDigest: "sha256:cd", LayerIndex: &layer}}},
			[]Remediation{rotate, {ExposureLayer, "rebuild reg.example/app:1@sha256:ab without /app/.env of layer 2 (sha256:cd), and delete the old image from registries (squashing alone keeps old layers)", ""}}},
		{"a VM disk inside a container image", Finding{Category: "cloud", Locations: []Location{{Target: "reg.example/vm:1!/disk/disk.qcow2", View: "reg.example/vm:1!disk.qcow2#snapshot:golden", Exposure: ExposureSnapshot, LayerDigest: "sha256:ef", LayerIndex: &layer}}},
			[]Remediation{rotate, {ExposureSnapshot, "remove the snapshot copy from the disk image /disk/disk.qcow2 before building it into reg.example/vm:1 (it is in layer 2 (sha256:ef)); rebuild the image and delete the old one from registries", ""}}},
		{"a key: revoke its fingerprint", Finding{Category: "private-key", KeyFingerprint: "SHA256:abc", Locations: []Location{loc(web.Path, "web01.qcow2#snapshot:golden", ExposureSnapshot)}},
			[]Remediation{{RemediationAll, "rotate the key and revoke SHA256:abc wherever it is trusted: a copy is outside the guest's control", ""},
				{ExposureSnapshot, "delete snapshot golden of /srv/web01.qcow2, then rewrite the image (freed clusters keep the bytes)", "qemu-img snapshot -d golden /srv/web01.qcow2"}}},
		{"rollback risk: remove the view, nothing to rotate", Finding{Category: CategoryRollbackRisk, Locations: []Location{loc(web.Path, "web01.qcow2#snapshot:golden", ExposureSnapshot)}},
			[]Remediation{{ExposureSnapshot, "delete snapshot golden of /srv/web01.qcow2, then rewrite the image (freed clusters keep the bytes)", "qemu-img snapshot -d golden /srv/web01.qcow2"}}},
		{"an image in a host's filesystem: its path there, on that machine", Finding{Category: "cloud", Locations: []Location{
			{Target: inner.Path, View: inner.Views[0].ID, State: StateFree, Exposure: ExposureDeleted},
			loc(inner.Path, inner.Views[1].ID, ExposureSnapshot),
			{Target: inner.Path, View: inner.Views[0].ID, Path: "/etc/app.env", Exposure: ExposureLive}}},
			[]Remediation{rotate,
				{ExposureSnapshot, "on the machine whose disk is /srv/host.raw: delete snapshot golden of /var/lib/libvirt/images/web01.qcow2, then rewrite the image (freed clusters keep the bytes)", "qemu-img snapshot -d golden '/var/lib/libvirt/images/web01.qcow2'   # on the machine whose disk is /srv/host.raw"},
				{ExposureDeleted, "on the machine whose disk is /srv/host.raw: wipe free space in /var/lib/libvirt/images/web01.qcow2 (fstrim with discard in the guest, zerofree, or offline)", "virt-sparsify --in-place '/var/lib/libvirt/images/web01.qcow2'   # on the machine whose disk is /srv/host.raw"},
				{ExposureLive, "delete or replace /etc/app.env in the guest, then wipe free space", "rm -- /etc/app.env   # in the guest"}}},
		{"cloned identity in images in a host's filesystem", Finding{Category: CategoryClonedIdentity, Metadata: map[string]string{"identity_kind": "machine-id"},
			Locations: []Location{{Target: inner.Path, Exposure: ExposureLive}, {Target: "/a/web02.qcow2", Exposure: ExposureLive}}},
			[]Remediation{{RemediationAll, "on the machine whose disk is /srv/host.raw: give /var/lib/libvirt/images/web01.qcow2 its own machine id (in every clone but one)", "virt-sysprep -a '/var/lib/libvirt/images/web01.qcow2' --operations machine-id   # on the machine whose disk is /srv/host.raw"},
				{RemediationAll, "give /a/web02.qcow2 its own machine id (in every clone but one)", "virt-sysprep -a /a/web02.qcow2 --operations machine-id"}}},
		{"cloned identity: each clone its own", Finding{Category: CategoryClonedIdentity, Metadata: map[string]string{"identity_kind": "ssh-host-key"},
			Locations: []Location{{Target: "/a/web01.qcow2", Exposure: ExposureLive}, {Target: "/a/web02.qcow2", Exposure: ExposureLive}}},
			[]Remediation{{RemediationAll, "give /a/web01.qcow2 its own ssh host key (in every clone but one)", "virt-sysprep -a /a/web01.qcow2 --operations ssh-hostkeys"},
				{RemediationAll, "give /a/web02.qcow2 its own ssh host key (in every clone but one)", "virt-sysprep -a /a/web02.qcow2 --operations ssh-hostkeys"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.f.Exposure = nil
			RecomputeExposure(&c.f)
			got := Remediate(r, &c.f)
			if !slices.Equal(got, c.want) {
				t.Errorf("got:\n%s\nwant:\n%s", steps(got), steps(c.want))
			}
		})
	}
}

func steps(rs []Remediation) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.Class + " | " + r.Action + " | " + r.Command + "\n")
	}
	return b.String()
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/web01.qcow2":     "/srv/web01.qcow2",
		"golden":               "golden",
		"clean install":        "'clean install'",
		"it's":                 `'it'\''s'`,
		"$(reboot)":            "'$(reboot)'",
		"":                     "''",
		"a\nb":                 "'a\nb'",
		"sha256:ab,c=d@e%f+-g": "sha256:ab,c=d@e%f+-g",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
