package scanner_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// End-to-end tests of scanning a store: each test lays out a libvirt,
// Proxmox or VMware store in a temp dir with real images (mkfs.ext4 -d,
// debugfs, qemu-img, qemu-io), a real QEMU migration stream and
// handwritten configuration in the products' formats, scans the directory
// and checks that every planted secret is reported for the right VM, at
// the right points of its timeline, with the right exposure.

// The base image's root filesystem: a host key and machine-id every clone
// keeps, and some data so that the base outweighs the overlays.
func baseRoot(t *testing.T, machineID string) (root, hostKey string) {
	t.Helper()
	keys := t.TempDir()
	hostKey = sshKey(t, keys, "host", "ed25519", "root@base", false)
	root = filepath.Join(t.TempDir(), "root")
	mkdirs(t, root, "etc/ssh", "etc/ssl/private", "home/alice/.aws", "root/.ssh", "usr/lib", "var/log")
	filler := make([]byte, 2<<20)
	if _, err := rand.Read(filler); err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, map[string][]byte{
		"etc/ssh/ssh_host_ed25519_key":     testutil.FileSnapshot(t, hostKey),
		"etc/ssh/ssh_host_ed25519_key.pub": testutil.FileSnapshot(t, hostKey+".pub"),
		"etc/machine-id":                   []byte(machineID + "\n"),
		"etc/hostname":                     []byte("base\n"),
		"usr/lib/filler.bin":               filler,
	})
	return root, hostKey
}

func machineIDFP(id string) string {
	s := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(s[:])
}

const (
	uuidWeb01 = "6f1c1b2e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
	uuidWeb02 = "7a2d2c3f-3b4c-4d6e-9fa0-1b2c3d4e5f60"
)

// libvirtDomain is a domain XML as `virsh dumpxml --inactive` writes it to
// /etc/libvirt/qemu/<name>.xml (the parts that matter here).
func libvirtDomain(name, uuid, disk string, backing ...string) string {
	var chain strings.Builder
	for _, b := range backing {
		fmt.Fprintf(&chain, "      <backingStore type='file'>\n        <format type='qcow2'/>\n        <source file='%s'/>\n", b)
	}
	for range backing {
		chain.WriteString("      </backingStore>\n")
	}
	return fmt.Sprintf(`<domain type='kvm'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='KiB'>16384</memory>
  <currentMemory unit='KiB'>16384</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-i440fx-8.2'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/>
%s      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`, name, uuid, disk, chain.String())
}

// libvirtStore is what buildLibvirtStore planted.
type libvirtStore struct {
	dir                       string
	hostKeyFP, machineID      string
	awsFP, web02KeyFP, saveFP string
	saveAddr                  int64
	snapTime, saveTime        time.Time
}

