package scanner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestAptCachedPackages scans a disk whose /var/cache/apt/archives the
// real apt filled (apt-get install --download-only from a repository of
// two packages, each shipping a key in its data.tar.xz). The package whose
// cached .deb still has the SHA-256 of the guest's apt lists is the
// repository's own: it is not decoded, and counts as an unmodified
// package file. The other was replaced in the cache after the download
// (rebuilt with another key): it is decoded, and its key keeps its
// severity, with a provenance that says the file differs from its index
// entry. With --no-downgrade both are decoded.
func TestAptCachedPackages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	keys := map[string][]byte{}
	for _, k := range []string{"vouched", "shipped", "replaced"} {
		keys[k] = freshKey(t, dir, k)
	}
	debs := []string{
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "acme-agent", Version: "1:2.0-1", Files: []testutil.DebFile{{Path: "/opt/acme/agent.pem", Data: keys["vouched"]}}}),
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "acme-tools", Version: "1.0-1", Files: []testutil.DebFile{{Path: "/opt/acme/tools.pem", Data: keys["shipped"]}}}),
	}
	testutil.AptDownload(t, dir, root, debs, []string{"acme-agent", "acme-tools"}, false)
	rebuilt := filepath.Join(dir, "rebuilt")
	os.MkdirAll(rebuilt, 0o755)
	deb := testutil.BuildDeb(t, rebuilt, testutil.DebPackage{Name: "acme-tools", Version: "1.0-1", Files: []testutil.DebFile{{Path: "/opt/acme/tools.pem", Data: keys["replaced"]}}})
	testutil.Bash(t, dir, "cp "+deb+" root/var/cache/apt/archives/acme-tools_1.0-1_all.deb && mkfs.ext4 -q -F -d root disk.raw 32M")
	img := filepath.Join(dir, "disk.raw")
	before := testutil.FileSnapshot(t, img)

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
		t.Fatal("the image changed during the scans")
	}
	for _, f := range rep.Findings {
		if f.Fingerprint == fp(bytes.TrimRight(keys["vouched"], "\n")) {
			t.Errorf("the vouched package was decoded: %+v", f.Locations)
		}
	}
	if d := rep.Targets[0].Views[0].Decoding; d == nil || d.UnmodifiedPackageFiles != 1 {
		t.Errorf("decoding %+v, want one unmodified package file", d)
	}
	const replacedDeb = "/var/cache/apt/archives/acme-tools_1.0-1_all.deb"
	f := findingOf(t, rep, fp(bytes.TrimRight(keys["replaced"], "\n")))
	pf := findingOf(t, plain, fp(bytes.TrimRight(keys["replaced"], "\n")))
	if l := f.Locations[0]; l.Path != replacedDeb || chainText(l) != "ar member data.tar.xz > xz > tar member opt/acme/tools.pem" {
		t.Errorf("the replaced package's key: location %s %q", l.Path, chainText(l))
	}
	if f.Severity != pf.Severity || len(f.Provenance) != 1 || f.Provenance[0] != (report.Provenance{Manager: "apt", Package: "acme-tools", Version: "1.0-1",
		Arch: "all", Target: img, Path: replacedDeb, Modified: true, Digest: "sha256"}) {
		t.Errorf("the replaced package's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
	}
	v := findingOf(t, plain, fp(bytes.TrimRight(keys["vouched"], "\n")))
	if l := v.Locations[0]; l.Path != "/var/cache/apt/archives/acme-agent_1%3a2.0-1_all.deb" || chainText(l) != "ar member data.tar.xz > xz > tar member opt/acme/agent.pem" {
		t.Errorf("--no-downgrade: the vouched package's key at %s %q", l.Path, chainText(l))
	}
}

// TestAptLists scans a disk whose /var/lib/apt/lists the real apt-get
// update filled from a signed repository (InRelease). Package
// descriptions in Translation-en quote documentation's example
// credentials, as Debian's do ("connection =
// mysql://keystone:foobar@127.0.0.1/keystone"): the list still has the
// SHA-256 its InRelease records, so the credential is public, at info. A
// credential appended to the Packages list after the update keeps its
// severity, with a provenance that says the list differs from its record.
// With Acquire::GzipIndexes, as Debian's container images set it, apt
// keeps its lists compressed (.lz4): what they decode to is compared, the
// unmodified list is not decoded, and the one edited (decompressed,
// appended to, compressed again) is, and keeps its finding's severity.
func TestAptLists(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "lz4")
	for _, c := range []struct {
		name     string
		conf     []string
		ext      string // what apt adds to a list's name
		digest   string
		packaged int64 // unmodified compressed files left undecoded
	}{
		{"plain", nil, "", "sha256", 0},
		{"GzipIndexes", []string{`Acquire::GzipIndexes "true";`}, ".lz4", "sha256-decoded", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			const shipped, added = "Xk8pq2vL9w", "Zq7wLm2pX4"
			testutil.AptUpdate(t, dir, root, "trixie", map[string][]byte{
				"main/binary-amd64/Packages": []byte("Package: acme\nVersion: 1\nArchitecture: all\nDescription-md5: 0123456789abcdef0123456789abcdef\n\n"),
				"main/i18n/Translation-en":   []byte("Package: acme\nDescription-md5: 0123456789abcdef0123456789abcdef\nDescription-en: acme identity service\n into service config files like this:\n .\n  connection = mysql://keystone:" + shipped + "@127.0.0.1/keystone\n\n"),
			}, true, c.conf...)
			packages, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*_main_binary-amd64_Packages"+c.ext))
			if len(packages) != 1 {
				t.Fatalf("apt kept %q, want one Packages list", packages)
			}
			edit := "printf 'X-Deploy: postgres://app:" + added + "@db.internal/app\\n' >> " + packages[0]
			if c.ext == ".lz4" {
				edit = "lz4 -dc " + packages[0] + " > edited && " + strings.Replace(edit, packages[0], "edited", 1) + " && lz4 -q -f edited " + packages[0]
			}
			testutil.Bash(t, dir, edit+" && mkfs.ext4 -q -F -d root disk.raw 32M")
			img := filepath.Join(dir, "disk.raw")
			before := testutil.FileSnapshot(t, img)
			rep := scanFile(t, scanner.Options{}, img)
			if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
				t.Fatal("the image changed during the scan")
			}
			s := findingOf(t, rep, fp([]byte(shipped)))
			if s.Severity != report.SeverityInfo || len(s.Provenance) != 1 || s.Provenance[0].Manager != "apt" || s.Provenance[0].Package != "main/i18n/Translation-en" ||
				s.Provenance[0].Version != "trixie" || s.Provenance[0].Modified || s.Provenance[0].Digest != c.digest {
				t.Errorf("the description's credential: severity %s, provenance %+v, reasons %+v", s.Severity, s.Provenance, s.Reasons)
			}
			a := findingOf(t, rep, fp([]byte(added)))
			if a.Severity != report.SeverityCritical || len(a.Provenance) != 1 || a.Provenance[0].Package != "main/binary-amd64/Packages" || !a.Provenance[0].Modified {
				t.Errorf("the appended credential: severity %s, provenance %+v", a.Severity, a.Provenance)
			}
			var got int64
			for _, tg := range rep.Targets {
				for _, v := range tg.Views {
					if v.Decoding != nil {
						got += v.Decoding.UnmodifiedPackageFiles
					}
				}
			}
			if got != c.packaged {
				t.Errorf("%d unmodified package files left undecoded, want %d", got, c.packaged)
			}
		})
	}
}
