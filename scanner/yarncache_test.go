package scanner_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestYarnCachedPackages scans a disk where the real yarn 1 installed an
// application's packages (from a registry on 127.0.0.1), leaving each
// package unpacked in root's yarn cache with its tarball beside it, and
// copied into node_modules. The keys a package ships are the registry's:
// info, with the cached tarball's yarn provenance, and so are their
// copies in the cache and in node_modules (propagation). A cached tarball
// whose bytes were replaced after the install no longer has the SHA-512
// its metadata records: what it holds keeps its severity. With
// --no-downgrade every key has its rule's severity.
func TestYarnCachedPackages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "tar")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	keys := map[string][]byte{}
	for _, k := range []string{"fixture", "shipped", "original", "injected"} {
		keys[k] = freshKey(t, dir, k)
	}
	cache := filepath.Join(root, "usr/local/share/.cache/yarn")
	testutil.YarnInstall(t, dir, cache, filepath.Join(root, "srv/app"), []testutil.NPMPackage{
		{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": keys["fixture"], "lib/key.pem": keys["shipped"]}},
		{Name: "acme-tampered", Version: "1.0.0", Files: map[string][]byte{"lib/key.pem": keys["original"]}},
	})
	// Replace acme-tampered's kept tarball with one holding another key.
	tampered, _ := filepath.Glob(filepath.Join(cache, "v*/npm-acme-tampered-*/node_modules/acme-tampered/.yarn-tarball.tgz"))
	if len(tampered) != 1 {
		t.Fatalf("acme-tampered's tarball in the cache: %q", tampered)
	}
	if b, _ := exec.Command("tar", "-xzOf", tampered[0], "package/lib/key.pem").Output(); !bytes.Equal(b, keys["original"]) {
		t.Fatal("acme-tampered's kept tarball does not hold its key")
	}
	os.MkdirAll(filepath.Join(dir, "repack/package/lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "repack/package/lib/key.pem"), keys["injected"], 0o644)
	testutil.Bash(t, dir, "tar -C repack -czf "+tampered[0]+" package && mkfs.ext4 -q -F -d root disk.raw 64M")
	img := filepath.Join(dir, "disk.raw")

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	for _, k := range []string{"fixture", "shipped"} {
		f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n")))
		if f.Severity != report.SeverityInfo || len(f.Provenance) != 1 || f.Provenance[0].Manager != "yarn" || f.Provenance[0].Package != "acme-fixtures" ||
			f.Provenance[0].Version != "1.0.0" || f.Provenance[0].Modified || f.Provenance[0].Digest != "sha512" ||
			!strings.HasSuffix(f.Provenance[0].Path, "/node_modules/acme-fixtures/.yarn-tarball.tgz") {
			t.Errorf("%s: severity %s, provenance %+v", k, f.Severity, f.Provenance)
		}
		for _, where := range []string{"/srv/app/node_modules/acme-fixtures/", "/usr/local/share/.cache/yarn/v"} {
			if !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return strings.HasPrefix(l.Path, where) && len(l.Decoded) == 0 }) {
				t.Errorf("%s: no file under %s: %+v", k, where, f.Locations)
			}
		}
		if pf := findingOf(t, plain, f.Fingerprint); pf.Severity == report.SeverityInfo {
			t.Errorf("%s with --no-downgrade: %s", k, pf.Severity)
		}
	}
	f := findingOf(t, rep, fp(bytes.TrimRight(keys["injected"], "\n")))
	pf := findingOf(t, plain, f.Fingerprint)
	if guestPath := "/" + strings.TrimPrefix(tampered[0], root+"/"); f.Severity != pf.Severity || len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Path != guestPath {
		t.Errorf("the replaced tarball's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
	}
}
