package vmware

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/memory/internal/qemufixture"
	"github.com/imgaudit/imgaudit/formats/model"
)

// tag encodes one tag of a .vmss memory group.
func tag(name string, idx []uint32, v uint64) []byte {
	b := []byte{byte(len(idx))<<6 | 8, byte(len(name))}
	b = append(b, name...)
	for _, i := range idx {
		b = binary.LittleEndian.AppendUint32(b, i)
	}
	return binary.LittleEndian.AppendUint64(b, v)
}

// state builds a .vmss/.vmsn with a memory group holding tags, and embedded
// memory when mem is not nil.
func state(tags [][]byte, mem []byte) []byte {
	var b bytes.Buffer
	hdr := make([]byte, 12+80)
	binary.LittleEndian.PutUint32(hdr, 0xbed2bed2)
	binary.LittleEndian.PutUint32(hdr[4:], 8)
	binary.LittleEndian.PutUint32(hdr[8:], 1)
	copy(hdr[12:], "memory")
	binary.LittleEndian.PutUint64(hdr[12+64:], uint64(len(hdr)))
	b.Write(hdr)
	for _, t := range tags {
		b.Write(t)
	}
	if mem != nil {
		t := []byte{62, 6}
		t = append(t, "Memory"...)
		t = binary.LittleEndian.AppendUint64(t, uint64(len(mem)))
		t = binary.LittleEndian.AppendUint64(t, uint64(len(mem)))
		t = append(t, 0, 0)
		b.Write(t)
		b.Write(mem)
	}
	b.Write([]byte{0, 0})
	return b.Bytes()
}

func TestVMware(t *testing.T) {
	vm := qemufixture.Capture(t, qemufixture.Config{}, "dump-guest-memory {dir}/dump.elf")
	// The guest RAM as QEMU dumped it becomes the .vmem.
	ef, err := os.Open(vm.Path("dump.elf"))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	fi, _ := ef.Stat()
	ed, _, err := elfcore.NewDisk(vm.Path("dump.elf"), ef, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	ram := make([]byte, 64<<20)
	ed.ReadAt(ram, 0)
	dir := t.TempDir()
	const half = 32 << 20
	// Two regions: the low half at 0, the high half moved to 4 GiB.
	split := [][]byte{
		tag("regionsCount", nil, 2),
		tag("regionPPN", []uint32{0}, 0), tag("regionPageNum", []uint32{0}, 0), tag("regionSize", []uint32{0}, half/4096),
		tag("regionPPN", []uint32{1}, (4<<30)/4096), tag("regionPageNum", []uint32{1}, half/4096), tag("regionSize", []uint32{1}, half/4096),
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("suspended.vmem", ram)
	write("suspended.vmss", state(split, nil))
	write("plain.vmem", ram)
	write("embedded.vmsn", state(nil, ram))
	moved := func(addr int64) int64 {
		if addr >= half {
			return 4<<30 + addr - half
		}
		return addr
	}
	for _, tc := range []struct {
		name string
		open string
		addr func(int64) int64
	}{
		{"vmem+vmss regions", "suspended.vmem", moved},
		{"vmss opened", "suspended.vmss", moved},
		{"vmem alone", "plain.vmem", func(a int64) int64 { return a }},
		{"vmsn embedded", "embedded.vmsn", func(a int64) int64 { return a }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.open)
			before := qemufixture.FileSum(t, p)
			im, err := Open(context.Background(), p, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			var plants []qemufixture.Plant
			for _, pl := range vm.Plants {
				pl.Addr = tc.addr(pl.Addr)
				plants = append(plants, pl)
			}
			qemufixture.CheckPlants(t, tc.name, im.Views[0].Disk, plants)
			qemufixture.CheckHostBytes(t, tc.name, im.Views[0].Disk)
			if qemufixture.FileSum(t, p) != before {
				t.Fatal("file changed")
			}
		})
	}
}