// buildLibvirtStore lays out /var/lib/libvirt with two VMs cloned from one
// base image:
//
//	images/base.qcow2              ext4: host key, machine-id
//	images/web01.qcow2             web01's disk until snapshot pre-rotate:
//	                               alice's AWS credentials written
//	images/web01.pre-rotate        external snapshot overlay: the
//	                               credentials shredded
//	images/web02.qcow2             web02: root's ECDSA key written
//	qemu/web01.xml, qemu/web02.xml domain definitions
//	qemu/snapshot/web01/pre-rotate.xml
//	qemu/save/web02.save           managed save: RAM holding a PEM key
func buildLibvirtStore(t *testing.T, dir string) *libvirtStore {
	t.Helper()
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "ssh-keygen")
	const machineID = "4c6f1a2b3c4d5e6f708192a3b4c5d6e7"
	root, hostKey := baseRoot(t, machineID)
	keys := t.TempDir()
	userKey := sshKey(t, keys, "web02_user", "ecdsa", "root@web02", true)
	saveKey := sshKey(t, keys, "save", "ecdsa", "svc@web02", true)
	aws, awsSecret := awsCredentials(t)
	s := &libvirtStore{
		dir: dir, hostKeyFP: fp(pemBlock(t, hostKey)), machineID: machineID,
		awsFP: fp([]byte(awsSecret)), web02KeyFP: fp(pemBlock(t, userKey)), saveFP: fp(pemBlock(t, saveKey)),
		saveAddr: 0x7000,
		snapTime: time.Date(2026, 10, 12, 9, 30, 0, 0, time.UTC),
		saveTime: time.Date(2026, 10, 20, 18, 0, 0, 0, time.UTC),
	}
	images := filepath.Join(dir, "images")
	mkdirs(t, dir, "images", "qemu/snapshot/web01", "qemu/save")
	img := func(n string) string { return filepath.Join(images, n) }

	base := newGuestFS(t, root, 12)
	testutil.Run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", base.img, img("base.qcow2"))

	web01 := base.clone()
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", img("web01.qcow2"))
	web01.write("/home/alice/.aws/credentials", aws)
	web01.syncTo(img("web01.qcow2"), "qcow2")
	// virsh snapshot-create-as web01 pre-rotate --disk-only: a new overlay
	// takes the writes; web01.qcow2 keeps the state at the snapshot.
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "web01.qcow2", img("web01.pre-rotate"))
	web01.shred("/home/alice/.aws/credentials")
	web01.syncTo(img("web01.pre-rotate"), "qcow2")

	web02 := base.clone()
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", img("web02.qcow2"))
	web02.write("/root/.ssh/id_ecdsa", testutil.FileSnapshot(t, userKey))
	web02.syncTo(img("web02.qcow2"), "qcow2")

	const lv = "/var/lib/libvirt/images/"
	web02XML := libvirtDomain("web02", uuidWeb02, lv+"web02.qcow2", lv+"base.qcow2")
	stream := vmatest.CaptureMigration(t, t.TempDir(), 16, []vmatest.Plant{{Addr: s.saveAddr, Data: testutil.FileSnapshot(t, saveKey)}})
	save := filepath.Join(dir, "qemu/save/web02.save")
	libvirtSave(t, save, web02XML, stream)
	if err := os.Chtimes(save, s.saveTime, s.saveTime); err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string][]byte{
		"qemu/web01.xml": []byte(libvirtDomain("web01", uuidWeb01, lv+"web01.pre-rotate", lv+"web01.qcow2", lv+"base.qcow2")),
		"qemu/web02.xml": []byte(web02XML),
		"qemu/snapshot/web01/pre-rotate.xml": fmt.Appendf(nil, `<domainsnapshot>
  <name>pre-rotate</name>
  <description>before rotating alice's credentials</description>
  <state>disk-snapshot</state>
  <creationTime>%d</creationTime>
  <memory snapshot='no'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'>
      <driver type='qcow2'/>
      <source file='%s'/>
    </disk>
  </disks>
%s</domainsnapshot>
`, s.snapTime.Unix(), lv+"web01.pre-rotate", libvirtDomain("web01", uuidWeb01, lv+"web01.qcow2", lv+"base.qcow2")),
	})
	return s
}

func scanDir(t *testing.T, opts scanner.Options, targets ...string) *report.Report {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = newEngine(t)
	}
	rep, err := scanner.New(opts).Scan(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete {
		t.Fatalf("report incomplete: %s", rep.IncompleteReason)
	}
	return rep
}

// checkTargetErrors checks that every target was read without error.
func checkTargetErrors(t *testing.T, rep *report.Report) {
	t.Helper()
	t.Run("no target errors", func(t *testing.T) {
		var known []string
		for _, tg := range rep.Targets {
			for _, e := range tg.Errors {
				if strings.EqualFold(filepath.Ext(tg.Path), ".vmsn") && strings.Contains(e, "memory file: open") {
					known = append(known, filepath.Base(tg.Path))
					continue
				}
				t.Errorf("target %s: %s", tg.Path, e)
			}
		}
		if len(known) > 0 {
			// A powered-off snapshot's state file (no "memory" group, no
			// .vmem beside it) holds no RAM: that is not an error.
			t.Errorf("powered-off snapshot state files failed to open: %q", known)
		}
	})
}

// wantSecret is one planted secret and where the report must place it.
type wantSecret struct {
	name     string
	fp       string
	vm       string   // every location is in a target of this VM
	exposure []string // the finding's exposure set, exactly
	view     string   // a location in this view...
	path     string   // ...at this guest path ("" = not checked)
	offset   int64    // ...at this offset (-1 = not checked)
	// present are the timeline points (labels, in time order) holding the
	// secret; current says whether "now" is one of them.
	present []string
	current bool
}

