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

// TestNPMCachedPackages scans a disk where the real npm installed an
// application's packages (from a registry on 127.0.0.1), leaving their
// tarballs in root's ~/.npm cache and their files in node_modules. The
// keys a package ships (a test fixture, a library file) are the
// registry's: info, with the cached tarball's npm provenance, and so are
// their copies in node_modules (propagation). A cached tarball whose
// bytes were replaced after the install no longer has the SHA-512 of its
// index entry: what it holds keeps its severity. With --no-downgrade every
// key has its rule's severity.
func TestNPMCachedPackages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "tar")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	keys := map[string][]byte{}
	for _, k := range []string{"fixture", "shipped", "original", "injected"} {
		keys[k] = freshKey(t, dir, k)
	}
	testutil.NPMInstall(t, dir, filepath.Join(root, "root/.npm"), filepath.Join(root, "srv/app"), []testutil.NPMPackage{
		{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": keys["fixture"], "lib/key.pem": keys["shipped"]}},
		{Name: "acme-tampered", Version: "1.0.0", Files: map[string][]byte{"lib/key.pem": keys["original"]}},
	})
	// Replace acme-tampered's cached tarball with one holding another key.
	var tamperedPath string
	for _, c := range cachedContents(t, root) {
		if b, _ := exec.Command("tar", "-xzOf", c, "package/lib/key.pem").Output(); bytes.Equal(b, keys["original"]) {
			tamperedPath = c
		}
	}
	if tamperedPath == "" {
		t.Fatal("acme-tampered's tarball is not in the cache")
	}
	os.MkdirAll(filepath.Join(dir, "repack/package/lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "repack/package/lib/key.pem"), keys["injected"], 0o644)
	testutil.Bash(t, dir, "tar -C repack -czf "+tamperedPath+" package && mkfs.ext4 -q -F -d root disk.raw 64M")
	img := filepath.Join(dir, "disk.raw")

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	guestPath := "/" + strings.TrimPrefix(tamperedPath, root+"/")
	for _, k := range []string{"fixture", "shipped"} {
		f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n")))
		if f.Severity != report.SeverityInfo || len(f.Provenance) != 1 || f.Provenance[0].Manager != "npm" || f.Provenance[0].Package != "acme-fixtures" ||
			f.Provenance[0].Version != "1.0.0" || f.Provenance[0].Modified || f.Provenance[0].Digest != "sha512" ||
			!strings.HasPrefix(f.Provenance[0].Path, "/root/.npm/_cacache/content-v2/sha512/") {
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
	if f.Severity != pf.Severity || len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Path != guestPath {
		t.Errorf("the replaced tarball's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
	}
}

// cachedContents lists the content files of root's npm cache.
func cachedContents(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(root, "root/.npm/_cacache/content-v2"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}
