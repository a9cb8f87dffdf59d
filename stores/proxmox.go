package stores

import (
	"context"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	// images/<vmid>/vm-<vmid>-disk-<n>.<fmt> (and base-… for templates).
	pveDisk = regexp.MustCompile(`^(vm|base)-(\d+)-disk-(\d+)\.(qcow2|raw|vmdk)$`)
	// images/<vmid>/vm-<vmid>-state-<snapshot>.raw: a snapshot's RAM.
	pveState = regexp.MustCompile(`^vm-(\d+)-state-(.+)\.raw$`)
	// dump/vzdump-qemu-<vmid>-YYYY_MM_DD-HH_MM_SS.vma[.zst|.gz|.lzo].
	pveDump = regexp.MustCompile(`^vzdump-qemu-(\d+)-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.vma(\.zst|\.gz|\.lzo)?$`)
)

// BackupTime returns the time in a vzdump archive name
// (vzdump-qemu-100-2024_01_02-03_04_05.vma.zst). vzdump writes the node's
// local time; it is returned as UTC, with no zone known.
func BackupTime(path string) (time.Time, bool) {
	m := pveDump.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("2006_01_02-15_04_05", m[2])
	return t, err == nil
}

func (s *scan) isProxmox() bool {
	for _, p := range s.files {
		b := filepath.Base(p)
		parent := filepath.Base(filepath.Dir(p))
		switch {
		case pveDump.MatchString(b):
			return true
		case pveDisk.MatchString(b) && parent == pveDisk.FindStringSubmatch(b)[2]:
			return true
		case parent == "qemu-server" && strings.HasSuffix(b, ".conf"):
			return true
		}
	}
	return false
}

// proxmox groups by VMID: disks in images/<vmid>/, backups in dump/, the
// configuration (with its snapshot sections) in qemu-server/<vmid>.conf.
func (s *scan) proxmox(ctx context.Context, store *Store) {
	vms := map[string]*VM{}
	get := func(id string) *VM {
		if vm, ok := vms[id]; ok {
			return vm
		}
		vm := &VM{Name: "vm" + id, ID: id}
		vms[id] = vm
		return vm
	}
	type diskRef struct {
		n    int
		path string
	}
	disks := map[string][]diskRef{}
	for _, p := range s.files {
		if ctx.Err() != nil {
			return
		}
		b := filepath.Base(p)
		if m := pveDisk.FindStringSubmatch(b); m != nil {
			n, _ := strconv.Atoi(m[3])
			if m[1] == "base" && !s.topOf(p) {
				continue // a template disk under linked clones: reached as their backing
			}
			disks[m[2]] = append(disks[m[2]], diskRef{n, p})
			get(m[2])
		}
		if m := pveDump.FindStringSubmatch(b); m != nil {
			vm := get(m[1])
			vm.Backups = append(vm.Backups, p)
			s.claimed[p] = true
		}
		if filepath.Base(filepath.Dir(p)) == "qemu-server" && strings.HasSuffix(b, ".conf") {
			id := strings.TrimSuffix(b, ".conf")
			if _, err := strconv.Atoi(id); err == nil {
				get(id).Config = p
				s.claimed[p] = true
			}
		}
	}
	for id, ds := range disks {
		sort.Slice(ds, func(i, j int) bool { return ds[i].n < ds[j].n })
		for _, d := range ds {
			s.addDisk(vms[id], d.path)
		}
	}
	for id, vm := range vms {
		if vm.Config != "" {
			s.pveConf(vm)
		}
		// State volumes of snapshots no configuration lists are still RAM.
		for _, f := range s.files {
			if m := pveState.FindStringSubmatch(filepath.Base(f)); m != nil && m[1] == id && !s.claimed[f] {
				vm.Memory = append(vm.Memory, MemoryFile{Path: f, Snapshot: m[2], Created: mtime(f)})
				s.claimed[f] = true
			}
		}
		sort.SliceStable(vm.Backups, func(i, j int) bool {
			a, _ := BackupTime(vm.Backups[i])
			b, _ := BackupTime(vm.Backups[j])
			return a.Before(b)
		})
	}
	ids := make([]string, 0, len(vms))
	for id := range vms {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.Atoi(ids[i])
		b, _ := strconv.Atoi(ids[j])
		return a < b
	})
	for _, id := range ids {
		store.VMs = append(store.VMs, *vms[id])
	}
}

// pveConf reads a qemu-server configuration: "key: value" lines, then one
// [snapshot] section per snapshot with snaptime, parent, description and
// vmstate (the volume holding its RAM).
func (s *scan) pveConf(vm *VM) {
	b, ok := s.readConfig(vm.Config)
	if !ok {
		return
	}
	var snaps []SnapshotInfo
	states := map[string]string{}
	var sn *SnapshotInfo // the snapshot section being read; nil in the main one
	inMain := true
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			name := line[1 : len(line)-1]
			inMain, sn = false, nil
			if name != "PENDING" && name != "special:cloudinit" && len(snaps) < maxSnapshots {
				snaps = append(snaps, SnapshotInfo{Name: name})
				sn = &snaps[len(snaps)-1]
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // the VM description, percent-encoded
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch {
		case inMain && key == "name":
			vm.Name = val
		case sn == nil:
		case key == "snaptime":
			if t, err := strconv.ParseInt(val, 10, 64); err == nil && t >= 0 && t < 1<<40 {
				sn.Created = time.Unix(t, 0).UTC()
			}
		case key == "parent":
			sn.Parent = val
		case key == "description":
			sn.Description = val
		case key == "vmstate":
			states[sn.Name] = val
		}
	}
	for i := range snaps {
		sn := &snaps[i]
		// Internal qcow2 snapshots: the state is inside the VM's disks.
		sn.Disks = append([]string(nil), vm.Disks...)
		if vol, ok := states[sn.Name]; ok {
			// "local:100/vm-100-state-snap1.raw" → images/100/vm-100-state-snap1.raw
			_, rel, _ := strings.Cut(vol, ":")
			if f, ok := s.under(filepath.Join("images", rel), filepath.Dir(filepath.Dir(vm.Config))); ok {
				sn.Memory = f
				vm.Memory = append(vm.Memory, MemoryFile{Path: f, Snapshot: sn.Name, Created: sn.Created})
				s.claimed[f] = true
			}
		}
	}
	sortSnapshots(snaps)
	vm.Snapshots = snaps
}
