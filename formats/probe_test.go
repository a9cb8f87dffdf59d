package formats_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestProbe: one probe names every format, says what it holds and how it
// was recognised, for images made by the real tools.
func TestProbe(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "sfdisk", "sgdisk", "mkfs.ext4")
	dir := t.TempDir()
	qemuImg := func(name, format string, opts ...string) string {
		p := filepath.Join(dir, name)
		testutil.Run(t, "qemu-img", append(append([]string{"create", "-q", "-f", format}, opts...), p, "4M")...)
		return p
	}
	rawWith := func(name string, prepare ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, 4<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		if len(prepare) > 0 {
			testutil.Run(t, prepare[0], append(prepare[1:], p)...)
		}
		return p
	}
	mbr := rawWith("mbr.img")
	testutil.Run(t, "sh", "-c", "echo 'start=2048, type=83' | sfdisk -q "+mbr)
	tests := []struct {
		name       string
		path       string
		want       string
		kind       formats.FormatKind
		confidence formats.Confidence
		evidence   string
	}{
		{"qcow2", qemuImg("a.qcow2", "qcow2"), "qcow2", formats.FormatDisk, formats.Magic, ""},
		{"vmdk sparse", qemuImg("a.vmdk", "vmdk"), "vmdk", formats.FormatDisk, formats.Magic, ""},
		{"vmdk descriptor", func() string {
			qemuImg("flat.vmdk", "vmdk", "-o", "subformat=monolithicFlat")
			return filepath.Join(dir, "flat.vmdk")
		}(), "vmdk", formats.FormatDisk, formats.Layout, ""},
		{"vhd dynamic", qemuImg("dyn.vhd", "vpc"), "vpc", formats.FormatDisk, formats.Magic, ""},
		{"vhd fixed", qemuImg("fixed.vhd", "vpc", "-o", "subformat=fixed"), "vpc", formats.FormatDisk, formats.Layout, ""},
		{"vhdx", qemuImg("a.vhdx", "vhdx"), "vhdx", formats.FormatDisk, formats.Magic, ""},
		{"vdi", qemuImg("a.vdi", "vdi"), "vdi", formats.FormatDisk, formats.Magic, ""},
		{"parallels", qemuImg("a.hds", "parallels"), "parallels", formats.FormatDisk, formats.Magic, ""},
		{"qed", qemuImg("a.qed", "qed"), "qed", formats.FormatDisk, formats.Magic, ""},
		{"raw gpt", rawWith("gpt.img", "sgdisk", "-o", "-n", "1:2048:0"), "raw", formats.FormatDisk, formats.Layout, "gpt"},
		{"raw mbr", mbr, "raw", formats.FormatDisk, formats.Layout, "mbr"},
		{"raw ext4", rawWith("fs.img", "mkfs.ext4", "-q", "-F"), "raw", formats.FormatDisk, formats.Layout, "ext4"},
		{"raw zeros", rawWith("zeros.bin"), "raw", formats.FormatDisk, formats.Fallback, ""},
		{"vmem by name", rawWith("guest.vmem"), "vmware-vmem", formats.FormatMemory, formats.ByName, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := formats.ProbeFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tc.want || m.Kind != tc.kind || m.Confidence != tc.confidence || m.Evidence != tc.evidence {
				t.Errorf("Probe = %s/%s/%d/%q, want %s/%s/%d/%q", m.Name, m.Kind, m.Confidence, m.Evidence, tc.want, tc.kind, tc.confidence, tc.evidence)
			}
		})
	}
}

// BenchmarkProbeText probes the head of a small text file, which no
// format claims: what a container layer's scan asks of every file it
// meets (registry's sniffDisk), 200,000 times for a layer of small files.
func BenchmarkProbeText(b *testing.B) {
	head := bytes.Repeat([]byte("a line of a small text file in a layer\n"), 20)
	r := bytes.NewReader(head)
	b.ReportAllocs()
	for b.Loop() {
		if m := formats.Probe(head, r, int64(len(head)), "usr/share/doc/x/README"); m.Name != "raw" {
			b.Fatalf("probed %q", m.Name)
		}
	}
}