// checkSecrets checks each planted secret against the report.
func checkSecrets(t *testing.T, rep *report.Report, wants []wantSecret) {
	t.Helper()
	vmOf := map[string]string{}
	for _, tl := range rep.Timelines {
		for _, tg := range tl.Targets {
			vmOf[tg] = tl.VM
		}
	}
	for _, w := range wants {
		t.Run(w.name, func(t *testing.T) {
			f := findingByFP(rep, w.fp)
			if f == nil {
				t.Fatalf("not found (fingerprint %s); findings: %s", w.fp, summary(rep))
			}
			if !reflect.DeepEqual(f.Exposure, w.exposure) {
				t.Errorf("exposure %v, want %v; locations %+v", f.Exposure, w.exposure, f.Locations)
			}
			if outside := slices.ContainsFunc(w.exposure, func(e string) bool { return e != report.ExposureLive }); f.OutsideGuestControl != outside {
				t.Errorf("outside_guest_control = %v for exposure %v", f.OutsideGuestControl, f.Exposure)
			}
			found := false
			for _, l := range f.Locations {
				if vm := vmOf[l.Target]; vm != w.vm {
					t.Errorf("location in %s (%s) belongs to VM %q, want %q", l.View, l.Target, vm, w.vm)
				}
				if l.View == w.view && (w.path == "" || l.Path == w.path) && (w.offset < 0 || l.Offset == w.offset) {
					found = true
				}
			}
			if !found {
				t.Errorf("no location in %s at path %q offset %#x: %+v", w.view, w.path, w.offset, f.Locations)
			}
			tl := timelineOf(rep, w.vm)
			if tl == nil {
				t.Fatalf("no timeline for VM %s:%s", w.vm, describeTimelines(rep))
			}
			row := rowOf(tl, w.fp)
			if row == nil {
				t.Fatalf("not on VM %s's timeline:%s", w.vm, describeTimelines(rep))
			}
			var labels []string
			for _, v := range row.Present {
				if p := pointOf(tl, v); p != nil {
					labels = append(labels, p.Label)
				}
			}
			if !slices.Equal(labels, w.present) || row.Current != w.current {
				t.Errorf("present at %q (current %v), want %q (current %v):%s", labels, row.Current, w.present, w.current, describeTimelines(rep))
			}
			if row.First != row.Present[0] || row.Last != row.Present[len(row.Present)-1] {
				t.Errorf("span %s..%s does not match %v", row.First, row.Last, row.Present)
			}
			for _, other := range rep.Timelines {
				if other.VM != w.vm && rowOf(&other, w.fp) != nil {
					t.Errorf("also on the timeline of VM %s", other.VM)
				}
			}
		})
	}
}

// checkOneNow checks that each VM's timeline has one "now" column: the
// current state of its disks, not of its configuration or log files.
func checkOneNow(t *testing.T, rep *report.Report) {
	t.Helper()
	t.Run("one now per VM", func(t *testing.T) {
		var extra []string
		for _, tl := range rep.Timelines {
			var now []string
			for _, p := range tl.Points {
				if p.Kind == "current" {
					now = append(now, p.View)
				}
			}
			if len(now) > 1 {
				extra = append(extra, fmt.Sprintf("VM %s: %q", tl.VM, now))
			}
		}
		if len(extra) > 0 {
			// A VM's configuration file is scanned but is no point in time.
			t.Errorf("more than one \"now\" point: %s", strings.Join(extra, "; "))
		}
	})
}

