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

// TestPnpmStore scans a disk where the real pnpm added an application's
// packages (from a registry on 127.0.0.1): each package file once in
// root's store, named by its SHA-512, and hard-linked into node_modules.
// The keys a package ships (a test fixture, a library file) are the
// registry's: info, with pnpm provenance naming the store file. (The
// node_modules name of each is the same inode: the filesystem index
// reports one name of a hard-linked file, here the store's, and before
// pnpm's records that name, in no test directory, kept the fixture from
// being lowered.) A store file whose
// bytes were replaced after the install no longer has its index's
// SHA-512: what it holds keeps its severity. With --no-downgrade every
// key has its rule's severity.
func TestPnpmStore(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	keys := map[string][]byte{}
	for _, k := range []string{"fixture", "shipped", "original", "injected"} {
		keys[k] = freshKey(t, dir, k)
	}
	app := filepath.Join(root, "srv/app")
	testutil.PnpmInstall(t, dir, filepath.Join(root, "root/.local/share/pnpm/store"), app, []testutil.NPMPackage{
		{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": keys["fixture"], "lib/key.pem": keys["shipped"]}},
		{Name: "acme-tampered", Version: "1.0.0", Files: map[string][]byte{"lib/key.pem": keys["original"]}},
	})
	// Replace acme-tampered's file in the store (and so in node_modules:
	// the same inode) with another key.
	tampered, err := filepath.EvalSymlinks(filepath.Join(app, "node_modules/acme-tampered/lib/key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, keys["injected"], 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, "mkfs.ext4 -q -F -d root disk.raw 64M")
	img := filepath.Join(dir, "disk.raw")

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	for _, k := range []string{"fixture", "shipped"} {
		f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n")))
		if f.Severity != report.SeverityInfo || len(f.Provenance) != 1 || f.Provenance[0].Manager != "pnpm" || f.Provenance[0].Package != "acme-fixtures" ||
			f.Provenance[0].Version != "1.0.0" || f.Provenance[0].Modified || f.Provenance[0].Digest != "sha512" ||
			!strings.HasPrefix(f.Provenance[0].Path, "/root/.local/share/pnpm/store/v10/files/") {
			t.Errorf("%s: severity %s, provenance %+v", k, f.Severity, f.Provenance)
		}
		if len(f.Provenance) == 1 && !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Path == f.Provenance[0].Path }) {
			t.Errorf("%s: the store file is not among the locations: %+v", k, f.Locations)
		}
		if pf := findingOf(t, plain, f.Fingerprint); pf.Severity == report.SeverityInfo {
			t.Errorf("%s with --no-downgrade: %s", k, pf.Severity)
		}
	}
	f := findingOf(t, rep, fp(bytes.TrimRight(keys["injected"], "\n")))
	pf := findingOf(t, plain, f.Fingerprint)
	if f.Severity != pf.Severity || len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Manager != "pnpm" {
		t.Errorf("the replaced store file's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
	}
}
