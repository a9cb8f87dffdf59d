package guestfs

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/lvm"
	"github.com/imgaudit/imgaudit/guestfs/thin"
)

// LVM2 thin volumes (Proxmox's default local-lvm, libvirt hosts) are
// partitions of their own ("vg/vm-100-disk-0"), read through their pool:
// the pool's metadata volume (pool_tmeta, read by guestfs/thin) maps each
// block of each thin volume to a block of the pool's data volume
// (pool_tdata), an LV like any other on the PVs. Three mappings join
// them:
//
//   - thinReader reads a thin volume through its data volume's lvReader
//     (unmapped blocks read as zeros, as the kernel gives them);
//   - appendThinRuns maps a thin volume's byte runs to the disk, through
//     the data volume's extents;
//   - thinData maps a data volume's blocks back to the thin volume that
//     holds them, for Locate: a block that snapshots share with their
//     origin is the origin's (volumes that are no snapshot first, then
//     in the metadata's order); a block no volume maps is free space of
//     the pool (a deleted volume's, or one the guest discarded).

// thinVolume is a thin volume's mapping.
type thinVolume struct {
	dev  *thin.Device
	bs   int64      // the pool's data block size
	data *partition // the pool's data volume
}

// thinReader reads a thin volume of size bytes.
type thinReader struct {
	name string
	size int64
	v    *thinVolume
}

func (r *thinReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", r.name, off)
	}
	done := 0
	for done < len(b) {
		pos := off + int64(done)
		if pos >= r.size {
			return done, io.EOF
		}
		vb, within := uint64(pos/r.v.bs), pos%r.v.bs
		db, blocks, ok := r.v.dev.Find(vb)
		n := int64(len(b) - done)
		if blocks > 0 {
			n = min(n, int64(blocks)*r.v.bs-within)
		}
		n = min(n, r.size-pos)
		if !ok {
			clear(b[done : done+int(n)])
			done += int(n)
			continue
		}
		got, err := r.v.data.lv.ReadAt(b[done:done+int(n)], int64(db)*r.v.bs+within)
		done += got
		if int64(got) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("%s: offset %d (data block %d): %w", r.name, pos, db, err)
		}
	}
	return done, nil
}

// appendThinRuns maps a thin volume's run r to guest runs: its mapped
// blocks through the data volume's extents (unmapped ones have no bytes
// on the disk), adjacent runs joined.
func (m *Map) appendThinRuns(out []GuestRun, v *thinVolume, r fsys.Run) []GuestRun {
	for done := int64(0); done < r.Len; {
		pos := r.Off + done
		vb, within := uint64(pos/v.bs), pos%v.bs
		db, blocks, ok := v.dev.Find(vb)
		n := r.Len - done
		if blocks > 0 {
			n = min(n, int64(blocks)*v.bs-within)
		}
		if ok {
			before := len(out)
			out = m.appendGuestRuns(out, v.data, fsys.Run{Off: int64(db)*v.bs + within, Len: n, FileOff: r.FileOff + done})
			if before > 0 && len(out) > before {
				if a, b := &out[before-1], out[before]; a.Off+a.Len == b.Off && a.FileOff+a.Len == b.FileOff {
					a.Len += b.Len
					out = slices.Delete(out, before, before+1)
				}
			}
		}
		done += n
	}
	return out
}

// thinOwner says that n data blocks from db hold the blocks of vol from
// vb.
type thinOwner struct {
	db, n, vb uint64
	vol       *partition
}

// thinData maps a pool's data volume back to its thin volumes.
type thinData struct {
	bs     int64
	owners []thinOwner // sorted by db, disjoint
	// added are the metadata's leaves whose blocks owners hold: a leaf
	// that a volume shares with one added before (a snapshot's with its
	// origin's) gives it nothing, so it is not gone through again.
	added map[*thin.Leaf]bool
}

// owner returns the thin volume holding byte lo of the data volume, and
// the byte of that volume.
func (d *thinData) owner(lo int64) (*partition, int64, bool) {
	b := uint64(lo / d.bs)
	i, _ := slices.BinarySearchFunc(d.owners, b+1, func(o thinOwner, t uint64) int { return cmp.Compare(o.db, t) })
	if i == 0 {
		return nil, 0, false
	}
	o := d.owners[i-1]
	if b >= o.db+o.n {
		return nil, 0, false
	}
	return o.vol, int64(o.vb+(b-o.db))*d.bs + lo%d.bs, true
}

// addDevice gives vol the data blocks of dev that no volume added before
// holds, going through each of the metadata's leaves once for the whole
// pool (however many snapshots share it).
func (d *thinData) addDevice(vol *partition, dev *thin.Device) {
	if d.added == nil {
		d.added = map[*thin.Leaf]bool{}
	}
	var runs []thin.Run
	for l := range dev.Leaves() {
		if !d.added[l] {
			d.added[l] = true
			runs = append(runs, l.Runs...)
		}
	}
	d.add(vol, runs)
}

