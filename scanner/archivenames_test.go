package scanner_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestArchiveMemberNamesAreNoHostFiles: the files a disk inside an
// archive reads (a VMDK's flat extent) are the archive's members, named
// by the archive. Those names were taken for host paths, as the physical
// identity of their bytes: two archives whose VMDKs both read
// "d-flat.vmdk" shared it, so the second's extent passed for scanned;
// and an archive whose member is named after a host file hid that
// file's key (an audit found both with exit 0, the run complete). Each
// case is scanned as one run of every target, and the key must be found
// where it is.
func TestArchiveMemberNamesAreNoHostFiles(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "openssl", "tar", "zip", "dd", "sed")
	for _, tc := range []struct {
		name string
		// script makes the targets in the current directory; KEY is a
		// PEM private key file to plant.
		script  string
		targets []string
		want    string // the view that holds the key
	}{
		{
			name: "two tars whose VMDKs read one member name",
			script: `mkdir a b
(cd a && qemu-img create -q -f vmdk -o subformat=monolithicFlat d.vmdk 1M)
(cd b && qemu-img create -q -f vmdk -o subformat=monolithicFlat d.vmdk 1M && dd if=../KEY of=d-flat.vmdk bs=4096 seek=8 conv=notrunc status=none)
tar -C a -cf a.tar d.vmdk d-flat.vmdk
tar -C b -cf b.tar d.vmdk d-flat.vmdk`,
			targets: []string{"a.tar", "b.tar"},
			want:    "b.tar#current:d.vmdk",
		},
		{
			name: "two zips whose VMDKs read one member name",
			script: `mkdir a b
(cd a && qemu-img create -q -f vmdk -o subformat=monolithicFlat d.vmdk 1M)
(cd b && qemu-img create -q -f vmdk -o subformat=monolithicFlat d.vmdk 1M && dd if=../KEY of=d-flat.vmdk bs=4096 seek=8 conv=notrunc status=none)
(cd a && zip -q -0 ../a.zip d.vmdk d-flat.vmdk)
(cd b && zip -q -0 ../b.zip d.vmdk d-flat.vmdk)`,
			targets: []string{"a.zip", "b.zip"},
			want:    "b.zip#current:d.vmdk",
		},
		{
			name: "a tar whose VMDK reads a member named after a host file",
			script: `head -c 1048576 /dev/zero > victim.raw
dd if=KEY of=victim.raw bs=4096 seek=8 conv=notrunc status=none
mkdir -p evil && cd evil
qemu-img create -q -f vmdk -o subformat=monolithicFlat d.vmdk 1M
victim=$(readlink -f ../victim.raw)
sed -i "s|\"d-flat.vmdk\"|\"$victim\"|" d.vmdk
grep -q "FLAT \"$victim\"" d.vmdk
mkdir -p "stage$(dirname "$victim")" && mv d-flat.vmdk "stage$victim" && mv d.vmdk stage/
tar -C stage -cf ../evil.tar d.vmdk "${victim#/}"`,
			targets: []string{"evil.tar", "victim.raw"},
			want:    "victim.raw#current",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testutil.Bash(t, dir, "set -e\nopenssl genpkey -algorithm ed25519 > KEY\n"+tc.script)
			var targets []string
			for _, p := range tc.targets {
				targets = append(targets, filepath.Join(dir, p))
			}
			rep := scanDir(t, scanner.Options{}, targets...)
			var at []string
			for _, f := range rep.Findings {
				if f.Rule == "private-key-pkcs8" {
					for _, l := range f.Locations {
						at = append(at, l.View)
					}
				}
			}
			if !slices.Contains(at, tc.want) {
				t.Errorf("the key at %q: want it in %s", at, tc.want)
			}
			for _, in := range rep.Inputs {
				if strings.Contains(in, "!") || strings.HasSuffix(in, "d-flat.vmdk") {
					t.Errorf("input %s: an archive's member is no host file", in)
				}
			}
		})
	}
}
