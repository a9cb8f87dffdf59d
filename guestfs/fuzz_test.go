package guestfs

import (
	"context"
	"fmt"
	"io"
	"iter"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// memDisk is a model.Disk over bytes padded with zeros to size.
type memDisk struct {
	data []byte
	size int64
}

func (d memDisk) Size() int64 { return d.size }
func (d memDisk) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(b)
	if rem := d.size - off; int64(n) > rem {
		n = int(rem)
	}
	clear(b[:n])
	if off < int64(len(d.data)) {
		copy(b[:n], d.data[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
func (d memDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return model.ExtentList(nil).Seq(ctx)
}

// FuzzPartitionTable reads arbitrary bytes as a partitioned disk and then
// analyzes it as a whole: tables, filesystem probes and indexes must never
// panic or allocate without bound.
func FuzzPartitionTable(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d := memDisk{data, max(int64(len(data)), 1<<20)}
		pt, err := readPartitionTable(d, d.size)
		if err == nil {
			for _, e := range pt.Entries {
				if e.Index <= 0 {
					t.Fatalf("entry index %d", e.Index)
				}
			}
		}
		m, err := Analyze(context.Background(), d)
		if err != nil {
			return
		}
		for _, off := range []int64{0, 512, 4096, d.size / 2, d.size - 1} {
			m.Locate(off)
		}
		m.Unattributed()
		m.ReadFile("/etc/shadow")
	})
}

// TestPartitionTableSeeds: the LVM2 and LUKS seeds of FuzzPartitionTable
// reach the logical-volume mapping and the LUKS header reader.
func TestPartitionTableSeeds(t *testing.T) {
	for seed, want := range map[string]string{
		"lvm-pv": "/root",
		"luks2":  "encrypted: contents not visible (LUKS2",
	} {
		data := testutil.FuzzSeed(t, filepath.Join("testdata/fuzz/FuzzPartitionTable", seed))
		d := memDisk{data, max(int64(len(data)), 1<<20)}
		m, err := Analyze(context.Background(), d)
		if err != nil {
			t.Fatalf("%s: %v", seed, err)
		}
		got := fmt.Sprint(m.Partitions(), m.Unattributed())
		if !strings.Contains(got, want) {
			t.Errorf("%s: %s lacks %q", seed, got, want)
		}
	}
}

// FuzzLVDisk reads arbitrary bytes as a logical volume holding a VM's
// disk (analyzeLVDisk): its partition table, each partition's filesystem
// or volume group (analyzeNestedLVM), and Locate through the LV's
// mapping must never panic. The seeds are
// GPT and MBR tables that sgdisk and sfdisk write at fuzz time, with an
// ext4 (mkfs.ext4) in the first partition.
func FuzzLVDisk(f *testing.F) {
	testutil.RequireTool(f, "sgdisk", "sfdisk", "mkfs.ext4")
	dir := f.TempDir()
	testutil.Bash(f, dir, `set -e
truncate -s 1M gpt.img mbr.img
sgdisk -a 8 -n 1:64:+512K -n 2:1200:+64K gpt.img >/dev/null
printf 'label: dos\nstart=64, size=1024, type=83\n' | sfdisk -q --no-reread --no-tell-kernel mbr.img
mkdir -p root/etc && echo hello > root/etc/hostname
mkfs.ext4 -q -F -b 1024 -d root fs.img 512K
dd if=fs.img of=gpt.img bs=512 seek=64 conv=notrunc status=none
dd if=fs.img of=mbr.img bs=512 seek=64 conv=notrunc status=none`)
	for _, name := range []string{"gpt.img", "mbr.img"} {
		f.Add(testutil.FileSnapshot(f, filepath.Join(dir, name)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := int64(len(data))
		if n == 0 {
			return
		}
		layout := &pvLayout{r: memDisk{data, n}, size: n}
		seg := &lvSegment{start: 0, n: n, stripes: []lvStripe{{pv: layout, pvName: "pv0"}}}
		m := &Map{size: n, budgets: defaultBudgets()}
		m.parts = []*partition{{info: PartitionInfo{Name: WholeDisk, Size: n}, pv: layout}}
		lv := &partition{info: PartitionInfo{Name: "vg/lv", Size: n}}
		layout.areas = []pvArea{{off: 0, n: n, lv: lv, seg: seg}}
		m.lvs = append(m.lvs, lv)
		m.analyzeVolume(context.Background(), &lvReader{name: "vg/lv", size: n, segs: []*lvSegment{seg}}, lv, true)
		m.analyzeNestedLVM(context.Background()) // a PV in a partition: the VM's own VG
		for _, off := range []int64{0, 512, 64 * 512, n / 2, n - 1} {
			m.Locate(off)
		}
		m.Unattributed()
		m.RegularFiles(context.Background(), 1, func(RegularFile) error { return nil })
	})
}
