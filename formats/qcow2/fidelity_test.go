package qcow2_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// writeRand writes n pseudo-random bytes (from seed) at off with qemu-io.
func writeRand(t testing.TB, img string, seed uint64, off, n int64) {
	t.Helper()
	p, _ := randFile(t, t.TempDir(), seed, int(n))
	qemuIO(t, img, fmt.Sprintf("write -s %s %d %d", p, off, n))
}

// standardWrites puts data at a few places of an 8 MiB image: cluster
// aligned and not, short and long, and at the very end.
func standardWrites(t testing.TB, img string, seed uint64) {
	writeRand(t, img, seed+1, 0, 100*kib)
	writeRand(t, img, seed+2, mib+512, 70000)
	writeRand(t, img, seed+3, 5*mib, mib)
	writeRand(t, img, seed+4, 8*mib-4*kib, 4*kib)
}

// rawWithData makes a raw file of size bytes with random data in a few
// places and holes elsewhere.
func rawWithData(t testing.TB, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for i, at := range []int64{0, size / 3, size/2 + 12345, size - 300*kib} {
		_, b := randFile(t, t.TempDir(), seed+uint64(i), 200*kib)
		// A run of zeros inside the data, so that compression sees it.
		clear(b[64*kib : 128*kib])
		if _, err := f.WriteAt(b, at); err != nil {
			t.Fatal(err)
		}
	}
}

type fidelityCase struct {
	name string
	// build makes the image in dir and returns its path and the names of
	// the snapshots it has.
	build func(t *testing.T, dir string) (string, []string)
	// check, when set, makes case-specific checks of the opened image.
	check func(t *testing.T, im *model.Image)
}

// hasSource checks that the current view lists an extent of kind s.
func hasSource(s model.Source) func(t *testing.T, im *model.Image) {
	return func(t *testing.T, im *model.Image) {
		cur, _ := im.Current()
		ext, err := model.CollectExtents(context.Background(), cur.Disk)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ext {
			if e.Source == s {
				return
			}
		}
		t.Fatalf("no %v extent in the current view", s)
	}
}

