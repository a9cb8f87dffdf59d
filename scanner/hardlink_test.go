package scanner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestHardLinkedKeys: a file with several names (hard links) is judged by
// all of them. The guest's TLS key, first walked under a test directory
// where it is hard-linked too, keeps its severity, and its location and
// remediation name both paths; a key only in a test directory is lowered.
// A package's file, first walked under a name no package records, is
// still vouched for by its package's records. The image is made by
// mkfs.ext4 -d, dpkg and ln in the mounted filesystem.
func TestHardLinkedKeys(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "mkfs.ext4", "mount")
	dir := t.TempDir()
	keys := map[string][]byte{}
	for _, k := range []string{"tls", "test-only", "packaged"} {
		keys[k] = freshKey(t, dir, k)
	}
	const (
		testName    = "/a/testdata/server.key" // walked before /etc: its root entry is older
		tlsName     = "/etc/ssl/private/server.key"
		controlName = "/a/testdata/other.key"
		pkgName     = "/usr/share/selftest/test.key"
		rootName    = "/shipped.key" // a file in / is walked before any directory's
	)
	root := filepath.Join(dir, "root")
	testutil.DpkgInstall(t, root, testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "selftest-keys", Version: "1.0-1",
		Files: []testutil.DebFile{{Path: pkgName, Data: keys["packaged"]}}}))
	write := func(base, p string, b []byte) {
		full := filepath.Join(base, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(root, testName, keys["tls"])
	write(root, controlName, keys["test-only"])
	if err := os.Link(filepath.Join(root, pkgName), filepath.Join(root, rootName)); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "fs.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", root, img, "48M")
	// The admin installs the key where the server reads it, as a link.
	mnt, unmount := testutil.LoopMount(t, img)
	if err := os.MkdirAll(filepath.Join(mnt, filepath.Dir(tlsName)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(mnt, testName), filepath.Join(mnt, tlsName)); err != nil {
		t.Fatal(err)
	}
	unmount()

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	if !rep.Complete || !plain.Complete {
		t.Fatalf("incomplete scans: %s; %s", rep.IncompleteReason, plain.IncompleteReason)
	}
	find := func(r *report.Report, k string) *report.Finding {
		return findingOf(t, r, fp(bytes.TrimRight(keys[k], "\n")))
	}
	onlyLocation := func(f *report.Finding) report.Location {
		t.Helper()
		if len(f.Locations) != 1 {
			t.Fatalf("%s: %d locations, want 1: %+v", f.Rule, len(f.Locations), f.Locations)
		}
		return f.Locations[0]
	}

	tls, tlsPlain := find(rep, "tls"), find(plain, "tls")
	l := onlyLocation(tls)
	if l.Path != testName || !slices.Equal(l.Links, []string{tlsName}) {
		t.Fatalf("location %s also %q; the fixture means %s also %s", l.Path, l.Links, testName, tlsName)
	}
	if tls.Severity != tlsPlain.Severity || len(tls.Reasons) != 0 {
		t.Errorf("TLS key: %s (rule's %s), reasons %+v; a name outside test directories keeps it", tls.Severity, tlsPlain.Severity, tls.Reasons)
	}
	if steps := report.Remediate(rep, tls); !slices.ContainsFunc(steps, func(r report.Remediation) bool {
		return strings.Contains(r.Command, testName) && strings.Contains(r.Command, tlsName)
	}) {
		t.Errorf("remediation %+v does not remove both names", steps)
	}

	control, controlPlain := find(rep, "test-only"), find(plain, "test-only")
	if want := report.LowerSeverity(controlPlain.Severity, 2); control.Severity != want || len(control.Reasons) == 0 || control.Reasons[0].Code != report.ReasonTestPath {
		t.Errorf("test-only key: %s, reasons %+v; want %s for test-path", control.Severity, control.Reasons, want)
	}

	pkg := find(rep, "packaged")
	l = onlyLocation(pkg)
	if l.Path != rootName || !slices.Equal(l.Links, []string{pkgName}) {
		t.Fatalf("location %s also %q; the fixture means %s also %s", l.Path, l.Links, rootName, pkgName)
	}
	if pkg.Severity != report.SeverityInfo || len(pkg.Provenance) != 1 || pkg.Provenance[0].Path != pkgName || pkg.Provenance[0].Modified {
		t.Errorf("packaged key under another name: %s, provenance %+v; want info from selftest-keys at %s", pkg.Severity, pkg.Provenance, pkgName)
	}
}
