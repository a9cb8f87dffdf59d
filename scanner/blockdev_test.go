package scanner_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestBlockDeviceTargets: a block device the user names (a read-only loop
// device standing for an LVM volume or a zvol) is scanned like the image
// it holds: a raw ext4 filesystem and a qcow2 image (as oVirt keeps
// qcow2 on logical volumes), the key at its path. A block device is
// never opened because an image names it (a qcow2's backing file) or
// because a scanned directory links to it.
func TestBlockDeviceTargets(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "openssl", "qemu-img")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
mkdir -p root/etc/ssl/private
openssl genpkey -algorithm ed25519 -out root/etc/ssl/private/app.pem
mkfs.ext4 -q -F -d root disk.raw 32M
qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2`)
	before := map[string][]byte{}
	for _, f := range []string{"disk.raw", "disk.qcow2"} {
		before[f] = testutil.FileSnapshot(t, filepath.Join(dir, f))
	}
	rawDev, _ := testutil.LoopDevice(t, filepath.Join(dir, "disk.raw"), 0, 0)
	qcowDev, _ := testutil.LoopDevice(t, filepath.Join(dir, "disk.qcow2"), 0, 0)
	overlay := filepath.Join(dir, "overlay.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", rawDev, "-F", "raw", overlay, "32M")
	links := filepath.Join(dir, "links")
	if err := os.Mkdir(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rawDev, filepath.Join(links, "vm-100-disk-0")); err != nil {
		t.Fatal(err)
	}

	// --backing-root /dev: the overlay's backing name is inside the
	// allowed roots, so that what refuses it is its file type.
	rep, err := scanner.New(scanner.Options{Engine: newEngine(t), BackingRoots: []string{"/dev"}}).Scan(context.Background(), []string{rawDev, qcowDev, overlay, links})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range rep.Findings {
		if f.Rule != "private-key-pkcs8" {
			continue
		}
		for _, l := range f.Locations {
			got = append(got, fmt.Sprintf("%s %s %s", l.View, l.Path, l.Exposure))
		}
	}
	slices.Sort(got)
	want := []string{
		filepath.Base(qcowDev) + "#current /etc/ssl/private/app.pem live",
		filepath.Base(rawDev) + "#current /etc/ssl/private/app.pem live",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the key at\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	formats := map[string]string{}
	for _, tg := range rep.Targets {
		formats[tg.Path] = tg.Format
		if tg.Path == overlay && (len(tg.Errors) != 1 || !strings.Contains(tg.Errors[0], "is a block device, not a regular file: not opened")) {
			t.Errorf("overlay naming a block device: errors %q", tg.Errors)
		}
	}
	if formats[rawDev] != "raw" || formats[qcowDev] != "qcow2" {
		t.Errorf("targets %v", formats)
	}
	if !slices.ContainsFunc(rep.Skipped, func(s report.Skipped) bool { return strings.HasSuffix(s.Path, "vm-100-disk-0") }) {
		t.Errorf("skipped %+v: want the link to a block device in a scanned directory skipped", rep.Skipped)
	}
	if rep.Complete {
		t.Error("complete, with an overlay whose backing file is refused")
	}
	for f, b := range before {
		if !bytes.Equal(b, testutil.FileSnapshot(t, filepath.Join(dir, f))) {
			t.Errorf("%s changed while its device was scanned", f)
		}
	}
}
