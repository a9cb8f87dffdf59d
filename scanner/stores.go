package scanner

import (
	"path/filepath"

	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/stores"
)

// storeTargets turns a discovered store (libvirt, Proxmox, VMware) into
// targets grouped by VM: each VM's top-level disks, memory files, backups
// and configuration, plus the loose files that match no layout. Backing
// files are not targets: they are read once, as backing views.
func storeTargets(st *stores.Store) []*target {
	var out []*target
	seen := map[string]bool{}
	add := func(t *target) {
		if t.path == "" || seen[t.path] {
			return
		}
		seen[t.path] = true
		out = append(out, t)
	}
	for _, vm := range st.VMs {
		snaps := map[string]stores.SnapshotInfo{}
		for _, sn := range vm.Snapshots {
			for _, d := range sn.Disks {
				snaps[filepath.Base(d)] = sn
			}
		}
		info := &report.StoreInfo{Kind: st.Kind, VM: vm.Name, ID: vm.ID, Config: vm.Config}
		for _, d := range vm.Disks {
			add(&target{path: d, vm: vm.Name, store: info, snapshots: snaps})
		}
		for _, m := range vm.Memory {
			add(&target{path: m.Path, vm: vm.Name, store: info, saved: m.Created, savedFor: m.Snapshot})
		}
		for _, b := range vm.Backups {
			add(&target{path: b, vm: vm.Name, store: info})
		}
		// Configuration files (.vmx, domain XML, qemu-server.conf) can hold
		// passwords too.
		add(&target{path: vm.Config, vm: vm.Name, store: info, storeFile: true})
		for _, f := range vm.Metadata {
			add(&target{path: f, vm: vm.Name, store: info, storeFile: true})
		}
	}
	for _, f := range st.Loose {
		add(&target{path: f, storeFile: true})
	}
	return out
}
