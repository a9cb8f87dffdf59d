package scanner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// An OVA built with tar from a streamOptimized VMDK and an OVF, plain and
// gzip-compressed in chunks, scans end to end: the key planted in the
// guest's ext4 is found, with its path.
func TestOVAEndToEnd(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfs.ext4", "ssh-keygen", "tar", "gzip", "split")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc/ssl/private"), 0o755)
	key := filepath.Join(root, "etc/ssl/private/export.key")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", key)
	raw := filepath.Join(dir, "disk.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, raw, "8M")
	vmdk := filepath.Join(dir, "disk1.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
	st, _ := os.Stat(raw)
	want := fp(pemBlock(t, key))

	tests := []struct {
		name  string
		attrs string
		parts func(t *testing.T, work string) []string
	}{
		{"plain", "", func(t *testing.T, work string) []string {
			testutil.Run(t, "cp", vmdk, filepath.Join(work, "disk1.vmdk"))
			return []string{"disk1.vmdk"}
		}},
		{"gzip chunked", `ovf:compression="gzip" ovf:chunkSize="1000"`, func(t *testing.T, work string) []string {
			testutil.Run(t, "cp", vmdk, filepath.Join(work, "disk1.vmdk"))
			testutil.Run(t, "gzip", filepath.Join(work, "disk1.vmdk"))
			testutil.Run(t, "split", "-b", "1000", "-d", "-a", "9", filepath.Join(work, "disk1.vmdk.gz"), filepath.Join(work, "disk1.vmdk."))
			os.Remove(filepath.Join(work, "disk1.vmdk.gz"))
			m, _ := filepath.Glob(filepath.Join(work, "disk1.vmdk.0*"))
			sort.Strings(m)
			var names []string
			for _, p := range m {
				names = append(names, filepath.Base(p))
			}
			if len(names) < 2 {
				t.Fatalf("want several chunks, got %v", names)
			}
			return names
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			work := t.TempDir()
			members := tt.parts(t, work)
			ovf := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="disk1.vmdk" ovf:id="file1" %s/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info><Name>export</Name></VirtualSystem>
</Envelope>
`, tt.attrs, st.Size())
			os.WriteFile(filepath.Join(work, "export.ovf"), []byte(ovf), 0o644)
			ova := filepath.Join(t.TempDir(), "export.ova")
			testutil.Run(t, "tar", append([]string{"--format=ustar", "-cf", ova, "-C", work, "export.ovf"}, members...)...)
			before := testutil.FileSnapshot(t, ova)

			rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{ova})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Targets) != 1 || rep.Targets[0].Format != "ova" || len(rep.Targets[0].Errors) > 0 {
				t.Fatalf("targets: %+v", rep.Targets)
			}
			found := false
			for _, f := range rep.Findings {
				for _, l := range f.Locations {
					if f.Fingerprint == want && l.Path == "/etc/ssl/private/export.key" && l.Exposure == "live" {
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("planted key not found with its path; findings: %s", summary(rep))
			}
			if string(before) != string(testutil.FileSnapshot(t, ova)) {
				t.Fatal("the OVA changed during the scan")
			}
		})
	}
}
