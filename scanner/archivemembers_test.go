package scanner_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestCompressedTarMembersEachScanned: a compressed tarball of a disk and
// files (a Vagrant box's Vagrantfile and provisioning files): each file
// member is scanned whole. Two members that the decompression reached
// in one read-ahead shared one identity, and the scan read the second
// as if it were the first (an audit found a key in b.txt unread).
func TestCompressedTarMembersEachScanned(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "openssl", "tar", "gzip", "head")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
mkdir box
qemu-img create -q -f qcow2 box/disk.qcow2 16M
head -c 400000 /dev/zero | tr '\0' 'a' > box/a.txt
openssl genpkey -algorithm ed25519 > box/b.txt
head -c 200000 /dev/zero | tr '\0' 'b' >> box/b.txt
tar -C box -czf box.tar.gz disk.qcow2 a.txt b.txt`)
	rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "box.tar.gz"))
	var at []string
	for _, f := range rep.Findings {
		if f.Rule == "private-key-pkcs8" {
			for _, l := range f.Locations {
				at = append(at, l.View)
			}
		}
	}
	if !slices.Equal(at, []string{"box.tar.gz#current:b.txt"}) || !rep.Complete {
		t.Errorf("the key at %q, complete %v: want it in b.txt", at, rep.Complete)
	}
}
