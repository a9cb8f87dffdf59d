// Command mkseeds writes the seed of FuzzReadPV: the first bytes (label,
// metadata area header, metadata texts) of a PV that pvcreate, vgcreate
// and vgcfgrestore wrote on a loop device, with two logical volumes in the
// current metadata and a third in an older copy. It needs root (losetup).
//
//	go run ./testdata/mkseeds testdata/fuzz/FuzzReadPV
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

func run(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LVM_SUPPRESS_FD_WARNINGS=1")
	out, err := cmd.Output()
	if err != nil {
		log.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: mkseeds OUTDIR")
	}
	tmp, err := os.MkdirTemp("", "lvm-seeds")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, "pv.img")
	if err := os.WriteFile(img, make([]byte, 16<<20), 0o644); err != nil {
		log.Fatal(err)
	}
	dev := strings.TrimSpace(run("losetup", "--find", "--show", img))
	defer run("losetup", "-d", dev)
	lvm := func(args ...string) string {
		return run(args[0], append([]string{"--devices", dev, "--config", "backup { backup=0 archive=0 }"}, args[1:]...)...)
	}
	vg := fmt.Sprintf("seedvg%d", os.Getpid())
	lvm("pvcreate", "-q", dev)
	lvm("vgcreate", "-q", "-s", "1m", vg, dev)
	backup := filepath.Join(tmp, "vg.txt")
	lvm("vgcfgbackup", "-f", backup, vg)
	text, err := os.ReadFile(backup)
	if err != nil {
		log.Fatal(err)
	}
	lv := func(name string, seg string) string {
		return fmt.Sprintf("%s {\nid = \"%s-0000-0000-0000-0000-0000-000000\"\nstatus = [\"READ\", \"WRITE\", \"VISIBLE\"]\nflags = []\nsegment_count = 1\nsegment1 {\nstart_extent = 0\n%s\n}\n}\n", name, (name + "000000")[:6], seg)
	}
	root := lv("root", "extent_count = 4\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pv0\", 0]")
	data := lv("data", "extent_count = 2\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pv0\", 4]")
	old := lv("old", "extent_count = 2\ntype = \"striped\"\nstripe_count = 1\nstripes = [\"pv0\", 6]")
	for seq, lvs := range [][]string{{root, data, old}, {root, data}} {
		t := regexp.MustCompile(`seqno = \d+`).ReplaceAll(text, []byte(fmt.Sprintf("seqno = %d", seq+1)))
		i := bytes.LastIndexByte(t, '}')
		t = append(append(append([]byte{}, t[:i]...), "logical_volumes {\n"+strings.Join(lvs, "")+"}\n"...), t[i:]...)
		f := filepath.Join(tmp, "restore.txt")
		if err := os.WriteFile(f, t, 0o644); err != nil {
			log.Fatal(err)
		}
		lvm("vgcfgrestore", "-f", f, vg)
	}
	b := make([]byte, 64<<10)
	f, err := os.Open(img)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil {
		log.Fatal(err)
	}
	b = bytes.TrimRight(b, "\x00")
	// Host-specific text (creation host, time, device paths) is kept:
	// it is what the parser meets.
	if err := fuzzcorpus.Write(os.Args[1], "pv-with-lvs", b); err != nil {
		log.Fatal(err)
	}
}
