package stores

import (
	"bytes"
	"context"
	"encoding/xml"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// libvirt domain XML (https://libvirt.org/formatdomain.html), only what
// grouping needs.
type domainXML struct {
	XMLName xml.Name `xml:"domain"`
	Name    string   `xml:"name"`
	UUID    string   `xml:"uuid"`
	Disks   []struct {
		Type   string `xml:"type,attr"`
		Device string `xml:"device,attr"`
		Source struct {
			File string `xml:"file,attr"`
		} `xml:"source"`
		Target struct {
			Dev string `xml:"dev,attr"`
		} `xml:"target"`
	} `xml:"devices>disk"`
}

// libvirt snapshot XML (https://libvirt.org/formatsnapshot.html), as
// stored in qemu/snapshot/<domain>/<name>.xml.
type snapshotXML struct {
	XMLName      xml.Name `xml:"domainsnapshot"`
	Name         string   `xml:"name"`
	Description  string   `xml:"description"`
	State        string   `xml:"state"`
	CreationTime string   `xml:"creationTime"`
	Parent       struct {
		Name string `xml:"name"`
	} `xml:"parent"`
	Memory struct {
		Snapshot string `xml:"snapshot,attr"`
		File     string `xml:"file,attr"`
	} `xml:"memory"`
	Disks []struct {
		Name     string `xml:"name,attr"`
		Snapshot string `xml:"snapshot,attr"`
		Source   struct {
			File string `xml:"file,attr"`
		} `xml:"source"`
	} `xml:"disks>disk"`
	Domain struct {
		Name string `xml:"name"`
		UUID string `xml:"uuid"`
	} `xml:"domain"`
}

// rootElement returns the name of an XML document's first element.
func rootElement(b []byte) string {
	d := xml.NewDecoder(bytes.NewReader(b))
	for range 64 {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		if se, ok := t.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
	return ""
}

func (s *scan) isLibvirt() bool {
	for _, p := range s.files {
		switch {
		case strings.EqualFold(filepath.Ext(p), ".save"):
			return true
		case strings.EqualFold(filepath.Ext(p), ".xml"):
			if b, ok := s.readConfig(p); ok {
				if r := rootElement(b); r == "domain" || r == "domainsnapshot" {
					return true
				}
			}
		}
	}
	// qcow2 overlays sharing backing files, with no configuration at all.
	for _, p := range s.files {
		if _, ok := s.parents[p]; ok {
			return true
		}
	}
	return false
}

// libvirt groups files by domain XML; snapshot XMLs and managed saves are
// attached to their domain by name.
func (s *scan) libvirt(ctx context.Context, store *Store) {
	vms := map[string]int{}                   // domain name -> index
	targets := map[string]map[string]string{} // domain -> target dev -> disk file
	var snaps []struct {
		path string
		x    snapshotXML
	}
	for _, p := range s.files {
		if ctx.Err() != nil {
			return
		}
		if !strings.EqualFold(filepath.Ext(p), ".xml") {
			continue
		}
		b, ok := s.readConfig(p)
		if !ok {
			continue
		}
		switch rootElement(b) {
		case "domain":
			var d domainXML
			if err := xml.Unmarshal(b, &d); err != nil || d.Name == "" {
				s.note("%s: domain XML not understood: %v", p, err)
				continue
			}
			s.claimed[p] = true
			vm := VM{Name: d.Name, ID: d.UUID, Config: p}
			if vm.ID == "" {
				vm.ID = d.Name
			}
			for _, dk := range d.Disks {
				if dk.Device != "" && dk.Device != "disk" {
					continue // cdrom, floppy, lun
				}
				if f, ok := s.under(dk.Source.File, filepath.Dir(p)); ok {
					s.addDisk(&vm, f)
					if targets[d.Name] == nil {
						targets[d.Name] = map[string]string{}
					}
					targets[d.Name][dk.Target.Dev] = vm.Disks[len(vm.Disks)-1]
				}
			}
			if i, dup := vms[d.Name]; dup {
				s.note("%s: second definition of domain %q (first: %s)", p, d.Name, store.VMs[i].Config)
				continue
			}
			store.VMs = append(store.VMs, vm)
			vms[d.Name] = len(store.VMs) - 1
		case "domainsnapshot":
			var x snapshotXML
			if err := xml.Unmarshal(b, &x); err != nil || x.Name == "" {
				s.note("%s: snapshot XML not understood: %v", p, err)
				continue
			}
			s.claimed[p] = true
			snaps = append(snaps, struct {
				path string
				x    snapshotXML
			}{p, x})
		}
	}
	vmFor := func(name, uuid string) *VM {
		if name == "" {
			return nil
		}
		i, ok := vms[name]
		if !ok {
			store.VMs = append(store.VMs, VM{Name: name, ID: cmp(uuid, name)})
			i = len(store.VMs) - 1
			vms[name] = i
		}
		return &store.VMs[i]
	}
	for _, sn := range snaps {
		x := sn.x
		dom := x.Domain.Name
		if dom == "" {
			dom = filepath.Base(filepath.Dir(sn.path)) // qemu/snapshot/<domain>/<name>.xml
		}
		vm := vmFor(dom, x.Domain.UUID)
		vm.Metadata = append(vm.Metadata, sn.path)
		info := SnapshotInfo{Name: x.Name, Parent: x.Parent.Name, Description: strings.TrimSpace(x.Description)}
		if t, err := strconv.ParseInt(strings.TrimSpace(x.CreationTime), 10, 64); err == nil && t >= 0 && t < 1<<40 {
			info.Created = time.Unix(t, 0).UTC()
		}
		for _, dk := range x.Disks {
			f, ok := s.under(dk.Source.File, filepath.Dir(sn.path))
			switch {
			case dk.Snapshot == "external" && ok:
				// The file named is the overlay created by the snapshot;
				// the state at the snapshot is in its backing file.
				if b, has := s.parents[f]; has {
					info.Disks = append(info.Disks, b)
				} else {
					info.Disks = append(info.Disks, f)
				}
				s.addDisk(vm, f)
			case dk.Snapshot == "internal":
				// A qcow2 snapshot inside the domain's disk for that target.
				if f, ok := targets[dom][dk.Name]; ok {
					info.Disks = append(info.Disks, f)
				}
			}
		}
		if x.Memory.Snapshot == "external" {
			if f, ok := s.under(x.Memory.File, filepath.Dir(sn.path)); ok {
				info.Memory = f
				vm.Memory = append(vm.Memory, MemoryFile{Path: f, Snapshot: x.Name, Created: info.Created})
				s.claimed[f] = true
			}
		}
		vm.Snapshots = append(vm.Snapshots, info)
	}
	// Managed saves: qemu/save/<domain>.save.
	for _, p := range s.files {
		if !strings.EqualFold(filepath.Ext(p), ".save") || s.claimed[p] {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		vm := vmFor(name, "")
		vm.Memory = append(vm.Memory, MemoryFile{Path: p, Created: mtime(p)})
		s.claimed[p] = true
	}
	for i := range store.VMs {
		sortSnapshots(store.VMs[i].Snapshots)
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func sortSnapshots(sn []SnapshotInfo) {
	sort.SliceStable(sn, func(i, j int) bool { return sn[i].Created.Before(sn[j].Created) })
}
