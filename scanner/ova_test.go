package scanner_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
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
		name   string
		attrs  string
		hrefs  []string // the OVF's disks
		labels []string // the timeline's columns
		parts  func(t *testing.T, work string) []string
	}{
		{"plain", "", []string{"disk1.vmdk"}, []string{"now"}, func(t *testing.T, work string) []string {
			testutil.Run(t, "cp", vmdk, filepath.Join(work, "disk1.vmdk"))
			return []string{"disk1.vmdk"}
		}},
		// Each disk's current state is a column, labelled with its disk.
		{"two disks", "", []string{"disk1.vmdk", "disk2.vmdk"}, []string{"now:disk1.vmdk", "now:disk2.vmdk"}, func(t *testing.T, work string) []string {
			testutil.Run(t, "cp", vmdk, filepath.Join(work, "disk1.vmdk"))
			testutil.Run(t, "cp", vmdk, filepath.Join(work, "disk2.vmdk"))
			return []string{"disk1.vmdk", "disk2.vmdk"}
		}},
		{"gzip chunked", `ovf:compression="gzip" ovf:chunkSize="1000"`, []string{"disk1.vmdk"}, []string{"now"}, func(t *testing.T, work string) []string {
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
			var refs, disks string
			for i, href := range tt.hrefs {
				refs += fmt.Sprintf(`<File ovf:href="%s" ovf:id="file%d" %s/>`, href, i+1, tt.attrs)
				disks += fmt.Sprintf(`<Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`, st.Size(), i+1, i+1)
			}
			ovf := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>%s</References>
  <DiskSection><Info>disks</Info>
    %s
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info><Name>export</Name></VirtualSystem>
</Envelope>
`, refs, disks)
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
			// The .ovf, a file the OVA ships, is no column of its own.
			var labels []string
			for _, tl := range rep.Timelines {
				for _, p := range tl.Points {
					labels = append(labels, p.Label)
				}
			}
			if !slices.Equal(labels, tt.labels) {
				t.Errorf("timeline columns %q, want %q", labels, tt.labels)
			}
			if string(before) != string(testutil.FileSnapshot(t, ova)) {
				t.Fatal("the OVA changed during the scan")
			}
		})
	}
}

// TestTarballEndToEnd: VM disks shipped in tarballs or compressed whole
// scan as disks: a GCE image (disk.raw, a GNU sparse member of a tar.gz),
// a Vagrant libvirt box (a qcow2 in a tar.gz), a Vagrant VirtualBox box
// (an OVF and a streamOptimized VMDK in a tar.gz), a disk.raw.xz and a
// zip of a qcow2. The planted key is found at its path
// in the guest's ext4, live. Read as raw bytes, the disks had been decoded
// only up to the 100:1 expansion cap, and the key was not found at all.
// The key in the libvirt box's Vagrantfile is found in that file's view,
// and its remediation is to repack the archive. Past --max-inflate, the
// run is incomplete.
func TestTarballEndToEnd(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfs.ext4", "ssh-keygen", "tar", "gzip", "xz", "zip")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "root/root/.ssh"), 0o700)
	key := filepath.Join(dir, "root/root/.ssh/id_rsa")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", key)
	want := fp(pemBlock(t, key))
	// A deploy key in the box's Vagrantfile, a file the box ships
	// beside its disk.
	deploy := filepath.Join(dir, "deploy_key")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", deploy)
	wantDeploy := fp(pemBlock(t, deploy))
	testutil.Bash(t, dir, `
{ echo 'Vagrant.configure("2") do |config|'; echo '  config.vm.provision "shell", inline: <<-SHELL'; cat deploy_key; echo '  SHELL'; echo 'end'; } > Vagrantfile
truncate -s 64M disk.raw
mkfs.ext4 -q -d root disk.raw
qemu-img convert -f raw -O qcow2 disk.raw box.img
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw box-disk001.vmdk
echo '{"provider":"libvirt","format":"qcow2"}' > metadata.json
cat > box.ovf <<'OVF'
<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="box-disk001.vmdk" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="67108864" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
</Envelope>
OVF
tar --format=oldgnu -Sczf gce.tar.gz disk.raw
tar czf libvirt.box metadata.json Vagrantfile box.img
tar czf virtualbox.box box.ovf box-disk001.vmdk metadata.json
xz -T1 -c disk.raw > disk.raw.xz
zip -q appliance.zip box.img metadata.json
`)
	for _, c := range []struct{ file, view, format string }{
		{"gce.tar.gz", "gce.tar.gz#current:disk.raw", "tar"},
		{"libvirt.box", "libvirt.box#current:box.img", "tar"},
		{"virtualbox.box", "virtualbox.box#current:box-disk001.vmdk", "tar"},
		{"disk.raw.xz", "disk.raw.xz#current:disk.raw", "compressed"},
		{"appliance.zip", "appliance.zip#current:box.img", "zip"},
	} {
		t.Run(c.file, func(t *testing.T) {
			img := filepath.Join(dir, c.file)
			rep := scanFile(t, scanner.Options{}, img)
			if !rep.Complete || len(rep.Targets) != 1 || rep.Targets[0].Format != c.format {
				t.Fatalf("complete %v, targets %+v", rep.Complete, rep.Targets)
			}
			found := false
			for _, f := range rep.Findings {
				for _, l := range f.Locations {
					if f.Fingerprint == want && l.View == c.view && l.Path == "/root/.ssh/id_rsa" && l.Exposure == "live" {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("planted key not found at its path in %s; findings: %s", c.view, summary(rep))
			}
			if c.file != "libvirt.box" {
				return
			}
			for _, u := range rep.Targets[0].Unattributed {
				if strings.Contains(u, "Vagrantfile") {
					t.Errorf("a file of the archive listed as an unattributed disk: %s", u)
				}
			}
			// The archive's files are no points in time: the VM's one
			// point is its disk's current state, where the deploy key is.
			if len(rep.Timelines) != 1 || len(rep.Timelines[0].Points) != 1 || rep.Timelines[0].Points[0].View != c.view {
				t.Errorf("timelines: %s", describeTimelines(rep))
			} else if rows := rep.Timelines[0].Secrets; !slices.ContainsFunc(rows, func(r report.TimelineRow) bool {
				return r.Fingerprint == wantDeploy && slices.Equal(r.Present, []string{c.view}) && r.Current && len(r.Residue) == 0
			}) {
				t.Errorf("no timeline row puts the Vagrantfile's key in the current state: %s", describeTimelines(rep))
			}
			for _, f := range rep.Findings {
				if f.Fingerprint != wantDeploy {
					continue
				}
				rem := report.Remediate(rep, &f)
				for _, l := range f.Locations {
					if l.View == "libvirt.box#current:Vagrantfile" && l.Exposure == "live" && len(rem) > 0 && strings.Contains(rem[0].Action, "remove it from Vagrantfile in the archive") {
						return
					}
				}
				t.Errorf("the Vagrantfile's key: %+v, remediation %+v", f.Locations, rem)
				return
			}
			t.Errorf("the Vagrantfile's key was not found; findings: %s", summary(rep))
		})
	}
	if rep := scanFile(t, scanner.Options{MaxInflate: 8 << 20}, filepath.Join(dir, "gce.tar.gz")); rep.Complete {
		t.Errorf("a disk cut at --max-inflate left the run complete")
	}
}

// TestZippedVMwareFolder: a suspended VMware Workstation VM, zipped as
// such VMs are shared: its .vmx and .nvram, its disk split in 2 GiB
// extents (qemu-img's twoGbMaxExtentSparse: a descriptor and -s001,
// -s002) with an ext4 holding a private key, and its guest memory (.vmem)
// holding an AES-128 key schedule. The key is found at its path in the
// guest, live, in the descriptor's view (not an extent's); the schedule
// in the memory view; the extents are no views of their own; the VM's
// timeline has its memory point and "now".
func TestZippedVMwareFolder(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfs.ext4", "ssh-keygen", "zip")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "root/root/.ssh"), 0o700)
	key := filepath.Join(dir, "root/root/.ssh/id_rsa")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", key)
	want := fp(pemBlock(t, key))
	mem := make([]byte, 16<<20)
	copy(mem[5<<20:], qemufixture.AES128Schedule([]byte("0123456789abcdef")))
	if err := os.WriteFile(filepath.Join(dir, "vm.vmem"), mem, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, `
truncate -s 2100M d.raw
mkfs.ext4 -q -d root d.raw
qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse d.raw vm.vmdk
rm d.raw
printf '.encoding = "UTF-8"\nscsi0:0.fileName = "vm.vmdk"\n' > vm.vmx
head -c 8K /dev/zero > vm.nvram
zip -q vm.zip vm.vmx vm.nvram vm-s002.vmdk vm-s001.vmdk vm.vmdk vm.vmem
`)
	rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "vm.zip"))
	if !rep.Complete || len(rep.Targets) != 1 || rep.Targets[0].Format != "zip" {
		t.Fatalf("complete %v, targets %+v", rep.Complete, rep.Targets)
	}
	var views []string
	for _, v := range rep.Targets[0].Views {
		views = append(views, v.ID)
		if strings.Contains(v.ID, "-s00") && !strings.Contains(v.ID, "unreferenced") {
			t.Errorf("an extent is a view of its own: %s", v.ID)
		}
	}
	var keyAt, aesAt []string
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			switch {
			case f.Fingerprint == want:
				keyAt = append(keyAt, l.View+" "+l.Path+" "+l.Exposure)
			case f.Rule == "aes-key-schedule":
				aesAt = append(aesAt, l.View)
			}
		}
	}
	if !slices.Contains(keyAt, "vm.zip#current:vm.vmdk /root/.ssh/id_rsa live") {
		t.Errorf("the key: %q; views %q", keyAt, views)
	}
	if !slices.Contains(aesAt, "vm.zip#memory:vm.vmem") {
		t.Errorf("the AES key schedule: %q; views %q", aesAt, views)
	}
	if len(rep.Timelines) != 1 {
		t.Fatalf("timelines: %s", describeTimelines(rep))
	}
	var labels []string
	for _, p := range rep.Timelines[0].Points {
		labels = append(labels, p.Kind)
	}
	if !slices.Equal(labels, []string{"memory", "current"}) {
		t.Errorf("timeline points %q: %s", labels, describeTimelines(rep))
	}
}