// TestStoreLibvirt scans a libvirt store: two VMs cloned from one base, an
// external snapshot chain, a managed save.
func TestStoreLibvirt(t *testing.T) {
	dir := t.TempDir()
	if keep := os.Getenv("IMGAUDIT_KEEP_STORE"); keep != "" {
		// For regenerating the README's example output: the layout is
		// left in $IMGAUDIT_KEEP_STORE (which must be empty or absent).
		dir = keep
	}
	s := buildLibvirtStore(t, dir)
	before := treeSums(t, dir)
	rep := scanDir(t, scanner.Options{}, dir)
	if after := treeSums(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("the scan changed files of the store")
	}
	t.Log(describeTimelines(rep))
	checkTargetErrors(t, rep)
	images := func(n string) string { return filepath.Join(dir, "images", n) }
	save := filepath.Join(dir, "qemu/save/web02.save")

	t.Run("targets", func(t *testing.T) {
		var got []string
		for _, tg := range rep.Targets {
			got = append(got, strings.TrimPrefix(tg.Path, dir+"/"))
		}
		// The base and web01.qcow2 are read as backing files only.
		// The snapshot XML, which discovery reads, is scanned as plain
		// data like the domain XMLs (it holds a whole domain XML).
		want := []string{"images/web01.pre-rotate", "qemu/web01.xml", "qemu/snapshot/web01/pre-rotate.xml", "images/web02.qcow2", "qemu/save/web02.save", "qemu/web02.xml"}
		if !slices.Equal(got, want) {
			t.Errorf("targets %q, want %q", got, want)
		}
		if len(rep.Skipped) != 0 {
			t.Errorf("store files left unread: %+v", rep.Skipped)
		}
		for vm, want := range map[string][]string{
			"web01": {images("web01.pre-rotate"), filepath.Join(dir, "qemu/web01.xml"), filepath.Join(dir, "qemu/snapshot/web01/pre-rotate.xml")},
			"web02": {images("web02.qcow2"), save, filepath.Join(dir, "qemu/web02.xml")},
		} {
			if tl := timelineOf(rep, vm); tl == nil || !slices.Equal(tl.Targets, want) {
				t.Errorf("VM %s: timeline %+v, want targets %q", vm, tl, want)
			}
		}
	})

	t.Run("timeline points", func(t *testing.T) {
		for vm, want := range map[string][]string{
			"web01": {"backing:base.qcow2", "snapshot:pre-rotate@" + s.snapTime.Format(time.RFC3339), "current:now"},
			"web02": {"backing:base.qcow2", "memory:mem:save@" + s.saveTime.Format(time.RFC3339), "current:now"},
		} {
			tl := timelineOf(rep, vm)
			if tl == nil {
				t.Fatalf("no timeline for %s", vm)
			}
			var got []string
			for _, p := range tl.Points {
				if p.Target != images("web01.pre-rotate") && p.Target != images("web02.qcow2") && p.Target != save {
					continue // the domain XML, scanned as a file
				}
				if p.Kind == "memory" && p.View != "web02.save#memory" {
					continue // the stream's other RAM blocks (BIOS, ROM)
				}
				s := p.Kind + ":" + p.Label
				if p.Time != nil {
					s += "@" + p.Time.Format(time.RFC3339)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, want) {
				t.Errorf("VM %s points %q, want %q:%s", vm, got, want, describeTimelines(rep))
			}
		}
	})

	checkOneNow(t, rep)

	t.Run("secrets", func(t *testing.T) {
		checkSecrets(t, rep, []wantSecret{
			// Written before snapshot pre-rotate, shredded after it: only the
			// snapshot's file, web01.qcow2 (now a backing file), keeps it.
			{name: "credentials kept by the external snapshot", fp: s.awsFP, vm: "web01",
				exposure: []string{report.ExposureSnapshot},
				view:     "web01.pre-rotate#backing:web01.qcow2", path: "/home/alice/.aws/credentials", offset: -1,
				present: []string{"pre-rotate"}},
			{name: "web02's own key", fp: s.web02KeyFP, vm: "web02", exposure: []string{report.ExposureLive},
				view: "web02.qcow2#current", path: "/root/.ssh/id_ecdsa", offset: -1,
				present: []string{"now"}, current: true},
			{name: "key in the managed save's RAM", fp: s.saveFP, vm: "web02", exposure: []string{report.ExposureMemory},
				view: "web02.save#memory", offset: s.saveAddr,
				present: []string{"mem:save"}},
		})
	})

	t.Run("shared identity", func(t *testing.T) {
		hk := findingByFP(rep, s.hostKeyFP)
		if hk == nil {
			t.Fatalf("host key not found: %s", summary(rep))
		}
		vms := map[string]bool{}
		for _, l := range hk.Locations {
			if l.Path != "/etc/ssh/ssh_host_ed25519_key" {
				t.Errorf("host key location at %q in %s", l.Path, l.View)
			}
			switch l.Target {
			case images("web01.pre-rotate"):
				vms["web01"] = true
			case images("web02.qcow2"):
				vms["web02"] = true
			}
		}
		if len(vms) != 2 {
			t.Errorf("host key located in VMs %v, want both", vms)
		}
		// In the base, so at every point of each VM's disk.
		for vm, want := range map[string][]string{
			"web01": {"web01.pre-rotate#backing:base.qcow2", "web01.pre-rotate#backing:web01.qcow2", "web01.pre-rotate#current"},
			"web02": {"web02.qcow2#backing:base.qcow2", "web02.qcow2#current"},
		} {
			if row := rowOf(timelineOf(rep, vm), s.hostKeyFP); row == nil || !row.Current || !slices.Equal(row.Present, want) {
				t.Errorf("VM %s: host key row %+v, want it at %q", vm, row, want)
			}
		}
		shared := map[string]report.SharedIdentity{}
		for _, si := range rep.SharedIdentity {
			shared[si.Kind] = si
		}
		if si := shared["ssh-host-key"]; si.Fingerprint != s.hostKeyFP || !slices.Equal(si.VMs, []string{"web01", "web02"}) ||
			!slices.Equal(si.Paths, []string{"/etc/ssh/ssh_host_ed25519_key"}) {
			t.Errorf("shared ssh-host-key %+v, want %s in [web01 web02]", si, s.hostKeyFP)
		}
		if si := shared["machine-id"]; si.Fingerprint != machineIDFP(s.machineID) || !slices.Equal(si.VMs, []string{"web01", "web02"}) {
			t.Errorf("shared machine-id %+v, want %s in [web01 web02]", si, machineIDFP(s.machineID))
		}
		if len(rep.SharedIdentity) != 2 {
			t.Errorf("shared identity %+v, want the host key and the machine-id only", rep.SharedIdentity)
		}
		clones := map[string]report.Finding{}
		for _, f := range rep.Findings {
			if f.Category == report.CategoryClonedIdentity {
				clones[f.Metadata["identity_kind"]] = f
			}
		}
		for kind, wantFP := range map[string]string{"ssh-host-key": s.hostKeyFP, "machine-id": machineIDFP(s.machineID)} {
			f, ok := clones[kind]
			if !ok || f.Fingerprint != wantFP || f.Metadata["vms"] != "web01,web02" {
				t.Errorf("cloned-identity finding for %s: %+v", kind, f)
			}
		}
		if len(clones) != 2 {
			t.Errorf("cloned-identity findings %v, want 2", clones)
		}
	})

	// Each backing file is read once: the whole store costs little more
	// than one of its VMs, although base.qcow2 is under both.
	t.Run("backing read once", func(t *testing.T) {
		disk := func(r *report.Report) (scanned int64) {
			for _, tg := range r.Targets {
				for _, v := range tg.Views {
					if v.Kind != "memory" {
						scanned += v.ScannedBytes
					}
				}
			}
			return scanned
		}
		one := scanDir(t, scanner.Options{}, images("web01.pre-rotate"))
		naive := scanDir(t, scanner.Options{NoDedupe: true}, dir)
		checkTargetErrors(t, one)
		store, alone, every := disk(rep), disk(one), disk(naive)
		t.Logf("disk bytes scanned: store %d, web01 alone %d (ratio %.2f), store with every view in full %d", store, alone, float64(store)/float64(alone), every)
		if alone < 2<<20 {
			t.Fatalf("web01 alone scanned %d bytes: the base's 2 MiB were not read", alone)
		}
		if float64(store) >= 1.5*float64(alone) {
			t.Errorf("store cost %d bytes, web01 alone %d: base.qcow2 was read again for web02", store, alone)
		}
		if every < 3*alone {
			t.Errorf("every view in full is only %d bytes: the layout does not exercise sharing", every)
		}
		// The bytes of web02's disk views beyond its own overlay: none
		// of base.qcow2 is read again.
		for _, tg := range rep.Targets {
			if tg.Path != images("web02.qcow2") {
				continue
			}
			var n int64
			for _, v := range tg.Views {
				n += v.ScannedBytes
			}
			if st, err := os.Stat(images("web02.qcow2")); err != nil || n > st.Size() {
				t.Errorf("web02's views scanned %d bytes, more than its overlay holds", n)
			}
		}
		// Per host file: base.qcow2 is planned for scanning once in the
		// store scan, as when web01 is scanned alone, plus at most the
		// overlap margins where web02's own clusters border it.
		base := func(r *report.Report) int64 {
			for f, n := range r.Summary.ScannedBytesByFile {
				if filepath.Base(f) == "base.qcow2" {
					return n
				}
			}
			return 0
		}
		t.Logf("base.qcow2 bytes planned: store %d, web01 alone %d", base(rep), base(one))
		if base(one) == 0 || float64(base(rep)) > 1.1*float64(base(one)) {
			t.Errorf("base.qcow2 planned %d bytes in the store scan, %d with web01 alone: read more than once", base(rep), base(one))
		}
	})
}

// TestStoreProxmox scans a Proxmox storage: a VM whose current disk no
// longer has a key that its vzdump backup (a .vma.zst) still holds.
func TestStoreProxmox(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfs.ext4", "debugfs", "ssh-keygen", "zstd")
	dir := t.TempDir()
	root, hostKey := baseRoot(t, "0d5be1c7a2f34e0b9c6d7e8f90a1b2c3")
	userKey := sshKey(t, t.TempDir(), "deploy", "ed25519", "deploy@db01", false)
	guest := newGuestFS(t, root, 12)
	guest.write("/root/.ssh/id_ed25519", testutil.FileSnapshot(t, userKey))
	atBackup := guest.bytes()
	// After the nightly backup the key was shredded; the disk as it is now
	// has no copy left.
	guest.shred("/root/.ssh/id_ed25519")
	mkdirs(t, dir, "images/100", "dump", "qemu-server")
	disk := filepath.Join(dir, "images/100/vm-100-disk-0.qcow2")
	testutil.Run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", guest.img, disk)

	conf := `boot: order=scsi0
cores: 2
memory: 2048
meta: creation-qemu=8.1.5,ctime=1790000000
name: db01
net0: virtio=BC:24:11:2A:3B:4C,bridge=vmbr0
ostype: l26
scsi0: local:100/vm-100-disk-0.qcow2,size=12M
scsihw: virtio-scsi-single
smbios1: uuid=0f9d6c1e-8a7b-4c3d-9e2f-1a2b3c4d5e6f
vmgenid: 3e8c1f0a-5b6d-4e7f-8a9b-0c1d2e3f4a5b
`
	backupTime := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	vma := filepath.Join(dir, "dump/vzdump-qemu-100-2026_11_01-02_00_00.vma")
	err := vmatest.WriteFile(vma, vmatest.Archive{
		UUID: [16]byte{0x5c, 0x1e, 0x2a, 0x3b, 0x4c, 0x5d, 0x4e, 0x6f, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5, 0xe6, 0xf7}, CTime: backupTime,
		Configs: []vmatest.ConfigFile{{Name: "qemu-server.conf", Data: []byte(conf)}},
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: atBackup}},
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "zstd", "-q", "--rm", vma, "-o", vma+".zst")
	writeTree(t, dir, map[string][]byte{
		"qemu-server/100.conf":                         []byte(conf),
		"dump/vzdump-qemu-100-2026_11_01-02_00_00.log": []byte("INFO: starting new backup job: vzdump 100 --mode snapshot --compress zstd\n"),
	})

	before := treeSums(t, dir)
	rep := scanDir(t, scanner.Options{}, dir)
	if after := treeSums(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("the scan changed files of the store")
	}
	t.Log(describeTimelines(rep))
	checkTargetErrors(t, rep)

	backup := "vzdump-qemu-100-2026_11_01-02_00_00.vma.zst#backing:backup 2026-11-01T02:00:00Z drive-scsi0"
	tl := timelineOf(rep, "db01")
	if tl == nil {
		t.Fatalf("no timeline for VM db01:%s", describeTimelines(rep))
	}
	// The VM groups its disk, its backup and its configuration.
	if want := []string{disk, vma + ".zst", filepath.Join(dir, "qemu-server/100.conf")}; !slices.Equal(tl.Targets, want) {
		t.Errorf("VM db01 targets %q, want %q", tl.Targets, want)
	}
	p := pointOf(tl, backup)
	if p == nil || p.Kind != "backup" || p.Time == nil || !p.Time.Equal(backupTime) || p.Target != vma+".zst" {
		t.Errorf("backup point %+v, want kind backup at %s:%s", p, backupTime, describeTimelines(rep))
	}
	var order []string
	for _, p := range tl.Points {
		if p.Target == disk || p.Target == vma+".zst" {
			order = append(order, p.Kind+":"+p.Label)
		}
	}
	if want := []string{"backup:config:qemu-server.conf", "backup:" + p.Label, "current:now"}; !slices.Equal(order, want) {
		t.Errorf("points %q, want %q", order, want)
	}
	checkOneNow(t, rep)
	checkSecrets(t, rep, []wantSecret{
		{name: "key only in the backup", fp: fp(pemBlock(t, userKey)), vm: "db01", exposure: []string{report.ExposureBacking},
			view: backup, path: "/root/.ssh/id_ed25519", offset: -1,
			present: []string{p.Label}},
		{name: "host key in the backup and now", fp: fp(pemBlock(t, hostKey)), vm: "db01",
			exposure: []string{report.ExposureBacking, report.ExposureLive},
			view:     "vm-100-disk-0.qcow2#current", path: "/etc/ssh/ssh_host_ed25519_key", offset: -1,
			present: []string{p.Label, "now"}, current: true},
	})
}