func createQcow2(t testing.TB, img, opts string, size string, extra ...string) {
	t.Helper()
	args := []string{"create", "-q", "-f", "qcow2"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	args = append(args, extra...)
	qemuImg(t, append(args, img, size)...)
}

func simple(opts string, size string) func(t *testing.T, dir string) (string, []string) {
	return func(t *testing.T, dir string) (string, []string) {
		img := filepath.Join(dir, "img.qcow2")
		createQcow2(t, img, opts, size)
		standardWrites(t, img, 10)
		return img, nil
	}
}

func compressed(opts string) func(t *testing.T, dir string) (string, []string) {
	return func(t *testing.T, dir string) (string, []string) {
		src := filepath.Join(dir, "src.raw")
		rawWithData(t, src, 8*mib, 20)
		img := filepath.Join(dir, "img.qcow2")
		qemuImg(t, "convert", "-c", "-O", "qcow2", "-o", opts, src, img)
		// Overwrite part of one compressed cluster and a whole one, so the
		// image mixes compressed and plain clusters.
		writeRand(t, img, 21, 4096, 4096)
		writeRand(t, img, 22, 8*mib/3, 64*kib)
		return img, nil
	}
}

func fidelityCases() []fidelityCase {
	return []fidelityCase{
		{name: "compat-0.10", build: simple("compat=0.10,cluster_size=64k", "8M")},
		{name: "compat-1.1-4k", build: simple("compat=1.1,cluster_size=4k", "8M")},
		{name: "cluster-64k", build: simple("cluster_size=64k", "8M")},
		{name: "cluster-2m", build: simple("cluster_size=2M", "9M")},
		{name: "cluster-512-refcount-1", build: simple("cluster_size=512,refcount_bits=1", "8M")},
		{name: "refcount-64", build: simple("cluster_size=16k,refcount_bits=64", "8M")},
		{name: "zlib", check: hasSource(model.SourceCompressed), build: compressed("cluster_size=64k")},
		{name: "zlib-4k", check: hasSource(model.SourceCompressed), build: compressed("cluster_size=4k")},
		{name: "zstd", check: hasSource(model.SourceCompressed), build: compressed("cluster_size=64k,compression_type=zstd")},
		{name: "zstd-2m", check: hasSource(model.SourceCompressed), build: compressed("cluster_size=2M,compression_type=zstd")},
		{name: "zero-flag", check: hasSource(model.SourceZero), build: func(t *testing.T, dir string) (string, []string) {
			img := filepath.Join(dir, "img.qcow2")
			createQcow2(t, img, "cluster_size=64k", "8M")
			standardWrites(t, img, 30)
			qemuIO(t, img, "write -z 5M 256k", "write -z 6M 64k", "write -z -u 0 64k")
			return img, nil
		}},
		{name: "extended-l2-over-raw", build: func(t *testing.T, dir string) (string, []string) {
			base := filepath.Join(dir, "base.raw")
			rawWithData(t, base, 8*mib, 40)
			img := filepath.Join(dir, "img.qcow2")
			createQcow2(t, img, "extended_l2=on,cluster_size=64k", "8M", "-b", "base.raw", "-F", "raw")
			writeRand(t, img, 41, 8192, 4096)
			writeRand(t, img, 42, 3*64*kib+2048, 2048)
			writeRand(t, img, 43, 5*mib, 200*kib)
			qemuIO(t, img, "write -z 327680 4096", "write -z 2796202 8192")
			return img, nil
		}},
		{name: "chain-raw-qcow2-qcow2", check: func(t *testing.T, im *model.Image) {
			if len(im.Backing) != 2 || im.Backing[0].Name != "mid.qcow2" || im.Backing[1].Format != "raw" {
				t.Fatalf("backing links %+v", im.Backing)
			}
			dir := filepath.Dir(im.Path)
			for _, name := range []string{"mid.qcow2", "base.raw"} {
				v, ok := im.View("top.qcow2#backing:" + name)
				if !ok {
					t.Fatalf("no backing view for %s", name)
				}
				checkView(t, v, convertRaw(t, filepath.Join(dir, name), ""))
			}
		}, build: func(t *testing.T, dir string) (string, []string) {
			base := filepath.Join(dir, "base.raw")
			rawWithData(t, base, 6*mib, 50) // smaller than the top: reads past it are zeros
			mid := filepath.Join(dir, "mid.qcow2")
			createQcow2(t, mid, "compat=0.10,cluster_size=4k", "8M", "-b", "base.raw", "-F", "raw")
			writeRand(t, mid, 51, 100*kib, 300*kib)
			writeRand(t, mid, 52, 7*mib, 64*kib)
			top := filepath.Join(dir, "top.qcow2")
			createQcow2(t, top, "cluster_size=64k", "8M", "-b", "mid.qcow2", "-F", "qcow2")
			writeRand(t, top, 53, 200*kib, 10*kib)
			writeRand(t, top, 54, 4*mib, 128*kib)
			qemuIO(t, top, "write -z 7M 64k")
			return top, nil
		}},
		{name: "data-file", build: func(t *testing.T, dir string) (string, []string) {
			img := filepath.Join(dir, "img.qcow2")
			createQcow2(t, img, "data_file="+filepath.Join(dir, "img.data"), "8M")
			standardWrites(t, img, 60)
			return img, nil
		}},
		{name: "data-file-raw", build: func(t *testing.T, dir string) (string, []string) {
			img := filepath.Join(dir, "img.qcow2")
			createQcow2(t, img, "data_file="+filepath.Join(dir, "img.data")+",data_file_raw=on", "8M")
			standardWrites(t, img, 70)
			return img, nil
		}},
		{name: "three-snapshots", build: func(t *testing.T, dir string) (string, []string) {
			img := filepath.Join(dir, "img.qcow2")
			createQcow2(t, img, "cluster_size=64k", "8M")
			standardWrites(t, img, 80)
			qemuImg(t, "snapshot", "-c", "one", img)
			writeRand(t, img, 81, 0, 64*kib)
			writeRand(t, img, 82, 3*mib, 100*kib)
			qemuImg(t, "snapshot", "-c", "two", img)
			qemuIO(t, img, "write -z 5M 128k", "discard 3M 64k")
			writeRand(t, img, 83, 6*mib, 64*kib)
			qemuImg(t, "snapshot", "-c", "three", img)
			writeRand(t, img, 84, 6*mib, 64*kib)
			return img, []string{"one", "two", "three"}
		}},
	}
}

func TestFidelity(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	for _, tc := range fidelityCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img, snaps := tc.build(t, dir)
			before := sha(t, img)
			im := mustOpen(t, img)
			for _, err := range im.Errors {
				t.Errorf("image error: %v", err)
			}
			cur, ok := im.Current()
			if !ok {
				t.Fatal("no current view")
			}
			checkView(t, cur, convertRaw(t, img, ""))
			if tc.check != nil {
				tc.check(t, im)
			}
			got := viewsOf(im, model.KindSnapshot)
			if len(got) != len(snaps) {
				t.Fatalf("%d snapshot views, want %d", len(got), len(snaps))
			}
			for i, name := range snaps {
				v, ok := im.View(model.ViewID(img, model.KindSnapshot, name))
				if !ok || got[i].Name != name {
					t.Fatalf("no snapshot view %q", name)
				}
				if v.Created.IsZero() || v.Attrs["disk_size"] == "" {
					t.Errorf("snapshot %q: created %v attrs %v", name, v.Created, v.Attrs)
				}
				checkView(t, v, convertRaw(t, img, name))
			}
			// Every other view reads without error.
			for _, v := range im.Views {
				readExtents(t, v.Disk)
			}
			if err := im.Close(); err != nil {
				t.Fatal(err)
			}
			if sha(t, img) != before {
				t.Fatal("image file changed while reading it")
			}
		})
	}
}

