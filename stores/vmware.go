package stores

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxSnapshots bounds the snapshotN indexes read from a .vmsd (VMware
// allows 496 snapshots per VM).
const maxSnapshots = 1000

var (
	vmxDiskKey   = regexp.MustCompile(`(?i)^(scsi|sata|ide|nvme)(\d+):(\d+)\.filename$`)
	vmsdSnapshot = regexp.MustCompile(`(?i)^snapshot(\d+)\.`)
)

// vmware reads each .vmx with its .vmsd: the .vmx names the current
// (top-level) disks, the .vmsd the snapshot tree, with for each snapshot the
// disk files that held its state and its .vmsn (and .vmem) file.
func (s *scan) vmware(ctx context.Context, store *Store) {
	for _, p := range s.files {
		if ctx.Err() != nil {
			return
		}
		if !strings.EqualFold(filepath.Ext(p), ".vmx") {
			continue
		}
		b, ok := s.readConfig(p)
		if !ok {
			continue
		}
		vmx, err := ParseVMX(b)
		if err != nil {
			s.note("%s: %v", p, err)
			continue
		}
		s.claimed[p] = true
		dir := filepath.Dir(p)
		stem := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		vm := VM{Name: stem, Config: p}
		if n, ok := vmx.Get("displayName"); ok && n != "" {
			vm.Name = n
		}
		vm.ID = vm.Name
		if u, ok := vmx.Get("uuid.bios"); ok && u != "" {
			vm.ID = u
		}
		type disk struct {
			ctl       string
			bus, unit int
			file      string
		}
		var disks []disk
		for _, k := range vmx.Keys() {
			m := vmxDiskKey.FindStringSubmatch(k)
			if m == nil {
				continue
			}
			node := k[:len(k)-len(".fileName")]
			if dt, _ := vmx.Get(node + ".deviceType"); strings.Contains(strings.ToLower(dt), "cdrom") {
				continue
			}
			if pr, ok := vmx.Get(node + ".present"); ok && strings.EqualFold(pr, "false") {
				continue
			}
			f, _ := vmx.Get(k)
			if !strings.EqualFold(filepath.Ext(f), ".vmdk") {
				continue
			}
			bus, _ := strconv.Atoi(m[2])
			unit, _ := strconv.Atoi(m[3])
			disks = append(disks, disk{strings.ToLower(m[1]), bus, unit, f})
		}
		sort.SliceStable(disks, func(i, j int) bool {
			a, b := disks[i], disks[j]
			if a.ctl != b.ctl {
				return a.ctl < b.ctl
			}
			if a.bus != b.bus {
				return a.bus < b.bus
			}
			return a.unit < b.unit
		})
		for _, d := range disks {
			if f, ok := s.under(d.file, dir); ok {
				s.addDisk(&vm, f)
			} else {
				s.note("%s: disk %s not found", p, d.file)
			}
		}
		snapStems := s.vmsd(&vm, dir, stem)
		// Current memory: NAME.vmem / NAME.vmss (suspend), or NAME-<id>.vmem,
		// in the VM's folder, not belonging to a snapshot.
		for _, f := range s.files {
			if filepath.Dir(f) != dir || s.claimed[f] {
				continue
			}
			ext := strings.ToLower(filepath.Ext(f))
			if ext != ".vmem" && ext != ".vmss" {
				continue
			}
			if slices.Contains(snapStems, strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))) {
				continue
			}
			vm.Memory = append(vm.Memory, MemoryFile{Path: f, Created: mtime(f)})
			s.claimed[f] = true
		}
		store.VMs = append(store.VMs, vm)
	}
}

// vmsd reads the snapshot tree of a VM and returns the file stems of its
// snapshot state files.
func (s *scan) vmsd(vm *VM, dir, stem string) []string {
	path := filepath.Join(dir, stem+".vmsd")
	if !slices.Contains(s.files, path) {
		// VMware names the .vmsd after the .vmx; accept a lone one.
		var found []string
		for _, f := range s.files {
			if filepath.Dir(f) == dir && strings.EqualFold(filepath.Ext(f), ".vmsd") {
				found = append(found, f)
			}
		}
		if len(found) != 1 {
			return nil
		}
		path = found[0]
	}
	b, ok := s.readConfig(path)
	if !ok {
		return nil
	}
	v, err := ParseVMX(b)
	if err != nil {
		s.note("%s: %v", path, err)
		return nil
	}
	s.claimed[path] = true
	vm.Metadata = append(vm.Metadata, path)
	idx := map[int]bool{}
	for _, k := range v.Keys() {
		if m := vmsdSnapshot.FindStringSubmatch(k); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n < maxSnapshots {
				idx[n] = true
			}
		}
	}
	ids := make([]int, 0, len(idx))
	for n := range idx {
		ids = append(ids, n)
	}
	sort.Ints(ids)
	byUID := map[string]string{}
	for _, n := range ids {
		pre := "snapshot" + strconv.Itoa(n) + "."
		uid, _ := v.Get(pre + "uid")
		name, _ := v.Get(pre + "displayName")
		if uid != "" {
			byUID[uid] = name
		}
	}
	var stems []string
	for _, n := range ids {
		pre := "snapshot" + strconv.Itoa(n) + "."
		get := func(k string) string { x, _ := v.Get(pre + k); return x }
		info := SnapshotInfo{Name: get("displayName"), Description: get("description")}
		if info.Name == "" {
			info.Name = "snapshot" + strconv.Itoa(n)
		}
		info.Created = vmsdTime(get("createTimeHigh"), get("createTimeLow"))
		if p := get("parent"); p != "" {
			info.Parent = byUID[p]
		}
		nd, _ := strconv.Atoi(get("numDisks"))
		for k := range min(max(nd, 0), 256) {
			if f, ok := s.under(get("disk"+strconv.Itoa(k)+".fileName"), dir); ok {
				info.Disks = append(info.Disks, f)
			}
		}
		if f, ok := s.under(get("filename"), dir); ok {
			st := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
			stems = append(stems, st)
			vm.Memory = append(vm.Memory, MemoryFile{Path: f, Snapshot: info.Name, Created: info.Created})
			s.claimed[f] = true
			info.Memory = f
			// A powered-on snapshot keeps guest RAM in a .vmem beside the .vmsn.
			if mem, ok := s.under(st+".vmem", dir); ok {
				vm.Memory = append(vm.Memory, MemoryFile{Path: mem, Snapshot: info.Name, Created: info.Created})
				s.claimed[mem] = true
				info.Memory = mem
			}
		}
		vm.Snapshots = append(vm.Snapshots, info)
	}
	sortSnapshots(vm.Snapshots)
	return stems
}

// vmsdTime decodes createTimeHigh/createTimeLow: microseconds since the
// epoch split into two 32-bit halves, each written as a signed decimal.
func vmsdTime(hi, lo string) time.Time {
	h, err1 := strconv.ParseInt(strings.TrimSpace(hi), 10, 64)
	l, err2 := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
	if err1 != nil || err2 != nil || h < 0 || h > 1<<31 {
		return time.Time{}
	}
	us := h<<32 | int64(uint32(l))
	return time.UnixMicro(us).UTC()
}
