package testutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// LVM runs an LVM2 command (args[0]: pvcreate, vgcreate, vgcfgrestore, lvs,
// ...) on the given devices only, without touching /etc/lvm's backups and
// archives, and returns its output. This kernel has no device-mapper:
// LVM2 warns about it and goes on writing metadata, which is what tests
// need (lvcreate fails; vgcfgrestore with LVs written in the text works).
func LVM(t testing.TB, devs []string, args ...string) string {
	t.Helper()
	RequireTool(t, args[0])
	all := append([]string{"--devices", strings.Join(devs, ","), "--config", "backup { backup=0 archive=0 }"}, args[1:]...)
	t.Setenv("LVM_SUPPRESS_FD_WARNINGS", "1")
	return string(Run(t, args[0], all...))
}

// LVText is one entry of a logical_volumes section: an LV with its
// segments (each the body of a segmentN section, see LinearSegment).
func LVText(name, id string, visible bool, segs ...string) string {
	status := `"READ", "WRITE"`
	if visible {
		status += `, "VISIBLE"`
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s {\nid = %q\nstatus = [%s]\nflags = []\nsegment_count = %d\n", name, id, status, len(segs))
	for i, s := range segs {
		fmt.Fprintf(&b, "segment%d {\n%s\n}\n", i+1, s)
	}
	b.WriteString("}\n")
	return b.String()
}

// LinearSegment is a segment of count extents from LV extent start, on
// physical extent pe of PV pv ("pv0").
func LinearSegment(start, count int, pv string, pe int) string {
	return fmt.Sprintf("start_extent = %d\nextent_count = %d\ntype = \"striped\"\nstripe_count = 1\nstripes = [%q, %d]", start, count, pv, pe)
}

// RestoreVG adds lvs (LVText entries) to the vgcfgbackup text in backup,
// sets its seqno, and writes it to the PVs with vgcfgrestore, which writes
// seqno+1: LVM2 writes its on-disk metadata itself.
func RestoreVG(t testing.TB, devs []string, vg, backup string, seqno int, lvs ...string) {
	t.Helper()
	text := regexp.MustCompile(`seqno = \d+`).ReplaceAll(FileSnapshot(t, backup), []byte(fmt.Sprintf("seqno = %d", seqno)))
	i := bytes.LastIndexByte(text, '}')
	withLVs := string(text[:i]) + "logical_volumes {\n" + strings.Join(lvs, "") + "}\n" + string(text[i:])
	f := filepath.Join(t.TempDir(), "restore.txt")
	if err := os.WriteFile(f, []byte(withLVs), 0o644); err != nil {
		t.Fatal(err)
	}
	LVM(t, devs, "vgcfgrestore", "--force", "-f", f, vg)
}

// PEStart is the byte offset of dev's first physical extent, as pvs says.
func PEStart(t testing.TB, devs []string, dev string) int64 {
	t.Helper()
	var n int64
	for _, line := range strings.Split(LVM(t, devs, "pvs", "--noheadings", "--units", "b", "-o", "pe_start", dev), "\n") {
		if v := strings.TrimSuffix(strings.TrimSpace(line), "B"); v != "" {
			fmt.Sscanf(v, "%d", &n)
		}
	}
	if n == 0 {
		t.Fatalf("pvs gave no pe_start for %s", dev)
	}
	return n
}

// SinglePV makes the size bytes of path from off (0: the rest of the
// file) one LVM2 PV of a new VG vg whose logical volumes are lvs (LVText
// entries, their PV named "pv0"), written with vgcfgrestore, and returns
// the PV's first extent's offset in it (pe_start). The file must exist
// and be large enough; the caller writes the LVs' contents.
func SinglePV(t testing.TB, path string, off, size int64, vg string, lvs ...string) int64 {
	t.Helper()
	dev, detach := LoopDevice(t, path, off, size)
	defer detach()
	devs := []string{dev}
	LVM(t, devs, "pvcreate", "-q", dev)
	LVM(t, devs, "vgcreate", "-q", vg, dev)
	backup := filepath.Join(t.TempDir(), "vg.txt")
	LVM(t, devs, "vgcfgbackup", "-f", backup, vg)
	RestoreVG(t, devs, vg, backup, 1, lvs...)
	return PEStart(t, devs, dev)
}
