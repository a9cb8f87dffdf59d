package guestfs

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// peRanges returns, for each LV, its segments' PE ranges as lvs reports
// them ("/dev/loop0:3-4 /dev/loop1:0-1") and its stripe size in bytes.
func peRanges(t *testing.T, devs []string, vg string) map[string][2]string {
	out := map[string][2]string{}
	for _, line := range strings.Split(testutil.LVM(t, devs, "lvs", "-a", "--noheadings", "--separator", ";", "--segments", "--units", "b", "-o", "lv_name,seg_pe_ranges,stripe_size", vg), "\n") {
		f := strings.Split(strings.TrimSpace(line), ";")
		if len(f) == 3 {
			out[f[0]] = [2]string{f[1], strings.TrimSuffix(f[2], "B")}
		}
	}
	return out
}

// lvmDisk is a GPT disk with two LVM2 PVs (p1, p2) in one VG, with a
// linear LV holding an ext4 filesystem, a striped LV holding another, a
// thin pool with a thin volume, and an LV that was removed after its
// filesystem was written.
type lvmDisk struct {
	path               string
	vg                 string
	p1, p2             int64 // partition starts
	peStart            int64
	live, deleted, old []byte
	newContent         []byte
	big                []byte
	rootImg            string
	deletedBlocks      []int64
}

