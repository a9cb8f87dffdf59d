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

// TestArchiveMemberPathContext: a secret inside an archive lies in the
// archive's member, and a member under a test directory is a test file
// (a package's fixtures in the zip yarn 2+ caches, made here by zip,
// stored: the key is in the zip's bytes too, where the decoded member
// judges for it); a
// member of a backup elsewhere keeps its severity (tar). Both archives
// sit in directories that are no test directories, in an ext4 made by
// mkfs.ext4 -d.
func TestArchiveMemberPathContext(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "zip", "tar", "ssh-keygen")
	dir := t.TempDir()
	fixture, backup := freshKey(t, dir, "fixture"), freshKey(t, dir, "backup")
	write(t, filepath.Join(dir, "zipsrc/node_modules/acme/test/fixtures/id_ed25519"), fixture)
	write(t, filepath.Join(dir, "tarsrc/etc/ssh/id_ed25519"), backup)
	if err := os.MkdirAll(filepath.Join(dir, "root/root/.yarn/berry/cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Stored, not deflated, as yarn stores small files: the raw scan
	// also sees the key in the zip's own bytes.
	testutil.Bash(t, dir, "(cd zipsrc && zip -q -0 -r ../root/root/.yarn/berry/cache/acme-npm-1.0.0-0123456789-10c0.zip node_modules) && "+
		"mkdir -p root/var/backups && tar -C tarsrc -czf root/var/backups/etc.tar.gz etc && mkfs.ext4 -q -F -d root disk.raw 32M")
	img := filepath.Join(dir, "disk.raw")
	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)

	f := findingOf(t, rep, fp(bytes.TrimRight(fixture, "\n")))
	pf := findingOf(t, plain, f.Fingerprint)
	if want := report.LowerSeverity(pf.Severity, 2); f.Severity != want || len(f.Reasons) != 1 || f.Reasons[0].Code != report.ReasonTestPath ||
		!strings.Contains(f.Reasons[0].Text, "member node_modules/acme/test/fixtures/id_ed25519") {
		t.Errorf("fixture in a zip's test directory: %s (rule's %s, want %s), reasons %+v", f.Severity, pf.Severity, want, f.Reasons)
	}
	f = findingOf(t, rep, fp(bytes.TrimRight(backup, "\n")))
	if pf := findingOf(t, plain, f.Fingerprint); f.Severity != pf.Severity || len(f.Reasons) != 0 {
		t.Errorf("key in a backup tarball: %s (rule's %s), reasons %+v", f.Severity, pf.Severity, f.Reasons)
	}
}