// add gives vol the data blocks of runs that no volume added before
// holds.
func (d *thinData) add(vol *partition, runs []thin.Run) {
	mine := make([]thinOwner, 0, len(runs))
	for _, r := range runs {
		mine = append(mine, thinOwner{db: r.DBlock, n: r.Len, vb: r.VBlock, vol: vol})
	}
	slices.SortFunc(mine, func(a, b thinOwner) int { return cmp.Compare(a.db, b.db) })
	// Two virtual blocks of one volume mapped to one data block (hostile
	// metadata): the first keeps it.
	var end uint64
	for i, o := range mine {
		if i > 0 && o.db < end {
			k := min(end-o.db, o.n)
			o = thinOwner{db: o.db + k, n: o.n - k, vb: o.vb + k, vol: vol}
		}
		mine[i] = o
		end = max(end, o.db+o.n)
	}
	// Cut from mine what owners already hold (both sorted, disjoint).
	var left []thinOwner
	j := 0
	for _, o := range mine {
		for o.n > 0 {
			for j < len(d.owners) && d.owners[j].db+d.owners[j].n <= o.db {
				j++
			}
			if j == len(d.owners) || d.owners[j].db >= o.db+o.n {
				left = append(left, o)
				break
			}
			h := d.owners[j]
			if h.db > o.db { // the part before h is free
				k := h.db - o.db
				left = append(left, thinOwner{db: o.db, n: k, vb: o.vb, vol: vol})
				o = thinOwner{db: h.db, n: o.n - k, vb: o.vb + k, vol: vol}
			}
			skip := min(o.n, h.db+h.n-o.db) // held by h
			o = thinOwner{db: o.db + skip, n: o.n - skip, vb: o.vb + skip, vol: vol}
		}
	}
	d.owners = append(d.owners, left...)
	slices.SortFunc(d.owners, func(a, b thinOwner) int { return cmp.Compare(a.db, b.db) })
}

// addThinVolumes reads vg's thin pools' metadata and each thin volume's
// filesystem (or a VM's disk, its partition table) through it. A pool
// whose metadata cannot be read leaves its volumes unattributed, with
// the reason.
func (m *Map) addThinVolumes(ctx context.Context, vg *lvm.VG) {
	byName := map[string]*partition{}
	for _, p := range m.lvs {
		byName[p.info.Name] = p
	}
	lvName := func(n string) *partition { return byName[vg.Name+"/"+n] }
	for _, poolLV := range vg.LVs {
		if len(poolLV.Segments) != 1 || poolLV.Segments[0].Type != "thin-pool" {
			continue
		}
		seg := poolLV.Segments[0]
		pool, data, meta := lvName(poolLV.Name), lvName(seg.Pool), lvName(seg.Metadata)
		if pool == nil {
			continue
		}
		var vols []lvm.LV
		for _, lv := range vg.LVs {
			if len(lv.Segments) == 1 && lv.Segments[0].Type == "thin" && lv.Segments[0].Pool == poolLV.Name {
				vols = append(vols, lv)
			}
		}
		fail := func(why string) {
			pool.info.Note = fmt.Sprintf("thin-pool logical volume: %s; its %d thin volumes are unattributed", why, len(vols))
			for _, lv := range vols {
				if p := lvName(lv.Name); p != nil {
					p.info.Note = fmt.Sprintf("thin volume of pool %s, whose metadata could not be read: findings there are unattributed", poolLV.Name)
				}
			}
		}
		if data == nil || meta == nil || data.lv == nil || meta.lv == nil {
			fail(fmt.Sprintf("its data (%s) or metadata (%s) volume is not readable", seg.Pool, seg.Metadata))
			continue
		}
		md, err := thin.Read(meta.lv, meta.info.Size, meta.info.Name, thin.Limits{})
		if err != nil {
			fail(fmt.Sprintf("its metadata could not be read: %v", err))
			continue
		}
		pd := &thinData{bs: md.DataBlockSize}
		// Volumes that are no snapshot first: a block a snapshot shares
		// with its origin is the origin's.
		slices.SortStableFunc(vols, func(a, b lvm.LV) int {
			return cmp.Compare(boolInt(a.Segments[0].Origin != ""), boolInt(b.Segments[0].Origin != ""))
		})
		for _, lv := range vols {
			if err := ctx.Err(); err != nil {
				return
			}
			p := lvName(lv.Name)
			if p == nil {
				continue
			}
			s := lv.Segments[0]
			dev := md.Devices[uint64(s.DeviceID)]
			if dev == nil {
				p.info.Note = fmt.Sprintf("thin volume: device %d is not in pool %s's metadata, findings there are unattributed", s.DeviceID, poolLV.Name)
				continue
			}
			v := &thinVolume{dev: dev, bs: md.DataBlockSize, data: data}
			p.thin, p.info.Type, p.info.Note = v, "lvm2:thin", ""
			if s.Origin != "" {
				p.origin = vg.Name + "/" + s.Origin
			}
			p.info.Size = (s.StartExtent + s.ExtentCount) * vg.ExtentSize
			p.info.Start = -1
			if r, ok := dev.First(); ok {
				if off := int64(r.VBlock) * v.bs; off < p.info.Size {
					if g := m.appendThinRuns(nil, v, fsys.Run{Off: off, Len: min(v.bs, p.info.Size-off)}); len(g) > 0 {
						p.info.Start = g[0].Off
					}
				}
			}
			pd.addDevice(p, dev)
			m.analyzeVolume(ctx, &thinReader{name: p.info.Name, size: p.info.Size, v: v}, p, true)
		}
		// The data volume's bytes are located in the thin volumes (and
		// free where none maps them): attributed, nothing partial.
		data.pool = pd
		data.info.Attributed, data.info.Note = true, ""
		meta.info.Note = fmt.Sprintf("metadata of thin-pool %s: read for its mappings, findings there are unattributed", poolLV.Name)
		pool.info.Attributed = true
		pool.info.Note = ""
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