// checkView compares a view with what qemu-img reads, through whole-disk
// reads in two block sizes, through its extents alone, and checks that data
// extents point at the right host bytes.
func checkView(t *testing.T, v model.View, want []byte) {
	t.Helper()
	if v.Disk.Size() != int64(len(want)) {
		t.Fatalf("%s: size %d, qemu-img says %d", v.ID, v.Disk.Size(), len(want))
	}
	if got := readDisk(t, v.Disk, mib); !bytes.Equal(got, want) {
		t.Fatalf("%s: 1 MiB reads differ from qemu-img: %s", v.ID, firstDiff(got, want))
	}
	if got := readDisk(t, v.Disk, 3000); !bytes.Equal(got, want) {
		t.Fatalf("%s: 3000-byte reads differ from qemu-img: %s", v.ID, firstDiff(got, want))
	}
	if got := readExtents(t, v.Disk); !bytes.Equal(got, want) {
		t.Fatalf("%s: extents do not cover the data: %s", v.ID, firstDiff(got, want))
	}
	checkHostBytes(t, v.Disk, want)
}

// TestMemoryView saves a VM state with qemu-system-x86_64 (savevm) and
// checks the memory view: its size is the snapshot's vm_state_size and it
// starts with the QEMU migration stream magic.
func TestMemoryView(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-system-x86_64")
	img := filepath.Join(t.TempDir(), "vm.qcow2")
	createQcow2(t, img, "cluster_size=4k", "3M")
	writeRand(t, img, 90, 0, 200*kib)
	cmd := exec.Command("qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
		"-drive", "file="+img+",if=none,id=d0,format=qcow2", "-monitor", "stdio")
	cmd.Stdin = strings.NewReader("savevm withram\nquit\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("savevm: %v\n%s", err, out)
	}
	before := sha(t, img)
	im := mustOpen(t, img)
	mem := viewsOf(im, model.KindMemory)
	snap, ok := im.View(model.ViewID(img, model.KindSnapshot, "withram"))
	if len(mem) != 1 || !ok || mem[0].Name != "withram" {
		t.Fatalf("memory views %v, snapshot found %v", mem, ok)
	}
	if got := strconv.FormatInt(mem[0].Disk.Size(), 10); got == "0" || got != snap.Attrs["vm_state_size"] {
		t.Fatalf("memory view size %s, vm_state_size %s", got, snap.Attrs["vm_state_size"])
	}
	b := readExtents(t, mem[0].Disk)
	if !bytes.HasPrefix(b, []byte("QEVM\x00\x00\x00\x03")) {
		t.Fatalf("memory view does not start with the QEVM magic")
	}
	checkView(t, snap, convertRaw(t, img, "withram"))
	im.Close()
	if sha(t, img) != before {
		t.Fatal("image changed")
	}
}
