package lime

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
)

// fromELF writes the PT_LOAD segments of a real dump-guest-memory file as
// LiME ranges, the layout LiME's "lime" format uses for System RAM.
func fromELF(t *testing.T, src, dst string) {
	f, err := elf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		h := make([]byte, 32)
		binary.LittleEndian.PutUint32(h, Magic)
		binary.LittleEndian.PutUint32(h[4:], 1)
		binary.LittleEndian.PutUint64(h[8:], p.Paddr)
		binary.LittleEndian.PutUint64(h[16:], p.Paddr+p.Filesz-1)
		b.Write(h)
		data := make([]byte, p.Filesz)
		p.ReadAt(data, 0)
		b.Write(data)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLiME(t *testing.T) {
	vm := qemufixture.Capture(t, qemufixture.Config{}, "dump-guest-memory {dir}/dump.elf")
	p := filepath.Join(t.TempDir(), "mem.lime")
	fromELF(t, vm.Path("dump.elf"), p)
	before := qemufixture.FileSum(t, p)
	head := make([]byte, 64)
	f, _ := os.Open(p)
	f.ReadAt(head, 0)
	f.Close()
	if !Probe(head, nil, 0) {
		t.Fatal("Probe rejects LiME")
	}
	im, err := Open(context.Background(), p, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	d := im.Views[0].Disk
	qemufixture.CheckPlants(t, "lime", d, vm.Plants)
	qemufixture.CompareWithELF(t, "lime", d, vm.Path("dump.elf"))
	qemufixture.CheckHostBytes(t, "lime", d)
	if qemufixture.FileSum(t, p) != before {
		t.Fatal("file changed")
	}
}
