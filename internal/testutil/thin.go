package testutil

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ThinBlock is the data block size of the pools ThinPoolDisk makes
// (chunk_size 128 sectors, LVM2's default for small pools).
const ThinBlock = 64 << 10

// ThinVolume is a thin volume for ThinPoolDisk: its bytes (at most 16
// MiB, a multiple of ThinBlock), and the volume it is a snapshot of.
type ThinVolume struct {
	Name   string
	Data   []byte
	Origin string
}

// ThinPool is a disk ThinPoolDisk made.
type ThinPool struct {
	Path, VG string
	PEStart  int64
	// Maps says, per volume, which data block holds each virtual block.
	Maps map[string]map[int64]int64
	// Free is a data block no volume maps; it holds FreeBytes.
	Free      int64
	FreeBytes []byte
}

const thinDataSize = 24 << 20

// Guest maps a byte of the pool's data volume to the disk: its first
// 16 MiB lie at PE 10, the rest at PE 3.
func (p *ThinPool) Guest(lo int64) int64 {
	if lo < 16<<20 {
		return p.PEStart + 10<<22 + lo
	}
	return p.PEStart + 3<<22 + lo - 16<<20
}

// At maps byte vlo of volume vol to the disk.
func (p *ThinPool) At(vol string, vlo int64) int64 {
	db, ok := p.Maps[vol][vlo/ThinBlock]
	if !ok {
		panic(fmt.Sprintf("%s: virtual block %d unmapped", vol, vlo/ThinBlock))
	}
	return p.Guest(db*ThinBlock + vlo%ThinBlock)
}

// ThinPoolDisk makes dir/pv.img, a whole-disk LVM2 PV whose VG has a
// thin pool as Proxmox's local-lvm keeps VM disks: pool_tmeta (one
// extent, at PE 1), pool_tdata (24 MiB: its first 16 MiB at PE 10, the
// rest at PE 3, out of order on purpose) and the thin volumes vols, in
// that order in the metadata. Each volume's non-zero blocks lie at
// shuffled data blocks (seeded by seed); a snapshot's blocks that equal
// its origin's share the origin's data block, as after a thin snapshot
// (an origin comes before its snapshots in vols; the VG's metadata lists
// them the other way round).
// The pool's metadata is written by thin_restore, the VG by
// vgcfgrestore.
func ThinPoolDisk(t testing.TB, dir string, seed uint64, vols ...ThinVolume) *ThinPool {
	t.Helper()
	RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "thin_restore")
	p := &ThinPool{Path: filepath.Join(dir, "pv.img"), VG: fmt.Sprintf("imgauditthin%d", os.Getpid()), Maps: map[string]map[int64]int64{}}
	rng := rand.New(rand.NewPCG(seed, 8))
	perm := rng.Perm(thinDataSize / ThinBlock)
	next := 0
	data := map[int64][]byte{}
	byName := map[string][]byte{}
	for _, v := range vols {
		if len(v.Data) > 16<<20 || len(v.Data)%ThinBlock != 0 {
			t.Fatalf("thin volume %s: %d bytes", v.Name, len(v.Data))
		}
		m := map[int64]int64{}
		origin, om := byName[v.Origin], p.Maps[v.Origin]
		for vb := int64(0); vb < int64(len(v.Data))/ThinBlock; vb++ {
			b := v.Data[vb*ThinBlock : (vb+1)*ThinBlock]
			if db, ok := om[vb]; ok && bytes.Equal(b, origin[vb*ThinBlock:(vb+1)*ThinBlock]) {
				m[vb] = db
				continue
			}
			if bytes.Count(b, []byte{0}) == len(b) {
				continue
			}
			db := int64(perm[next])
			next++
			m[vb], data[db] = db, b
		}
		p.Maps[v.Name], byName[v.Name] = m, v.Data
	}
	p.Free = int64(perm[next])
	p.FreeBytes = make([]byte, ThinBlock)
	for i := range p.FreeBytes {
		p.FreeBytes[i] = byte(rng.Uint32())
	}
	data[p.Free] = p.FreeBytes

	var x strings.Builder
	fmt.Fprintf(&x, "<superblock uuid=\"\" time=\"1\" transaction=\"%d\" flags=\"0\" version=\"2\" data_block_size=\"%d\" nr_data_blocks=\"%d\">\n", len(vols), ThinBlock/512, thinDataSize/ThinBlock)
	var lvs []string
	for i, v := range vols {
		m := p.Maps[v.Name]
		fmt.Fprintf(&x, "  <device dev_id=\"%d\" mapped_blocks=\"%d\" transaction=\"0\" creation_time=\"0\" snap_time=\"0\">\n", i+1, len(m))
		for vb := int64(0); vb < 16<<20/ThinBlock; vb++ {
			if db, ok := m[vb]; ok {
				fmt.Fprintf(&x, "    <single_mapping origin_block=\"%d\" data_block=\"%d\" time=\"0\"/>\n", vb, db)
			}
		}
		x.WriteString("  </device>\n")
		seg := fmt.Sprintf("start_extent = 0\nextent_count = %d\ntype = \"thin\"\nthin_pool = \"pool\"\ntransaction_id = %d\ndevice_id = %d", (len(v.Data)+4<<20-1)/(4<<20), i, i+1)
		if v.Origin != "" {
			seg += fmt.Sprintf("\norigin = %q", v.Origin)
		}
		// Later volumes (snapshots) first in the VG's metadata, so
		// that a reader that takes the metadata's order for which
		// volume a shared block belongs to is caught.
		lvs = append([]string{LVText(v.Name, fmt.Sprintf("thinv%d-0000-0000-0000-0000-0000-000000", i), true, seg)}, lvs...)
	}
	x.WriteString("</superblock>\n")
	if err := os.WriteFile(filepath.Join(dir, "meta.xml"), []byte(x.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	Bash(t, dir, "truncate -s 4M tmeta.img && thin_restore -i meta.xml -o tmeta.img >/dev/null")

	if err := os.WriteFile(p.Path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p.Path, 96<<20); err != nil {
		t.Fatal(err)
	}
	lvs = append(lvs,
		LVText("pool", "pool00-0000-0000-0000-0000-0000-000000", true,
			fmt.Sprintf("start_extent = 0\nextent_count = 6\ntype = \"thin-pool\"\nmetadata = \"pool_tmeta\"\npool = \"pool_tdata\"\ntransaction_id = %d\nchunk_size = %d\ndiscards = \"passdown\"\nzero_new_blocks = 1", len(vols), ThinBlock/512)),
		LVText("pool_tmeta", "tmeta0-0000-0000-0000-0000-0000-000000", false, LinearSegment(0, 1, "pv0", 1)),
		LVText("pool_tdata", "tdata0-0000-0000-0000-0000-0000-000000", false, LinearSegment(0, 4, "pv0", 10), LinearSegment(4, 2, "pv0", 3)))
	p.PEStart = SinglePV(t, p.Path, 0, 0, p.VG, lvs...)
	f, err := os.OpenFile(p.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(FileSnapshot(t, filepath.Join(dir, "tmeta.img")), p.PEStart+1<<22); err != nil {
		t.Fatal(err)
	}
	for db, b := range data {
		if _, err := f.WriteAt(b, p.Guest(db*ThinBlock)); err != nil {
			t.Fatal(err)
		}
	}
	return p
}