// vmsnStub is the header of a powered-off snapshot's .vmsn (magic
// 0xbed2bed2, version 8, one group that is not "memory"): no RAM.
func vmsnStub() []byte {
	b := make([]byte, 12+80)
	copy(b, []byte{0xd2, 0xbe, 0xd2, 0xbe, 8, 0, 0, 0, 1, 0, 0, 0})
	copy(b[12:], "Snapshot")
	b[12+64] = byte(len(b))
	return append(b, 0, 0)
}

// TestStoreVMware scans a VMware VM folder: a base disk and two delta disks
// linked through the .vmsd's two snapshots, and the running VM's .vmem.
func TestStoreVMware(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "ssh-keygen")
	dir := t.TempDir()
	vmdir := filepath.Join(dir, "web01")
	f := func(n string) string { return filepath.Join(vmdir, n) }
	root, hostKey := baseRoot(t, "9a8b7c6d5e4f30211203f4e5d6c7b8a9")
	keys := t.TempDir()
	installer := sshKey(t, keys, "installer", "ed25519", "installer@web01", false)
	memKey := sshKey(t, keys, "mem", "ecdsa", "app@web01", true)
	aws, awsSecret := awsCredentials(t)
	t1 := time.Date(2026, 9, 1, 10, 0, 0, 250000000, time.UTC)
	t2 := time.Date(2026, 9, 15, 16, 45, 0, 0, time.UTC)
	t3 := time.Date(2026, 10, 3, 8, 0, 0, 0, time.UTC)

	// Snapshot "clean install" froze web01.vmdk with the installer's key.
	guest := newGuestFS(t, root, 12)
	guest.write("/root/.ssh/id_installer", testutil.FileSnapshot(t, installer))
	guest.prev = guest.bytes()
	mkdirs(t, dir, "web01")
	testutil.Run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", guest.img, f("web01.vmdk"))
	// Then the installer key went and alice's credentials came; snapshot
	// "with app" froze web01-000001.vmdk.
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-F", "vmdk", "-b", "web01.vmdk", f("web01-000001.vmdk"))
	guest.shred("/root/.ssh/id_installer")
	guest.write("/home/alice/.aws/credentials", aws)
	guest.syncTo(f("web01-000001.vmdk"), "vmdk")
	// Since then the credentials were shredded in the running disk.
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-F", "vmdk", "-b", "web01-000001.vmdk", f("web01-000002.vmdk"))
	guest.shred("/home/alice/.aws/credentials")
	guest.syncTo(f("web01-000002.vmdk"), "vmdk")

	// The running VM's RAM: 8 MiB, guest-physical from 0, a key in it.
	const memOff = 0x2a1040
	vmem := make([]byte, 8<<20)
	copy(vmem[0x1000:], "Linux version 6.8.0-45-generic")
	copy(vmem[memOff:], testutil.FileSnapshot(t, memKey))
	writeTree(t, vmdir, map[string][]byte{
		"web01-5a3c2b1d.vmem":  vmem,
		"web01-Snapshot1.vmsn": vmsnStub(),
		"web01-Snapshot2.vmsn": vmsnStub(),
		"web01.vmx": []byte(`.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "web01"
guestOS = "ubuntu-64"
uuid.bios = "56 4d 9a 3b 2c 1d 0e 5f-6a 7b 8c 9d ae bf c0 d1"
memSize = "8"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "web01-000002.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.addressType = "generated"
nvram = "web01.nvram"
`),
		"web01.vmsd": testutil.TwoSnapshotVMSD(t1, t2, "OS installed, installer key present"),
	})
	if err := os.Chtimes(f("web01-5a3c2b1d.vmem"), t3, t3); err != nil {
		t.Fatal(err)
	}

	before := treeSums(t, dir)
	rep := scanDir(t, scanner.Options{}, dir)
	if after := treeSums(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("the scan changed files of the folder")
	}
	t.Log(describeTimelines(rep))
	checkTargetErrors(t, rep)
	tl := timelineOf(rep, "web01")
	if tl == nil {
		t.Fatalf("no timeline for VM web01:%s", describeTimelines(rep))
	}
	var got []string
	for _, p := range tl.Points {
		if p.Target != f("web01-000002.vmdk") && p.Target != f("web01-5a3c2b1d.vmem") {
			continue
		}
		s := p.Kind + ":" + p.Label
		if p.Time != nil {
			s += "@" + p.Time.Format(time.RFC3339Nano)
		}
		got = append(got, s)
	}
	want := []string{"snapshot:clean install@" + t1.Format(time.RFC3339Nano), "snapshot:with app@" + t2.Format(time.RFC3339Nano),
		"memory:mem:save@" + t3.Format(time.RFC3339Nano), "current:now"}
	if !slices.Equal(got, want) {
		t.Errorf("points %q, want %q", got, want)
	}
	checkOneNow(t, rep)
	checkSecrets(t, rep, []wantSecret{
		{name: "installer key kept by the first snapshot", fp: fp(pemBlock(t, installer)), vm: "web01",
			exposure: []string{report.ExposureSnapshot},
			view:     "web01-000002.vmdk#backing:web01.vmdk", path: "/root/.ssh/id_installer", offset: -1,
			present: []string{"clean install"}},
		{name: "credentials kept by the second snapshot", fp: fp([]byte(awsSecret)), vm: "web01",
			exposure: []string{report.ExposureSnapshot},
			view:     "web01-000002.vmdk#backing:web01-000001.vmdk", path: "/home/alice/.aws/credentials", offset: -1,
			present: []string{"with app"}},
		// The parents hold the same bytes the current state reads through
		// to, but deleting the key in the guest never reaches them.
		{name: "host key at every point", fp: fp(pemBlock(t, hostKey)), vm: "web01", exposure: []string{report.ExposureSnapshot, report.ExposureLive},
			view: "web01-000002.vmdk#current", path: "/etc/ssh/ssh_host_ed25519_key", offset: -1,
			present: []string{"clean install", "with app", "now"}, current: true},
		{name: "key in the running VM's RAM", fp: fp(pemBlock(t, memKey)), vm: "web01", exposure: []string{report.ExposureMemory},
			view: "web01-5a3c2b1d.vmem#memory", offset: memOff,
			present: []string{"mem:save"}},
	})
}

