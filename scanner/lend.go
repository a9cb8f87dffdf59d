package scanner

import (
	"sort"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

// lendsFromHost reports the formats whose views may be lent from mappings
// of their host files: those whose tests prove that every data extent
// names the host bytes it holds (checkHostBytes in formats/qcow2 and
// formats/vmdk, blockmaptest.CheckDisk for VHD, VHDX, VDI, Parallels and QED,
// qemufixture.CheckHostBytes for ELF cores, LiME and VMware memory files).
// Raw images lend their own mapping. Memory files whose pages lie apart
// (migration streams, whose page records have headers; kdump files) are
// read with ReadAt: no scan chunk would lie within one run.
func lendsFromHost(format string) bool {
	switch format {
	case "qcow2", "vmdk", "vpc", "vhdx", "vdi", "parallels", "qed", "elf-core", "lime", "vmware-memory":
		return true
	}
	return false
}

// lentRun is a guest range [off, end) stored as-is, contiguously, in one
// mapped host file from host offset host.
type lentRun struct {
	off, end int64
	file     string
	host     int64
	m        []byte
}

// lendingDisk lends a view's bytes from read-only mappings of the host
// files behind its data extents (detectors.Slicer), so that the detectors
// read qcow2, VMDK, VHD(X) and VDI data, and the RAM of ELF cores, LiME and
// VMware memory files, without a pread copy, as they read raw images:
// a warm 1 GiB qcow2 scan spent half its time in the kernel copying. Ranges
// that do not lie inside one run (compressed clusters, holes, the margins
// at an extent's ends) are read with ReadAt as before.
type lendingDisk struct {
	model.Disk
	runs []lentRun
}

func (d lendingDisk) Slice(off int64, n int) ([]byte, bool) {
	i := sort.Search(len(d.runs), func(i int) bool { return d.runs[i].end > off })
	if i == len(d.runs) || n < 0 || d.runs[i].off > off || off > d.runs[i].end-int64(n) {
		return nil, false
	}
	r := d.runs[i]
	h := r.host + off - r.off
	return r.m[h : h+int64(n) : h+int64(n)], true
}

func (d lendingDisk) Release(b []byte) { raw.ReleasePages(b) }

// mappings maps each host file once per scan and unmaps them all at the
// end; a file that cannot be mapped is remembered as such.
type mappings struct {
	m      map[string][]byte
	unmaps []func() error
}

func (ms *mappings) get(path string) []byte {
	if m, ok := ms.m[path]; ok {
		return m
	}
	m, unmap, err := raw.MapFile(path)
	if err != nil {
		m = nil
	} else {
		ms.unmaps = append(ms.unmaps, unmap)
	}
	ms.m[path] = m
	return m
}

// appendLent adds data extent e of host file file to runs, joining the
// last run where e continues it in the guest and in the file.
func appendLent(runs []lentRun, ms *mappings, e model.Extent, file string) []lentRun {
	m := ms.get(file)
	if m == nil || e.FileOffset > int64(len(m))-e.Length {
		return runs
	}
	if k := len(runs) - 1; k >= 0 && runs[k].end == e.Offset && runs[k].file == file && runs[k].host+(runs[k].end-runs[k].off) == e.FileOffset {
		runs[k].end = e.End()
		return runs
	}
	return append(runs, lentRun{off: e.Offset, end: e.End(), file: file, host: e.FileOffset, m: m})
}

// close unmaps every file; nothing lent from them may be used afterwards.
func (ms *mappings) close() {
	for _, u := range ms.unmaps {
		_ = u()
	}
	ms.unmaps, ms.m = nil, nil
}

// lendable returns the disk to scan for v: v's own when it lends already
// (raw), its format is not lendsFromHost or its files are no host files
// (a target of ScanReaders: its extents name members of a layer), else a lendingDisk over the
// runs of its data extents, merged where they continue each other in the
// guest and in one host file.
func lendable(v *viewState, ms *mappings) model.Disk {
	d := v.view.Disk
	if _, ok := d.(detectors.Slicer); ok || v.t.img == nil || v.t.src != nil || !lendsFromHost(v.t.img.Format) {
		return d
	}
	var runs []lentRun
	for i, e := range v.ext {
		if e.Source != model.SourceData || e.FileOffset < 0 || e.Length <= 0 || v.files[i] == "" || v.internal[v.files[i]] {
			continue
		}
		runs = appendLent(runs, ms, e, v.files[i])
		if k := v.rep(i); k > 1 {
			// Only the first and last repetitions are scanned; the
			// others are read, as context, with ReadAt.
			e.Offset += (k - 1) * e.Length
			runs = appendLent(runs, ms, e, v.files[i])
		}
	}
	if len(runs) == 0 {
		return d
	}
	return lendingDisk{Disk: d, runs: runs}
}