func makeLVMDisk(t *testing.T) *lvmDisk {
	testutil.RequireTool(t, "sfdisk", "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "lvs", "pvs", "mkfs.ext4", "debugfs")
	d := &lvmDisk{vg: fmt.Sprintf("imgaudit%d", os.Getpid())}
	dir := t.TempDir()
	d.path = filepath.Join(dir, "disk.img")
	if err := os.WriteFile(d.path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(d.path, 128<<20); err != nil {
		t.Fatal(err)
	}
	const lvmType = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
	testutil.Run(t, "sh", "-c", fmt.Sprintf("sfdisk --no-reread --no-tell-kernel -q %s <<'EOF'\nlabel: gpt\nstart=2048, size=102400, type=%s\nstart=104448, size=102400, type=%s\nEOF\n", d.path, lvmType, lvmType))
	d.p1, d.p2 = 2048*512, 104448*512
	a, detachA := testutil.LoopDevice(t, d.path, d.p1, 102400*512)
	b, detachB := testutil.LoopDevice(t, d.path, d.p2, 102400*512)
	devs := []string{a, b}
	testutil.LVM(t, devs, "pvcreate", "-q", a, b)
	testutil.LVM(t, devs, "vgcreate", "-q", d.vg, a, b)
	backup := filepath.Join(dir, "vg.txt")
	testutil.LVM(t, devs, "vgcfgbackup", "-f", backup, d.vg)
	root := testutil.LVText("root", "root00-0000-0000-0000-0000-0000-000000", true, testutil.LinearSegment(0, 3, "pv0", 0))
	data := testutil.LVText("data", "data00-0000-0000-0000-0000-0000-000000", true,
		"start_extent = 0\nextent_count = 4\ntype = \"striped\"\nstripe_count = 2\nstripe_size = 128\nstripes = [\"pv0\", 3, \"pv1\", 0]")
	old := testutil.LVText("old", "old000-0000-0000-0000-0000-0000-000000", true, testutil.LinearSegment(0, 2, "pv0", 8))
	pool := testutil.LVText("pool", "pool00-0000-0000-0000-0000-0000-000000", true,
		"start_extent = 0\nextent_count = 2\ntype = \"thin-pool\"\nmetadata = \"pool_tmeta\"\npool = \"pool_tdata\"\ntransaction_id = 0\nchunk_size = 128\ndiscards = \"passdown\"\nzero_new_blocks = 1")
	tmeta := testutil.LVText("pool_tmeta", "tmeta0-0000-0000-0000-0000-0000-000000", false, testutil.LinearSegment(0, 1, "pv1", 6))
	tdata := testutil.LVText("pool_tdata", "tdata0-0000-0000-0000-0000-0000-000000", false, testutil.LinearSegment(0, 2, "pv1", 4))
	// First the VG with "old", then without: the first copy stays in the
	// metadata area's circular buffer.
	testutil.RestoreVG(t, devs, d.vg, backup, 1, root, data, old, pool, tmeta, tdata)
	ranges := peRanges(t, devs, d.vg)
	testutil.RestoreVG(t, devs, d.vg, backup, 2, root, data, pool, tmeta, tdata)
	now := peRanges(t, devs, d.vg)
	if _, ok := now["old"]; ok {
		t.Fatalf("old LV still listed: %v", now)
	}
	peStart := testutil.PEStart(t, devs, a)
	detachA()
	detachB()
	d.peStart = peStart
	const extent = 4 << 20 // vgcreate's default
	// where converts "/dev/loopN:a-b" to the disk offset of extent a.
	where := func(r string) int64 {
		dev, pes, _ := strings.Cut(r, ":")
		first, _, _ := strings.Cut(pes, "-")
		n, _ := strconv.ParseInt(first, 10, 64)
		base := map[string]int64{a: d.p1, b: d.p2}[dev]
		return base + peStart + n*extent
	}

	// The root LV: an ext4 with a live file, a deleted one and one
	// overwritten in place (through a loop mount).
	src := filepath.Join(dir, "src")
	d.live = marker("/etc/lvm-secret", 9000)
	d.deleted = marker("/tmp/lvm-deleted", 7000)
	oldContent := marker("/srv/lvm-old", 5000)
	d.newContent = marker("/srv/lvm-new", 5000)
	for p, c := range map[string][]byte{"/etc/secret": d.live, "/tmp/token": d.deleted, "/srv/over": oldContent} {
		full := filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d.rootImg = filepath.Join(dir, "root.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, d.rootImg, "12M")
	d.deletedBlocks = debugfsBlocks(t, d.rootImg, "/tmp/token")
	testutil.Run(t, "debugfs", "-w", "-R", "rm /tmp/token", d.rootImg)
	mnt, unmount := testutil.LoopMount(t, d.rootImg)
	f, err := os.OpenFile(filepath.Join(mnt, "srv/over"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(d.newContent, 0)
	f.Sync()
	f.Close()
	unmount()
	embed(t, d.path, d.rootImg, where(ranges["root"][0]))

	// The striped LV: an ext4 with a file large enough to cross stripes,
	// written chunk by chunk as LVM stripes it.
	bigSrc := filepath.Join(dir, "bigsrc")
	os.MkdirAll(bigSrc, 0o755)
	for i := 0; i < 80; i++ {
		d.big = append(d.big, marker(fmt.Sprintf("/big-%04d", i), 4096)...)
	}
	if err := os.WriteFile(filepath.Join(bigSrc, "big"), d.big, 0o644); err != nil {
		t.Fatal(err)
	}
	dataImg := filepath.Join(dir, "data.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", bigSrc, dataImg, "16M")
	stripes := strings.Fields(ranges["data"][0])
	stripeSize, _ := strconv.ParseInt(ranges["data"][1], 10, 64)
	if len(stripes) != 2 || stripeSize == 0 {
		t.Fatalf("lvs: data LV %v", ranges["data"])
	}
	dataBytes := testutil.FileSnapshot(t, dataImg)
	disk, err := os.OpenFile(d.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	for chunk := int64(0); chunk*stripeSize < int64(len(dataBytes)); chunk++ {
		s, row := chunk%2, chunk/2
		b := dataBytes[chunk*stripeSize : (chunk+1)*stripeSize]
		if _, err := disk.WriteAt(b, where(stripes[s])+row*stripeSize); err != nil {
			t.Fatal(err)
		}
	}
	// What the removed LV held.
	d.old = marker("/removed-lv-data", 8192)
	if _, err := disk.WriteAt(d.old, where(ranges["old"][0])+12345); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLVMLocate(t *testing.T) {
	d := makeLVMDisk(t)
	m, data := analyzeFile(t, d.path)
	parts := map[string]PartitionInfo{}
	for _, p := range m.Partitions() {
		parts[p.Name] = p
	}
	vg := d.vg
	for _, c := range []struct {
		name, typ, fs string
		attributed    bool
		start         int64
	}{
		{"p1", "gpt:Linux LVM", "lvm2", true, d.p1},
		{"p2", "gpt:Linux LVM", "lvm2", true, d.p2},
		{vg + "/root", "lvm2:linear", "ext4", true, d.p1 + d.peStart},
		{vg + "/data", "lvm2:striped", "ext4", true, d.p1 + d.peStart + 3<<22},
		{vg + "/old", "lvm2:removed", "", false, d.p1 + d.peStart + 8<<22},
		{vg + "/pool", "lvm2:thin-pool", "", false, -1},
		{vg + "/pool_tdata", "lvm2:linear", "", false, d.p2 + d.peStart + 4<<22},
	} {
		p, ok := parts[c.name]
		if !ok || p.FS != c.fs || p.Attributed != c.attributed || p.Start != c.start || (c.typ != "" && p.Type != c.typ) {
			t.Errorf("%s: %+v, want %+v", c.name, p, c)
		}
	}
	u := strings.Join(m.Unattributed(), "\n")
	for _, want := range []string{vg + "/pool: unknown: thin-pool logical volume: its metadata could not be read: " + vg + "/pool_tmeta: offset 32 (0x20): not thin pool metadata", vg + "/pool_tdata: unknown: data of thin-pool pool: unsupported", vg + "/old: unknown: removed logical volume: in metadata seqno"} {
		if !strings.Contains(u, want) {
			t.Errorf("unattributed lacks %q:\n%s", want, u)
		}
	}
	at := func(content []byte) int64 {
		i := bytes.Index(data, content[:64])
		if i < 0 {
			t.Fatalf("content not on the disk")
		}
		return int64(i)
	}
	// debugfs is the independent reader of where the live file is in
	// the root LV, and of which blocks the deleted one freed.
	first := debugfsBlocks(t, d.rootImg, "/etc/secret")[0]
	if want := d.p1 + d.peStart + first*4096; at(d.live) != want {
		t.Errorf("live file at %d, debugfs says %d", at(d.live), want)
	}
	for _, b := range d.deletedBlocks {
		if out := string(testutil.Run(t, "debugfs", "-R", fmt.Sprintf("testb %d", b), d.rootImg)); !strings.Contains(out, "not in use") {
			t.Errorf("debugfs: block %d of the deleted file: %s", b, out)
		}
	}
	root := vg + "/root"
	for _, c := range []struct {
		off  int64
		want Location
	}{
		{at(d.live), Location{Partition: root, FS: "ext4", Path: "/etc/secret", State: StateAllocated}},
		{at(d.newContent), Location{Partition: root, FS: "ext4", Path: "/srv/over", State: StateAllocated}},
		{at(d.deleted), Location{Partition: root, FS: "ext4", State: StateFree}},
		{d.p1 + d.peStart + d.deletedBlocks[0]*4096, Location{Partition: root, FS: "ext4", State: StateFree}},
		{at(d.old), Location{Partition: vg + "/old", State: StateFree}},
		{d.p2 + d.peStart + 10<<22, Location{Partition: "p2", FS: "lvm2", State: StateFree}},     // a free extent of the VG
		{d.p1 + 4096 + 100, Location{Partition: "p1", FS: "lvm2", State: StateAllocated}},        // metadata area
		{d.p2 + d.peStart + 4<<22, Location{Partition: vg + "/pool_tdata", State: StateUnknown}}, // thin pool data
	} {
		if got := m.Locate(c.off); !sameLoc(got, c.want) {
			t.Errorf("Locate(%d) = %+v, want %+v", c.off, got, c.want)
		}
	}
	// Every 4 KiB piece of the striped file, on either PV, maps to it.
	onP1, onP2 := 0, 0
	for i := 0; i < 80; i++ {
		off := at(marker(fmt.Sprintf("/big-%04d", i), 64))
		if got := m.Locate(off); got.Partition != vg+"/data" || got.Path != "/big" || got.State != StateAllocated {
			t.Errorf("piece %d at %d: %+v", i, off, got)
		}
		if off < d.p2 {
			onP1++
		} else {
			onP2++
		}
	}
	if onP1 == 0 || onP2 == 0 {
		t.Errorf("striped file: %d pieces on p1, %d on p2", onP1, onP2)
	}
	// Files are read through the LVs.
	if b, err := m.ReadFile("/etc/secret"); err != nil || !bytes.Equal(b, d.live) {
		t.Errorf("ReadFile /etc/secret: %d bytes, %v", len(b), err)
	}
	if b, err := m.ReadFile("/big"); err != nil || !bytes.Equal(b, d.big) {
		t.Errorf("ReadFile /big (striped): %d bytes, %v", len(b), err)
	}
	// RegularFiles maps the LVs' runs to the disk: the striped file's
	// runs, in guest offsets, hold its bytes on both PVs.
	files := map[string]RegularFile{}
	m.RegularFiles(context.Background(), 1, func(f RegularFile) error { files[f.Partition+":"+f.Path] = f; return nil })
	if f := files[root+":/etc/secret"]; f.Start() != at(d.live) {
		t.Errorf("RegularFiles: /etc/secret starts at %d, want %d", f.Start(), at(d.live))
	}
	big := files[vg+"/data:/big"]
	var got []byte
	for _, r := range big.Runs {
		if r.FileOff != int64(len(got)) {
			t.Fatalf("/big: run at file offset %d after %d bytes", r.FileOff, len(got))
		}
		got = append(got, data[r.Off:r.Off+r.Len]...)
	}
	if len(big.Runs) < 2 || !bytes.Equal(got[:len(d.big)], d.big) {
		t.Errorf("RegularFiles: /big's %d runs do not hold its bytes", len(big.Runs))
	}
}

// debugfsBlocks lists a file's blocks as debugfs reports them.
func debugfsBlocks(t *testing.T, img, p string) []int64 {
	var out []int64
	// debugfs writes its banner on stderr, which testutil.Run keeps.
	_, list, _ := strings.Cut(string(testutil.Run(t, "debugfs", "-R", "blocks "+p, img)), ")\n")
	for _, f := range strings.Fields(list) {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		t.Fatalf("debugfs lists no block of %s", p)
	}
	return out
}

// TestLVMPartialVG: a VG over two disks, of which the image holds one. An
// LV whose second segment lies on the other disk is partial: its
// filesystem is read where its extents are on this disk, and the note
// says which PV is missing.
func TestLVMPartialVG(t *testing.T) {
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "mkfs.ext4")
	dir := t.TempDir()
	vg := fmt.Sprintf("imgauditp%d", os.Getpid())
	disk, other := filepath.Join(dir, "disk.img"), filepath.Join(dir, "other.img")
	for _, f := range []string{disk, other} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(f, 32<<20); err != nil {
			t.Fatal(err)
		}
	}
	a, detachA := testutil.LoopDevice(t, disk, 0, 0)
	b, detachB := testutil.LoopDevice(t, other, 0, 0)
	devs := []string{a, b}
	testutil.LVM(t, devs, "pvcreate", "-q", a, b)
	testutil.LVM(t, devs, "vgcreate", "-q", vg, a, b)
	backup := filepath.Join(dir, "vg.txt")
	testutil.LVM(t, devs, "vgcfgbackup", "-f", backup, vg)
	testutil.RestoreVG(t, devs, vg, backup, 1, testutil.LVText("span", "span00-0000-0000-0000-0000-0000-000000", true,
		testutil.LinearSegment(0, 3, "pv0", 0), testutil.LinearSegment(3, 2, "pv1", 0)))
	peStart := testutil.PEStart(t, devs, a)
	detachA()
	detachB()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	secret := marker("/etc/partial-secret", 6000)
	if err := os.WriteFile(filepath.Join(src, "etc/secret"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	fsImg := filepath.Join(dir, "span.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", src, fsImg, "20M")
	fsBytes := testutil.FileSnapshot(t, fsImg)
	// The first 12 MiB go to this disk, the rest to the other one.
	for _, w := range []struct {
		file     string
		from, to int64
	}{{disk, 0, 12 << 20}, {other, 12 << 20, 20 << 20}} {
		f, err := os.OpenFile(w.file, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(fsBytes[w.from:w.to], peStart); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	m, data := analyzeFile(t, disk)
	var span PartitionInfo
	for _, p := range m.Partitions() {
		if p.Name == vg+"/span" {
			span = p
		}
	}
	if span.FS != "ext4" || !span.Attributed || !strings.Contains(span.Note, "PV pv1, which is not on this disk") {
		t.Errorf("span: %+v", span)
	}
	off := int64(bytes.Index(data, secret[:64]))
	if off < 0 {
		t.Fatal("secret not on this disk (ext4 put it past 12 MiB)")
	}
	if got, want := m.Locate(off), (Location{Partition: vg + "/span", FS: "ext4", Path: "/etc/secret", State: StateAllocated}); !sameLoc(got, want) {
		t.Errorf("Locate: %+v, want %+v", got, want)
	}
	if u := strings.Join(m.Unattributed(), "\n"); !strings.Contains(u, vg+"/span: ext4: partial: extents on PV pv1") {
		t.Errorf("unattributed: %s", u)
	}
}

// TestLVMVMDisk: a VM's disk kept in a logical volume, as Proxmox's LVM
// storage and libvirt's logical pools keep them: a GPT (sgdisk) with two
// ext4 partitions (mkfs.ext4 -d), in an LV of two segments stored out of
// order on the PV, the second partition across the segments' seam. The
// LV is attributed through its partitions ("vg/vm-100-disk-0/p1"): every
// block debugfs lists for a file holds that file's bytes at the guest
// offset the mapping gives and locates to that file; files start where
// RegularFiles says and read by path. The GPT's own sectors are the LV's,
// unknown.
func TestLVMVMDisk(t *testing.T) {
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "mkfs.ext4", "debugfs", "sgdisk")
	dir := t.TempDir()
	img := filepath.Join(dir, "pv.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	vg := fmt.Sprintf("imgauditvmdisk%d", os.Getpid())
	// Six 4 MiB extents: the LV's first four on PEs 6-9, the last two on PEs 1-2.
	peStart := testutil.SinglePV(t, img, 0, 0, vg, testutil.LVText("vm-100-disk-0", "vmdisk-0000-0000-0000-0000-0000-000000", true,
		testutil.LinearSegment(0, 4, "pv0", 6), testutil.LinearSegment(4, 2, "pv0", 1)))
	lvToGuest := func(lo int64) int64 {
		if lo < 16<<20 {
			return peStart + 6<<22 + lo
		}
		return peStart + 1<<22 + lo - 16<<20
	}

	hello, big := make([]byte, 20000), make([]byte, 6<<20)
	rand.NewChaCha8([32]byte{1}).Read(hello)
	rand.NewChaCha8([32]byte{2}).Read(big)
	for p, b := range map[string][]byte{"r1/etc/hello": hello, "r2/data/big": big} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), b, 0o644)
	}
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -b 4096 -d r1 p1.img 8M
mkfs.ext4 -q -F -b 4096 -d r2 p2.img 12M
truncate -s 24M vmdisk.img
sgdisk -n 1:2048:+8M -n 2:20480:+12M vmdisk.img >/dev/null
dd if=p1.img of=vmdisk.img bs=512 seek=2048 conv=notrunc status=none
dd if=p2.img of=vmdisk.img bs=512 seek=20480 conv=notrunc status=none`)
	vmdisk := testutil.FileSnapshot(t, filepath.Join(dir, "vmdisk.img"))
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(vmdisk[:16<<20], lvToGuest(0))
	f.WriteAt(vmdisk[16<<20:], lvToGuest(16<<20))
	f.Close()

	m, data := analyzeFile(t, img)
	lv := vg + "/vm-100-disk-0"
	checkPartitions(t, m, []wantPartition{
		{lv, "lvm2:linear,gpt", "", lvToGuest(0)},
		{lv + "/p1", "gpt:Linux filesystem", "ext4", lvToGuest(1 << 20)},
		{lv + "/p2", "gpt:Linux filesystem", "ext4", lvToGuest(10 << 20)},
	})
	if u := strings.Join(m.Unattributed(), "\n"); strings.Contains(u, "no filesystem") {
		t.Errorf("unattributed: %s", u)
	}
	for _, c := range []struct {
		part, img, path string
		partStart       int64 // in the LV
		content         []byte
	}{
		{lv + "/p1", "p1.img", "/etc/hello", 1 << 20, hello},
		{lv + "/p2", "p2.img", "/data/big", 10 << 20, big},
	} {
		blocks := debugfsBlocks(t, filepath.Join(dir, c.img), c.path)
		for i, b := range blocks {
			g := lvToGuest(c.partStart + b*4096)
			want := c.content[i*4096 : min(len(c.content), (i+1)*4096)]
			if !bytes.Equal(data[g:g+int64(len(want))], want) {
				t.Fatalf("%s block %d: guest offset %d does not hold it", c.path, i, g)
			}
			if loc := m.Locate(g); loc.Partition != c.part || loc.Path != c.path || loc.State != StateAllocated || loc.FS != "ext4" {
				t.Errorf("%s block %d at %d: %+v", c.path, i, g, loc)
			}
		}
		files := m.Files(c.part)
		if files == nil {
			t.Fatalf("%s: no files; partitions %+v", c.part, m.Partitions())
		}
		got, err := files.ReadFile(c.path)
		if err != nil || !bytes.Equal(got, c.content) {
			t.Errorf("%s: ReadFile: %d bytes, %v", c.path, len(got), err)
		}
		found := false
		m.RegularFiles(context.Background(), 1, func(f RegularFile) error {
			if f.Partition == c.part && f.Path == c.path {
				found = true
				if f.Start() != lvToGuest(c.partStart+blocks[0]*4096) {
					t.Errorf("%s starts at %d, want %d", c.path, f.Start(), lvToGuest(c.partStart+blocks[0]*4096))
				}
			}
			return nil
		})
		if !found {
			t.Errorf("RegularFiles lists no %s", c.path)
		}
	}
	if loc := m.Locate(lvToGuest(512)); loc.Partition != lv || loc.State != StateUnknown {
		t.Errorf("the GPT header: %+v", loc)
	}
}

// TestLVMNestedVG: a VM's disk in a logical volume whose own root is on
// LVM, as Ubuntu's installer lays it out: the host's LV (two segments out
// of order) holds a GPT whose partition is a PV of the VM's volume group,
// whose LV holds an ext4. The VM's LV is a partition named after the
// disk's ("host/vm-101-disk-0/guest/root"); every block debugfs lists
// for its file holds the file's bytes where the three mappings (the
// VM's LV, its partition, the host's LV) put it, and locates there; the
// VM's VG's unused extents are free. A clone of the VM (another LV, the
// same VG name and UUID inside) keeps its own.
func TestLVMNestedVG(t *testing.T) {
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "mkfs.ext4", "debugfs", "sgdisk")
	dir := t.TempDir()
	secret := make([]byte, 50000)
	rand.NewChaCha8([32]byte{9}).Read(secret)
	os.MkdirAll(filepath.Join(dir, "root/etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "root/etc/secret"), secret, 0o600)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -b 4096 -d root guestroot.img 12M
truncate -s 24M vmdisk.img
sgdisk -n 1:2048:+20M vmdisk.img >/dev/null`)
	vmdisk := filepath.Join(dir, "vmdisk.img")
	// The VM's VG on its partition: root, 3 extents from its PE 1.
	guestVG := fmt.Sprintf("guest%d", os.Getpid())
	gPEStart := testutil.SinglePV(t, vmdisk, 1<<20, 20<<20, guestVG, testutil.LVText("root", "groot0-0000-0000-0000-0000-0000-000000", true, testutil.LinearSegment(0, 3, "pv0", 1)))
	f, err := os.OpenFile(vmdisk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(testutil.FileSnapshot(t, filepath.Join(dir, "guestroot.img")), 1<<20+gPEStart+1<<22)
	f.Close()

	// The host's LV holding the VM's disk: 6 extents, the first 4 at PE
	// 8, the last 2 at PE 2.
	img := filepath.Join(dir, "host.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 64<<20)
	hostVG := fmt.Sprintf("host%d", os.Getpid())
	hPEStart := testutil.SinglePV(t, img, 0, 0, hostVG, testutil.LVText("vm-101-disk-0", "vm1010-0000-0000-0000-0000-0000-000000", true,
		testutil.LinearSegment(0, 4, "pv0", 8), testutil.LinearSegment(4, 2, "pv0", 2)),
		testutil.LVText("vm-102-disk-0", "vm1020-0000-0000-0000-0000-0000-000000", true,
			testutil.LinearSegment(0, 4, "pv0", 4), testutil.LinearSegment(4, 2, "pv0", 12)))
	disk := testutil.FileSnapshot(t, vmdisk)
	hostLV := func(lo int64) int64 {
		if lo < 16<<20 {
			return hPEStart + 8<<22 + lo
		}
		return hPEStart + 2<<22 + lo - 16<<20
	}
	f, err = os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(disk[:16<<20], hostLV(0))
	f.WriteAt(disk[16<<20:], hostLV(16<<20))
	// vm-102: a clone, its VG of the same name and UUID.
	f.WriteAt(disk[:16<<20], hPEStart+4<<22)
	f.WriteAt(disk[16<<20:], hPEStart+12<<22)
	f.Close()
	// A byte of the VM's root LV, on the host's disk.
	at := func(lo int64) int64 { return hostLV(1<<20 + gPEStart + 1<<22 + lo) }

	m, data := analyzeFile(t, img)
	lv, part, root := hostVG+"/vm-101-disk-0", hostVG+"/vm-101-disk-0/p1", hostVG+"/vm-101-disk-0/"+guestVG+"/root"
	checkPartitions(t, m, []wantPartition{
		{lv, "lvm2:linear,gpt", "", hostLV(0)},
		{part, "gpt:Linux filesystem", "lvm2", hostLV(1 << 20)},
		{root, "lvm2:linear", "ext4", at(0)},
	})
	if u := m.Unattributed(); len(u) != 0 {
		t.Errorf("unattributed: %q", u)
	}
	blocks := debugfsBlocks(t, filepath.Join(dir, "guestroot.img"), "/etc/secret")
	for i, b := range blocks {
		g := at(b * 4096)
		want := secret[i*4096 : min(len(secret), (i+1)*4096)]
		if !bytes.Equal(data[g:g+int64(len(want))], want) {
			t.Fatalf("block %d: guest offset %d does not hold it", i, g)
		}
		if loc := m.Locate(g); loc.Partition != root || loc.Path != "/etc/secret" || loc.State != StateAllocated || loc.FS != "ext4" {
			t.Errorf("block %d at %d: %+v", i, g, loc)
		}
	}
	files := m.Files(root)
	if files == nil {
		t.Fatalf("no files in %s: %+v", root, m.Partitions())
	}
	if got, err := files.ReadFile("/etc/secret"); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("ReadFile: %d bytes, %v", len(got), err)
	}
	// The clone's copy is its own.
	clone := hPEStart + 4<<22 + 1<<20 + gPEStart + 1<<22 + blocks[0]*4096
	if loc := m.Locate(clone); loc.Partition != hostVG+"/vm-102-disk-0/"+guestVG+"/root" || loc.Path != "/etc/secret" {
		t.Errorf("the clone's copy: %+v", loc)
	}
	start := int64(-2)
	m.RegularFiles(context.Background(), 1, func(f RegularFile) error {
		if f.Partition == root && f.Path == "/etc/secret" {
			start = f.Start()
		}
		return nil
	})
	if start != at(blocks[0]*4096) {
		t.Errorf("RegularFiles starts it at %d, want %d", start, at(blocks[0]*4096))
	}
	// The VM's VG's extent 0, which no LV uses.
	if loc := m.Locate(hostLV(1<<20 + gPEStart + 100)); loc.Partition != part || loc.State != StateFree {
		t.Errorf("the VM's VG's free extent: %+v", loc)
	}
}

// wantPartition is what a test expects of one attributed partition.
type wantPartition struct {
	name, typ, fs string
	start         int64
}

// checkPartitions asserts that m lists each partition of want, attributed,
// with its type, filesystem and start.
func checkPartitions(t *testing.T, m *Map, want []wantPartition) {
	t.Helper()
	parts := map[string]PartitionInfo{}
	for _, p := range m.Partitions() {
		parts[p.Name] = p
	}
	for _, c := range want {
		p, ok := parts[c.name]
		if !ok || p.Type != c.typ || p.FS != c.fs || p.Start != c.start || !p.Attributed {
			t.Errorf("%s: %+v, want %+v", c.name, p, c)
		}
	}
}
