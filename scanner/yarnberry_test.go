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

// TestYarnBerryPackages scans a disk where the real yarn 4 installed an
// application's packages (from a registry on 127.0.0.1) into /srv/app,
// unpacked into node_modules, with each package's zip in root's global
// cache and its SHA-512 in the application's yarn.lock. The keys a
// package ships are info, with the zip's yarn provenance, in the zip and
// in node_modules alike. A zip replaced after the install keeps its
// findings' severity. With --no-downgrade every key has its rule's.
func TestYarnBerryPackages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "zip")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	keys := map[string][]byte{}
	for _, k := range []string{"fixture", "shipped", "original", "injected"} {
		keys[k] = freshKey(t, dir, k)
	}
	testutil.YarnBerryInstall(t, dir, filepath.Join(root, "root"), filepath.Join(root, "srv/app"), "node-modules", []testutil.NPMPackage{
		{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": keys["fixture"], "lib/key.pem": keys["shipped"]}},
		{Name: "acme-tampered", Version: "1.0.0", Files: map[string][]byte{"lib/key.pem": keys["original"]}},
	})
	tampered, _ := filepath.Glob(filepath.Join(root, "root/.yarn/berry/cache/acme-tampered-npm-1.0.0-*.zip"))
	if len(tampered) != 1 {
		t.Fatalf("acme-tampered's zip in the cache: %q", tampered)
	}
	// Replace the zip's key with another one, as an attacker with the
	// cache could.
	os.MkdirAll(filepath.Join(dir, "repack/node_modules/acme-tampered/lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "repack/node_modules/acme-tampered/lib/key.pem"), keys["injected"], 0o644)
	testutil.Bash(t, dir, "rm "+tampered[0]+" && (cd repack && zip -q -r "+tampered[0]+" node_modules) && mkfs.ext4 -q -F -d root disk.raw 64M")
	img := filepath.Join(dir, "disk.raw")

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	for _, k := range []string{"fixture", "shipped"} {
		f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n")))
		if f.Severity != report.SeverityInfo || len(f.Provenance) != 1 || f.Provenance[0].Manager != "yarn" || f.Provenance[0].Package != "acme-fixtures" ||
			f.Provenance[0].Version != "1.0.0" || f.Provenance[0].Modified || f.Provenance[0].Digest != "sha512" ||
			!strings.HasPrefix(f.Provenance[0].Path, "/root/.yarn/berry/cache/acme-fixtures-npm-1.0.0-") {
			t.Errorf("%s: severity %s, provenance %+v", k, f.Severity, f.Provenance)
		}
		if !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return strings.HasPrefix(l.Path, "/srv/app/node_modules/acme-fixtures/") }) {
			t.Errorf("%s: no location in node_modules: %+v", k, f.Locations)
		}
		if pf := findingOf(t, plain, f.Fingerprint); pf.Severity == report.SeverityInfo {
			t.Errorf("%s with --no-downgrade: %s", k, pf.Severity)
		}
	}
	f := findingOf(t, rep, fp(bytes.TrimRight(keys["injected"], "\n")))
	pf := findingOf(t, plain, f.Fingerprint)
	if guestPath := "/" + strings.TrimPrefix(tampered[0], root+"/"); f.Severity != pf.Severity || len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Path != guestPath {
		t.Errorf("the replaced zip's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
	}
}
