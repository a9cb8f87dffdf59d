package guestfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/thin"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// thinVMDisks makes two VM disks (16 MiB, a GPT, an ext4 partition at
// 1 MiB): the origin's, with /etc/hello and /data/big, and its snapshot's,
// whose filesystem has one more file, /etc/old (debugfs -w).
func thinVMDisks(t *testing.T, dir string) (vmdisk, snapdisk []byte, hello, big, old []byte) {
	rng := rand.New(rand.NewPCG(5, 8))
	hello, big, old = make([]byte, 20000), make([]byte, 3<<20), make([]byte, 9000)
	for _, b := range [][]byte{hello, big, old} {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	for p, b := range map[string][]byte{"root/etc/hello": hello, "root/data/big": big, "old": old} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), b, 0o644)
	}
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "sgdisk")
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -b 4096 -d root p1.img 12M
cp p1.img p1snap.img
debugfs -w -R "write old /etc/old" p1snap.img >/dev/null 2>&1
truncate -s 16M vmdisk.img
sgdisk -n 1:2048:+12M vmdisk.img >/dev/null
cp vmdisk.img snapvm.img
dd if=p1.img of=vmdisk.img bs=512 seek=2048 conv=notrunc status=none
dd if=p1snap.img of=snapvm.img bs=512 seek=2048 conv=notrunc status=none`)
	return testutil.FileSnapshot(t, filepath.Join(dir, "vmdisk.img")), testutil.FileSnapshot(t, filepath.Join(dir, "snapvm.img")), hello, big, old
}

const thinPart = 1 << 20 // p1's start in the VM's disk

// TestLVMThin: a thin pool as Proxmox's local-lvm keeps VM disks (the
// metadata written by thin_restore, the VG by vgcfgrestore): the thin
// volume's VM disk (GPT, ext4) and its thin snapshot's are read through
// the pool, the data volume split in two segments out of order. Every
// block debugfs lists for a file holds its bytes at the guest offset the
// mappings give, and locates to that file: the origin's files in the
// origin, though the snapshot shares those blocks; the file only the
// snapshot has, in the snapshot. A data block no volume maps is free
// space of the pool. Files read by path, RegularFiles start where the
// mapping says; the metadata volume alone is unattributed.
func TestLVMThin(t *testing.T) {
	dir := t.TempDir()
	vmdisk, snapdisk, hello, big, old := thinVMDisks(t, dir)
	// The snapshot comes first in the VG's metadata: a shared block is
	// still the origin's.
	d := testutil.ThinPoolDisk(t, dir, 5, testutil.ThinVolume{Name: "vm-100-disk-0", Data: vmdisk},
		testutil.ThinVolume{Name: "snap_vm-100-disk-0_s1", Data: snapdisk, Origin: "vm-100-disk-0"})
	m, data := analyzeFile(t, d.Path)
	vm, snap := d.VG+"/vm-100-disk-0", d.VG+"/snap_vm-100-disk-0_s1"
	checkPartitions(t, m, []wantPartition{
		{vm, "lvm2:thin,gpt", "", d.At("vm-100-disk-0", 0)},
		{vm + "/p1", "gpt:Linux filesystem", "ext4", d.At("vm-100-disk-0", thinPart)},
		{snap, "lvm2:thin,gpt", "", d.At("snap_vm-100-disk-0_s1", 0)},
		{snap + "/p1", "gpt:Linux filesystem", "ext4", d.At("snap_vm-100-disk-0_s1", thinPart)},
		{d.VG + "/pool", "lvm2:thin-pool", "", -1},
		{d.VG + "/pool_tdata", "lvm2:linear", "", d.Guest(0)},
	})
	if u := m.Unattributed(); len(u) != 1 || !strings.Contains(u[0], "pool_tmeta: unknown: metadata of thin-pool pool") {
		t.Errorf("unattributed: %q", u)
	}
	for _, c := range []struct {
		part, img, path, vol string
		content              []byte
	}{
		{vm + "/p1", "p1.img", "/etc/hello", "vm-100-disk-0", hello},
		{vm + "/p1", "p1.img", "/data/big", "vm-100-disk-0", big},
		{snap + "/p1", "p1snap.img", "/etc/old", "snap_vm-100-disk-0_s1", old},
	} {
		blocks := debugfsBlocks(t, filepath.Join(dir, c.img), c.path)
		for i, b := range blocks {
			g := d.At(c.vol, thinPart+b*4096)
			want := c.content[i*4096 : min(len(c.content), (i+1)*4096)]
			if !bytes.Equal(data[g:g+int64(len(want))], want) {
				t.Fatalf("%s block %d: guest offset %d does not hold it", c.path, i, g)
			}
			if loc := m.Locate(g); loc.Partition != c.part || loc.Path != c.path || loc.State != StateAllocated {
				t.Errorf("%s block %d at %d: %+v", c.path, i, g, loc)
			}
		}
		files := m.Files(c.part)
		if files == nil {
			t.Fatalf("%s: no files", c.part)
		}
		if got, err := files.ReadFile(c.path); err != nil || !bytes.Equal(got, c.content) {
			t.Errorf("%s: ReadFile: %d bytes, %v", c.path, len(got), err)
		}
		start := int64(-2)
		m.RegularFiles(context.Background(), 1, func(f RegularFile) error {
			if f.Partition == c.part && f.Path == c.path {
				start = f.Start()
			}
			return nil
		})
		if want := d.At(c.vol, thinPart+blocks[0]*4096); start != want {
			t.Errorf("%s: RegularFiles starts it at %d, want %d", c.path, start, want)
		}
	}
	if _, err := m.Files(vm + "/p1").ReadFile("/etc/old"); err == nil {
		t.Error("the origin has the snapshot's file")
	}
	g := d.Guest(d.Free * testutil.ThinBlock)
	if !bytes.Equal(data[g:g+testutil.ThinBlock], d.FreeBytes) {
		t.Fatal("the free data block is not where the mapping says")
	}
	if loc := m.Locate(g + 100); loc.Partition != d.VG+"/pool_tdata" || loc.State != StateFree {
		t.Errorf("a data block no volume maps: %+v", loc)
	}
}

// TestThinDataOwners: the data blocks a volume added earlier holds stay
// its own; a later volume gets the rest of its runs, cut around them;
// one volume's runs that claim a data block twice (hostile metadata)
// keep the first claim. The owners stay sorted and disjoint.
func TestThinDataOwners(t *testing.T) {
	a, b, c := &partition{info: PartitionInfo{Name: "a"}}, &partition{info: PartitionInfo{Name: "b"}}, &partition{info: PartitionInfo{Name: "c"}}
	d := &thinData{bs: 1}
	d.add(a, []thin.Run{{VBlock: 0, DBlock: 10, Len: 5}, {VBlock: 20, DBlock: 30, Len: 2}})
	d.add(b, []thin.Run{{VBlock: 100, DBlock: 8, Len: 30}})                                 // around a's: 8-9, 15-29, 32-37
	d.add(c, []thin.Run{{VBlock: 0, DBlock: 50, Len: 4}, {VBlock: 10, DBlock: 52, Len: 4}}) // 52-53 claimed twice
	for _, x := range []struct {
		db      int64
		vol     *partition
		vb      int64
		unowned bool
	}{
		{7, nil, 0, true}, {8, b, 100, false}, {9, b, 101, false}, {10, a, 0, false}, {14, a, 4, false},
		{15, b, 107, false}, {29, b, 121, false}, {30, a, 20, false}, {31, a, 21, false}, {32, b, 124, false},
		{37, b, 129, false}, {38, nil, 0, true}, {52, c, 2, false}, {55, c, 13, false}, {56, nil, 0, true},
	} {
		vol, vb, ok := d.owner(x.db)
		if ok == x.unowned || ok && (vol != x.vol || vb != x.vb) {
			t.Errorf("data block %d: %v %d %v", x.db, vol, vb, ok)
		}
	}
	for i := 1; i < len(d.owners); i++ {
		if p, o := d.owners[i-1], d.owners[i]; o.db < p.db+p.n {
			t.Errorf("owners overlap: %+v %+v", p, o)
		}
	}
}

// TestThinDataSharedLeaves: a volume whose tree shares the metadata's
// leaves with a volume added before (a snapshot nothing wrote to, whose
// tree is its origin's) is given what going through all its runs would
// give it, nothing, without going through them: metadata thin_restore
// writes for an origin (2,000 blocks, trees of several levels) and a
// snapshot that shares a third of its data blocks, then a third device
// pointed at the origin's tree.
func TestThinDataSharedLeaves(t *testing.T) {
	testutil.RequireTool(t, "thin_restore")
	rng := rand.New(rand.NewPCG(3, 4))
	var x strings.Builder
	x.WriteString(`<superblock uuid="" time="1" transaction="1" flags="0" version="2" data_block_size="128" nr_data_blocks="10000">` + "\n")
	var origin, snap []string
	v, d := 0, 0
	for v < 2000 {
		l := 1 + rng.IntN(4)
		m := fmt.Sprintf(`<range_mapping origin_begin="%d" data_begin="%d" length="%d" time="0"/>`, v, d, l)
		origin = append(origin, m)
		if rng.IntN(3) == 0 {
			snap = append(snap, m)
		} else {
			snap = append(snap, fmt.Sprintf(`<range_mapping origin_begin="%d" data_begin="%d" length="%d" time="1"/>`, v, 5000+d, l))
		}
		v += l + 1 + rng.IntN(3)
		d += l + rng.IntN(2)
	}
	for _, dev := range []struct {
		id   int
		maps []string
	}{{1, origin}, {2, snap}, {3, origin}} {
		fmt.Fprintf(&x, `<device dev_id="%d" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">`+"\n%s\n</device>\n", dev.id, strings.Join(dev.maps, "\n"))
	}
	x.WriteString("</superblock>\n")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "meta.xml"), filepath.Join(dir, "tmeta.img")
	if err := os.WriteFile(in, []byte(x.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "thin_restore", "-i", in, "-o", out)
	meta := testutil.FileSnapshot(t, out)
	// Point device 3's top-level entry at device 1's tree.
	le := binary.LittleEndian
	top := meta[le.Uint64(meta[320:])*thin.BlockSize:]
	nr, maxEntries := int(le.Uint32(top[16:])), int(le.Uint32(top[20:]))
	if top[4]&2 == 0 || nr != 3 {
		t.Fatalf("top-level node: flags %d, %d entries", top[4], nr)
	}
	vals := top[32+8*maxEntries:]
	le.PutUint64(vals[16:], le.Uint64(vals[0:]))
	md, err := thin.Read(bytes.NewReader(meta), int64(len(meta)), "tmeta", thin.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := &partition{info: PartitionInfo{Name: "a"}}, &partition{info: PartitionInfo{Name: "b"}}, &partition{info: PartitionInfo{Name: "c"}}
	byRuns, byLeaves := &thinData{bs: 1}, &thinData{bs: 1}
	for i, vol := range []*partition{a, b, c} {
		dev := md.Devices[uint64(i+1)]
		byRuns.add(vol, dev.Runs())
		byLeaves.addDevice(vol, dev)
	}
	if len(byLeaves.added) < 4 {
		t.Fatalf("%d leaves added: no trees of several levels", len(byLeaves.added))
	}
	owned := map[*partition]int{}
	for db := int64(0); db < 10000; db++ {
		v1, vb1, ok1 := byRuns.owner(db)
		v2, vb2, ok2 := byLeaves.owner(db)
		if v1 != v2 || vb1 != vb2 || ok1 != ok2 {
			t.Fatalf("data block %d: by runs %v %d %v, by leaves %v %d %v", db, v1, vb1, ok1, v2, vb2, ok2)
		}
		if ok2 {
			owned[v2]++
		}
	}
	if owned[a] == 0 || owned[b] == 0 || owned[c] != 0 {
		t.Errorf("data blocks owned: origin %d, snapshot %d, shared device %d", owned[a], owned[b], owned[c])
	}
}
