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

// TestNodeCachedPackages scans, for each Node.js package manager that
// keeps what it downloads, a disk where the real tool installed an
// application's packages into /srv/app (from a registry on 127.0.0.1),
// unpacked into node_modules, and kept them in root's cache: npm's
// tarballs in ~/.npm (vouched by its cache index), yarn 1's tarballs
// beside their unpacked copies (by their .yarn-metadata.json), yarn 4's
// zips in ~/.yarn/berry/cache (by the application's yarn.lock). The keys
// a package ships (a test fixture, a library file) are the registry's:
// info, with the kept file's provenance, and so are their copies in
// node_modules (propagation). A kept file whose bytes were replaced after
// the install no longer has its recorded SHA-512: what it holds keeps its
// severity. With --no-downgrade every key has its rule's severity.
func TestNodeCachedPackages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "tar", "zip")
	pkgs := func(keys map[string][]byte) []testutil.NPMPackage {
		return []testutil.NPMPackage{
			{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": keys["fixture"], "lib/key.pem": keys["shipped"]}},
			{Name: "acme-tampered", Version: "1.0.0", Files: map[string][]byte{"lib/key.pem": keys["original"]}},
		}
	}
	// repackTar writes a package tarball holding key at lib/key.pem over
	// file; repackZip a yarn 4 zip.
	repackTar := func(t *testing.T, dir, file string, key []byte) string {
		write(t, filepath.Join(dir, "repack/package/lib/key.pem"), key)
		return "tar -C repack -czf " + file + " package"
	}
	repackZip := func(t *testing.T, dir, file string, key []byte) string {
		write(t, filepath.Join(dir, "repack/node_modules/acme-tampered/lib/key.pem"), key)
		return "rm " + file + " && (cd repack && zip -q -r " + file + " node_modules)"
	}
	for _, c := range []struct {
		name, manager string
		install       func(t *testing.T, dir, root string, p []testutil.NPMPackage)
		// kept is acme-tampered's kept file, as installed.
		kept   func(t *testing.T, root string, original []byte) string
		repack func(t *testing.T, dir, file string, key []byte) string
		// keptPath is the start of acme-fixtures' kept file's guest path;
		// unpacked, where set, of its unpacked copy in the cache.
		keptPath, unpacked string
	}{
		{"npm", "npm", func(t *testing.T, dir, root string, p []testutil.NPMPackage) {
			testutil.NPMInstall(t, dir, filepath.Join(root, "root/.npm"), filepath.Join(root, "srv/app"), p)
		}, func(t *testing.T, root string, original []byte) string {
			var found string
			filepath.WalkDir(filepath.Join(root, "root/.npm/_cacache/content-v2"), func(p string, d os.DirEntry, err error) error {
				if b, _ := exec.Command("tar", "-xzOf", p, "package/lib/key.pem").Output(); err == nil && d.Type().IsRegular() && bytes.Equal(b, original) {
					found = p
				}
				return nil
			})
			return found
		}, repackTar, "/root/.npm/_cacache/content-v2/sha512/", ""},
		{"yarn 1", "yarn", func(t *testing.T, dir, root string, p []testutil.NPMPackage) {
			testutil.YarnInstall(t, dir, filepath.Join(root, "usr/local/share/.cache/yarn"), filepath.Join(root, "srv/app"), p)
		}, func(t *testing.T, root string, _ []byte) string {
			return glob1(t, filepath.Join(root, "usr/local/share/.cache/yarn/v*/npm-acme-tampered-*/node_modules/acme-tampered/.yarn-tarball.tgz"))
		}, repackTar, "/usr/local/share/.cache/yarn/v6/npm-acme-fixtures-1.0.0-", "/usr/local/share/.cache/yarn/v6/npm-acme-fixtures-1.0.0-"},
		{"yarn 4", "yarn", func(t *testing.T, dir, root string, p []testutil.NPMPackage) {
			testutil.YarnBerryInstall(t, dir, filepath.Join(root, "root"), filepath.Join(root, "srv/app"), "node-modules", p)
		}, func(t *testing.T, root string, _ []byte) string {
			return glob1(t, filepath.Join(root, "root/.yarn/berry/cache/acme-tampered-npm-1.0.0-*.zip"))
		}, repackZip, "/root/.yarn/berry/cache/acme-fixtures-npm-1.0.0-", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			keys := map[string][]byte{}
			for _, k := range []string{"fixture", "shipped", "original", "injected"} {
				keys[k] = freshKey(t, dir, k)
			}
			c.install(t, dir, root, pkgs(keys))
			tampered := c.kept(t, root, keys["original"])
			if tampered == "" {
				t.Fatal("acme-tampered's kept file is not in the cache")
			}
			testutil.Bash(t, dir, c.repack(t, dir, tampered, keys["injected"])+" && mkfs.ext4 -q -F -d root disk.raw 64M")
			img := filepath.Join(dir, "disk.raw")

			rep := scanFile(t, scanner.Options{}, img)
			plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
			for _, k := range []string{"fixture", "shipped"} {
				f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n")))
				if f.Severity != report.SeverityInfo || len(f.Provenance) != 1 || f.Provenance[0].Manager != c.manager || f.Provenance[0].Package != "acme-fixtures" ||
					f.Provenance[0].Version != "1.0.0" || f.Provenance[0].Modified || f.Provenance[0].Digest != "sha512" ||
					!strings.HasPrefix(f.Provenance[0].Path, c.keptPath) {
					t.Errorf("%s: severity %s, provenance %+v", k, f.Severity, f.Provenance)
				}
				for _, where := range []string{"/srv/app/node_modules/acme-fixtures/", c.unpacked} {
					if where != "" && !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return strings.HasPrefix(l.Path, where) && len(l.Decoded) == 0 }) {
						t.Errorf("%s: no file under %s: %+v", k, where, f.Locations)
					}
				}
				if pf := findingOf(t, plain, f.Fingerprint); pf.Severity == report.SeverityInfo {
					t.Errorf("%s with --no-downgrade: %s", k, pf.Severity)
				}
			}
			f := findingOf(t, rep, fp(bytes.TrimRight(keys["injected"], "\n")))
			pf := findingOf(t, plain, f.Fingerprint)
			if guestPath := "/" + strings.TrimPrefix(tampered, root+"/"); f.Severity != pf.Severity || len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Path != guestPath {
				t.Errorf("the replaced file's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
			}
		})
	}
}

// glob1 returns the one file that pattern matches.
func glob1(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) != 1 {
		t.Fatalf("%s: %q", pattern, m)
	}
	return m[0]
}

// write writes b to p, making its directories.
func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
