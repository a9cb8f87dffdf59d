package scanner

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestLendingDiskLendsGuestBytes: what lendingDisk lends for a range is what
// the view reads there, on qcow2, VMDK, VHD, VHDX, VDI, Parallels and QED images made by qemu-img and
// qemu-io with data, compressed, zero and partly written (subcluster)
// clusters over a backing file; and images written in one go are lent
// almost whole, so the test cannot pass by lending nothing.
func TestLendingDiskLendsGuestBytes(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	data := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(base, data, 0o600); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", base, "-F", "raw", overlay, "8M")
	// 1M-2M is written before 0-1M: guest neighbours, host in reverse.
	testutil.Run(t, "qemu-io", "-c", "write -q -P 0x10 1M 1M", "-c", "write -q -P 0x11 0 1M", "-c", "write -q -P 0x12 2M 1M", "-c", "write -q -P 0x22 3200k 8k",
		"-c", "write -q -c -P 0x33 4M 128k", "-c", "write -q -z 5M 64k", "-c", "write -q -P 0x44 6M 1M", overlay)
	testutil.RequireTool(t, "qemu-system-x86_64")
	for _, c := range []struct {
		name     string
		ext      string // the image's file name extension; .img if empty
		make     func(path string)
		minShare float64 // of the current or memory view's allocated bytes, lent as whole runs
	}{
		{"qcow2 written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "qcow2", base, p) }, 0.99},
		{"vmdk written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "vmdk", base, p) }, 0.99},
		// Its data in an extent file of its own, which the image opens
		// through the allowed roots: a host file, lent too.
		{"vmdk with a flat extent", ".vmdk", func(p string) {
			testutil.Run(t, "qemu-img", "convert", "-O", "vmdk", "-o", "subformat=monolithicFlat", base, p)
		}, 0.99},
		{"vhd written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "vpc", base, p) }, 0.99},
		{"vhdx written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "vhdx", base, p) }, 0.99},
		{"vdi written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "vdi", base, p) }, 0.99},
		{"parallels written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "parallels", base, p) }, 0.99},
		{"qed written in one go", "", func(p string) { testutil.Run(t, "qemu-img", "convert", "-O", "qed", base, p) }, 0.99},
		{"qcow2 overlay", "", func(p string) {
			b, err := os.ReadFile(overlay)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "qemu-img", "rebase", "-u", "-b", base, "-F", "raw", p)
		}, 0.5},
		{"streamOptimized vmdk", "", func(p string) {
			testutil.Run(t, "qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", base, p)
		}, 0},
		{"elf-core", "", func(p string) { dumpGuestMemory(t, base, p) }, 0.99},
		{"vmem", ".vmem", func(p string) {
			// A VMware memory file without its state file: the guest
			// RAM from 0, as QEMU dumped it.
			elf := filepath.Join(dir, "ram.elf")
			dumpGuestMemory(t, base, elf)
			im, err := formats.Open(context.Background(), elf, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			ram := make([]byte, 16<<20)
			if _, err := im.Views[0].Disk.ReadAt(ram, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, ram, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0.99},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(dir, filepath.Base(c.name)+cmp.Or(c.ext, ".img"))
			c.make(img)
			s := New(Options{})
			// Opened as a scan opens a target: the host files its image
			// opens are known (hostFile), and only they are lent.
			tg := &target{path: img}
			im, err := s.openImage(context.Background(), tg)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			tg.img = im
			ms := &mappings{m: map[string][]byte{}}
			defer ms.close()
			for _, view := range im.Views {
				v := s.prepareView(context.Background(), tg, view, newCanonicalizer())
				if v.err != nil {
					t.Fatalf("%s: %v", view.ID, v.err)
				}
				d := lendable(v, ms)
				ld, ok := d.(lendingDisk)
				var lent int64
				check := func(off int64, n int) bool {
					b, ok := ld.Slice(off, n)
					if !ok {
						return false
					}
					want := make([]byte, n)
					if _, err := view.Disk.ReadAt(want, off); err != nil {
						t.Fatalf("%s: ReadAt(%d, %d): %v", view.ID, off, n, err)
					}
					if !bytes.Equal(b, want) {
						t.Fatalf("%s: lent %d bytes at %d differ from the view's", view.ID, n, off)
					}
					return true
				}
				if ok {
					for _, r := range ld.runs {
						if !check(r.off, int(r.end-r.off)) {
							t.Fatalf("%s: run [%d, %d) not lent whole", view.ID, r.off, r.end)
						}
						lent += r.end - r.off
						// Ranges that stick out of a run are not lent.
						if r.off > 0 && check(r.off-1, 2) {
							t.Fatalf("%s: range across the start of run [%d, %d) lent", view.ID, r.off, r.end)
						}
					}
					for range 3000 {
						off := rng.Int64N(view.Disk.Size())
						check(off, 1+rng.IntN(int(min(256<<10, view.Disk.Size()-off))))
					}
				}
				if view.Kind == model.KindCurrent || view.Kind == model.KindMemory {
					if share := float64(lent) / float64(max(v.alloc, 1)); share < c.minShare || c.minShare == 0 && ok {
						t.Errorf("%s: %.0f%% of %d allocated bytes lent, want at least %.0f%%", view.ID, 100*share, v.alloc, 100*c.minShare)
					}
				}
			}
		})
	}
}

// dumpGuestMemory writes the ELF core of a 16 MiB guest whose RAM holds
// the file data from 1 MiB on, with QEMU's dump-guest-memory.
func dumpGuestMemory(t *testing.T, data, out string) {
	t.Helper()
	cmd := exec.Command("qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "16", "-nodefaults", "-display", "none",
		"-S", "-monitor", "stdio", "-device", "loader,file="+data+",addr=0x100000")
	cmd.Stdin = strings.NewReader("dump-guest-memory " + out + "\nquit\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qemu-system-x86_64: %v\n%s", err, b)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("dump-guest-memory wrote no %s: %v", out, err)
	}
}

// noDisk is a model.Disk that lends nothing and reads nothing.
type noDisk struct{ size int64 }

func (d noDisk) ReadAt(b []byte, off int64) (int, error) { return 0, fmt.Errorf("noDisk") }
func (d noDisk) Size() int64                             { return d.size }
func (d noDisk) Extents(context.Context) iter.Seq2[model.Extent, error] {
	return func(func(model.Extent, error) bool) {}
}

// TestLendableRuns: extents merge into one lent run only where they
// continue each other in the guest, in the same host file and at the next
// host offset; other sources and unmappable files are not lent.
func TestLendableRuns(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, bytes.Repeat([]byte(filepath.Base(f)), 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const k = 4096
	ext := func(off int64, src model.Source, file string, host int64) model.Extent {
		return model.Extent{Offset: off, Length: k, Source: src, File: file, FileOffset: host, FileLength: k}
	}
	for _, c := range []struct {
		name string
		ext  []model.Extent
		want string // runs as [off,end)@file:host
	}{
		{"contiguous", []model.Extent{ext(0, model.SourceData, a, k), ext(k, model.SourceData, a, 2*k)}, "[0,8192)@a:4096"},
		{"host reversed", []model.Extent{ext(0, model.SourceData, a, 2*k), ext(k, model.SourceData, a, k)}, "[0,4096)@a:8192 [4096,8192)@a:4096"},
		{"other file at the next offset", []model.Extent{ext(0, model.SourceData, a, 0), ext(k, model.SourceData, b, k)}, "[0,4096)@a:0 [4096,8192)@b:4096"},
		{"guest gap", []model.Extent{ext(0, model.SourceData, a, 0), ext(2*k, model.SourceData, a, k)}, "[0,4096)@a:0 [8192,12288)@a:4096"},
		{"compressed and derived", []model.Extent{ext(0, model.SourceCompressed, a, 0), ext(k, model.SourceDerived, a, k)}, ""},
		{"past the end of the file", []model.Extent{ext(0, model.SourceData, a, 64<<10)}, ""},
		{"missing file", []model.Extent{ext(0, model.SourceData, filepath.Join(dir, "none"), 0)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms := &mappings{m: map[string][]byte{}}
			defer ms.close()
			v := &viewState{t: &target{img: &model.Image{Format: "qcow2"}}, view: model.View{Disk: noDisk{1 << 20}}, ext: c.ext}
			for _, e := range c.ext {
				v.files = append(v.files, e.File)
			}
			got := ""
			if ld, ok := lendable(v, ms).(lendingDisk); ok {
				for i, r := range ld.runs {
					if i > 0 {
						got += " "
					}
					got += fmt.Sprintf("[%d,%d)@%s:%d", r.off, r.end, filepath.Base(r.file), r.host)
				}
			}
			if got != c.want {
				t.Errorf("runs %q, want %q", got, c.want)
			}
		})
	}
}

// TestRawGuestFileLends: a raw disk stored as a file (6 MiB of random
// bytes, mkfs.ext4 -d) in a mapped raw image lends, for a range inside
// one of its runs, the very bytes the file holds there, and lends most
// ranges, so the test cannot pass by lending nothing. With its runs cut
// in two at an odd offset, a range across the cut is not lent, and those
// on either side still are, rightly.
func TestRawGuestFileLends(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	rng := rand.New(rand.NewPCG(3, 5))
	content := make([]byte, 6<<20)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "disk.raw"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "host.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img, "32M")
	im, err := formats.Open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	v := &viewState{view: im.Views[0]}
	if _, ok := v.view.Disk.(interface {
		Slice(int64, int) ([]byte, bool)
	}); !ok {
		t.Fatal("the raw image is not mapped")
	}
	m, err := guestfs.Analyze(context.Background(), v.view.Disk)
	if err != nil {
		t.Fatal(err)
	}
	gf, err := m.Files(guestfs.WholeDisk).Open("/disk.raw")
	if err != nil {
		t.Fatal(err)
	}
	f, ok := newRawGuestFile(v, m, gf, guestfs.WholeDisk, "/disk.raw")
	if !ok || f.outer == nil || len(f.runs) == 0 {
		t.Fatalf("no runs to lend from: %v, %d runs", ok, len(f.runs))
	}
	lent, n := 0, 0
	for off := int64(0); off < int64(len(content)); off += 64<<10 + 4093 {
		size := int(min(int64(256<<10), int64(len(content))-off))
		n++
		b, ok := f.Slice(off, size)
		if !ok {
			continue
		}
		lent++
		if !bytes.Equal(b, content[off:off+int64(size)]) {
			t.Fatalf("lent %d bytes at %d: not the file's", size, off)
		}
		f.Release(b)
	}
	if lent < n/2 {
		t.Errorf("lent %d of %d ranges", lent, n)
	}
	if _, ok := f.Slice(int64(len(content))-10, 20); ok {
		t.Error("lent past the file's end")
	}
	r := f.runs[0]
	cut := r.FileOff + r.Len/2 + 7
	f.runs = append([]guestfs.GuestRun{{Off: r.Off, Len: cut - r.FileOff, FileOff: r.FileOff}, {Off: r.Off + cut - r.FileOff, Len: r.Len - (cut - r.FileOff), FileOff: cut}}, f.runs[1:]...)
	if _, ok := f.Slice(cut-5, 10); ok {
		t.Error("lent a range across two runs")
	}
	for _, off := range []int64{cut - 4096, cut} {
		if b, ok := f.Slice(off, 4096); !ok || !bytes.Equal(b, content[off:off+4096]) {
			t.Errorf("at %d, beside the cut: lent %v", off, ok)
		}
	}
}
