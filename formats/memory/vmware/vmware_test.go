package vmware

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
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
	ed, _, _, err := elfcore.NewDisk(vm.Path("dump.elf"), ef, fi.Size())
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
	// A .vmem cut short (a copy that ran out of space): the second
	// region ends early.
	const cut = 40 << 20
	write("cut.vmem", ram[:cut])
	write("cut.vmss", state(split, nil))
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
		held int64 // the guest RAM bytes the files hold
	}{
		{"vmem+vmss regions", "suspended.vmem", moved, int64(len(ram))},
		{"vmss opened", "suspended.vmss", moved, int64(len(ram))},
		{"vmem alone", "plain.vmem", func(a int64) int64 { return a }, int64(len(ram))},
		{"vmsn embedded", "embedded.vmsn", func(a int64) int64 { return a }, int64(len(ram))},
		{"vmem cut short", "cut.vmem", moved, cut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.open)
			before := qemufixture.FileSum(t, p)
			im, err := Open(context.Background(), p, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			// A cut file is still read up to the cut, and its view says
			// it is incomplete, naming the memory file and the offset.
			inc := im.Views[0].Incomplete
			var fe *model.FormatError
			switch {
			case tc.held < int64(len(ram)) && (!errors.As(inc, &fe) || fe.File != filepath.Join(dir, "cut.vmem") || fe.Offset != cut):
				t.Errorf("incomplete %v, want the memory file's end at offset %d", inc, cut)
			case tc.held == int64(len(ram)) && inc != nil:
				t.Errorf("incomplete %v", inc)
			}
			var plants []qemufixture.Plant
			for _, pl := range vm.Plants {
				if pl.Addr+int64(len(pl.Data)) > tc.held {
					continue
				}
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

// TestVMwareStateView: the state file's bytes besides its memory (device
// state, the checkpoint) are a view of their own, whether the state file
// or its .vmem is opened, and an embedded memory is not in it again.
// Nothing read them before.
func TestVMwareStateView(t *testing.T) {
	dir := t.TempDir()
	const secret = "VMSS-DEVICE-STATE-PLANTED-7c1e"
	ram := bytes.Repeat([]byte{0x5a}, 1<<20)
	withDevice := append(state([][]byte{tag("regionsCount", nil, 0)}, nil), []byte(secret)...)
	embedded := append(state(nil, ram), []byte(secret)...)
	for name, b := range map[string][]byte{"suspended.vmem": ram, "suspended.vmss": withDevice, "embedded.vmsn": embedded} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		open      string
		stateSize int64 // the state view's allocated bytes
	}{
		{"suspended.vmss", int64(len(withDevice))},
		{"suspended.vmem", int64(len(withDevice))},
		{"embedded.vmsn", int64(len(embedded) - len(ram))},
	} {
		t.Run(tc.open, func(t *testing.T) {
			im, err := Open(context.Background(), filepath.Join(dir, tc.open), model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			v, ok := im.View(model.ViewID(im.Path, model.KindMemory, "state"))
			if !ok {
				t.Fatalf("no state view among %d views", len(im.Views))
			}
			got := blockmaptest.ExtentBytes(t, v.Disk)
			if n, _ := model.AllocatedBytes(context.Background(), v.Disk); n != tc.stateSize || !bytes.Contains(got, []byte(secret)) {
				t.Errorf("state view: %d bytes allocated (want %d), secret found %v", n, tc.stateSize, bytes.Contains(got, []byte(secret)))
			}
		})
	}
}