// TestStoreFilesDiscoveryDidNotReach: store discovery searches 8 levels
// and 100,000 files; a disk below that, in a directory that a .vmx makes
// a VMware store, was listed as skipped ("store discovery did not reach
// it") and the run passed complete with its key unread (an audit found
// exit 0). It is now a target of its own, with a note, and its key is
// found.
func TestStoreFilesDiscoveryDidNotReach(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "openssl")
	dir := t.TempDir()
	deep := "a/b/c/d/e/f/g/h/i"
	testutil.Bash(t, dir, `set -e
mkdir -p store/`+deep+`
printf '.encoding = "UTF-8"\nconfig.version = "8"\ndisplayName = "vm"\n' > store/vm.vmx
openssl genpkey -algorithm ed25519 > key.pem
head -c 1048576 /dev/zero > disk.raw
dd if=key.pem of=disk.raw bs=4096 seek=4 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 disk.raw store/`+deep+`/disk.qcow2`)
	rep := scanDir(t, scanner.Options{}, filepath.Join(dir, "store"))
	var found bool
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			found = found || f.Rule == "private-key-pkcs8" && strings.HasPrefix(l.View, "disk.qcow2#")
		}
	}
	if !found {
		t.Errorf("the key in %s/disk.qcow2 was not found; skipped %+v", deep, rep.Skipped)
	}
	for _, s := range rep.Skipped {
		if strings.HasSuffix(s.Path, "disk.qcow2") {
			t.Errorf("skipped %+v: want the disk scanned", s)
		}
	}
	var noted bool
	for _, tg := range rep.Targets {
		if strings.HasSuffix(tg.Path, "disk.qcow2") {
			noted = slices.ContainsFunc(tg.Notes, func(n string) bool { return strings.Contains(n, "store discovery did not reach") })
		}
	}
	if !noted {
		t.Error("the disk's target does not say that discovery did not reach it")
	}
}
