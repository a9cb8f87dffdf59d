package pkgdb

import (
	"context"
	"crypto/sha512"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadYarnCache has the real yarn 1 add two packages (one scoped)
// from a registry on 127.0.0.1 into an application, with its cache where
// yarn keeps root's, as yarn leaves a machine. Each package's kept
// tarball is recorded once, with its package, version and the SHA-512
// of the tarball there, which is the registry's.
func TestReadYarnCache(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testutil.YarnInstall(t, dir, filepath.Join(root, "usr/local/share/.cache/yarn"), filepath.Join(root, "srv/app"), []testutil.NPMPackage{
		{Name: "acme-keys", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": []byte("fixture\n")}},
		{Name: "@acme/tools", Version: "2.0.0-rc.1", Files: map[string][]byte{"index.js": []byte("module.exports = 1\n")}},
	})
	recs, err := readYarnCache(context.Background(), hostRoot(root), newPathBudget())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"acme-keys": "1.0.0", "@acme/tools": "2.0.0-rc.1"}
	for _, r := range recs {
		o := r.Owner
		b, rerr := os.ReadFile(filepath.Join(root, r.Path))
		sum := sha512.Sum512(b)
		if o.Version != want[o.Package] || o.Manager != "yarn" || o.Digest.Algo != "sha512" || string(o.Digest.Sum) != string(sum[:]) || rerr != nil ||
			!strings.HasPrefix(r.Path, "/usr/local/share/.cache/yarn/v") || !strings.HasSuffix(r.Path, "/node_modules/"+o.Package+"/.yarn-tarball.tgz") {
			t.Errorf("record %s %+v: want a tarball yarn kept, with its digest (%v)", r.Path, o, rerr)
		}
		delete(want, o.Package)
	}
	if len(recs) != 2 || len(want) != 0 {
		t.Errorf("%d records, none for %v", len(recs), want)
	}
	// The metadata files are record files (for layers).
	var metas int
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == ".yarn-metadata.json" {
			metas++
			if g := "/" + strings.TrimPrefix(p, root+"/"); !IsRecordFile(g) {
				t.Errorf("IsRecordFile(%s) = false", g)
			}
		}
		return nil
	})
	if metas != 2 {
		t.Errorf("%d metadata files, want 2", metas)
	}
}

// TestYarnRecords: the metadata names the tarball beside it; no SHA-512
// means no record, no package name or no JSON an error. Only a cache's
// metadata is a record file, and only a cache's tarball is hashed as it
// streams.
func TestYarnRecords(t *testing.T) {
	const sri = "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="
	for _, tc := range []struct {
		in      string
		ok      bool
		wantErr bool
	}{
		{`{"manifest":{"name":"ms","version":"2.1.3"},"remote":{"integrity":"` + sri + `","type":"tarball"}}`, true, false},
		{`{"manifest":{"name":"ms","version":"2.1.3"},"remote":{"integrity":"sha1-V0yBOM4dK1hh8LRFedut1gxmFbI="}}`, false, false},
		{`{"manifest":{"name":"ms"},"remote":{}}`, false, false},
		{`{"manifest":{"version":"1"},"remote":{"integrity":"` + sri + `"}}`, false, true},
		{`not json`, false, true},
	} {
		rec, ok, err := yarnRecord("/c/v6/npm-ms-2.1.3-x-integrity/node_modules/ms", []byte(tc.in))
		if ok != tc.ok || (err != nil) != tc.wantErr || ok && (rec.Path != "/c/v6/npm-ms-2.1.3-x-integrity/node_modules/ms/.yarn-tarball.tgz" || len(rec.Owner.Digest.Sum) != 64) {
			t.Errorf("%s: %+v %v %v", tc.in, rec, ok, err)
		}
	}
	for p, want := range map[string]bool{
		"/usr/local/share/.cache/yarn/v6/npm-ms-2.1.3-574c-integrity/node_modules/ms/.yarn-metadata.json":                     true,
		"/home/dev/.cache/yarn/v6/npm-@acme-tools-2.0.0-1f2e-integrity/node_modules/@acme/tools/.yarn-metadata.json":          true,
		"/srv/app/node_modules/ms/.yarn-metadata.json":                                                                        false,
		"/home/dev/.cache/yarn/v6/npm-ms-2.1.3-574c-integrity/node_modules/ms/lib/.yarn-metadata.json":                        false,
		"/home/dev/.cache/yarn/tmp/npm-ms-2.1.3-574c-integrity/node_modules/ms/.yarn-metadata.json":                           false,
		"/usr/local/share/.cache/yarn/v6/npm-@acme-tools-2.0.0-1f2e-integrity/node_modules/@acme/tools/package.json":          false,
		"/usr/local/share/.cache/yarn/v6/npm-@acme-tools-2.0.0-1f2e-integrity/node_modules/@acme/tools/x/.yarn-metadata.json": false,
	} {
		if got := IsRecordFile(p); got != want {
			t.Errorf("IsRecordFile(%s) = %v", p, got)
		}
	}
	// A layer reader hashes a cached tarball as it streams.
	for p, want := range map[string]string{
		"/usr/local/share/.cache/yarn/v6/npm-ms-2.1.3-574c-integrity/node_modules/ms/.yarn-tarball.tgz": "sha512",
		"/srv/app/node_modules/ms/.yarn-tarball.tgz":                                                    "",
		"/root/.npm/_cacache/content-v2/sha512/e8/59/73b9":                                              "sha512",
	} {
		if got := StreamDigest(p); got != want {
			t.Errorf("StreamDigest(%s) = %q, want %q", p, got, want)
		}
	}
}

func FuzzYarnRecord(f *testing.F) {
	f.Add([]byte(`{"manifest":{"name":"ms","version":"2.1.3"},"remote":{"integrity":"sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==","type":"tarball"},"artifacts":[]}`))
	f.Add([]byte(`{"manifest":{"name":""},"remote":{"integrity":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, ok, err := yarnRecord("/root/.cache/yarn/v6/npm-a-1-x-integrity/node_modules/a", data)
		if err != nil || !ok {
			return
		}
		if rec.Path != "/root/.cache/yarn/v6/npm-a-1-x-integrity/node_modules/a/.yarn-tarball.tgz" || len(rec.Owner.Digest.Sum) != 64 || rec.Owner.Package == "" {
			t.Fatalf("record %+v", rec)
		}
	})
}

// TestReadYarnBerry has the real yarn 4 add two packages (one scoped)
// from a registry on 127.0.0.1 into an application in /srv/app, with
// root's global cache, as yarn leaves a machine. The lock file names each
// package's zip in the global cache (and in the project's, where yarn
// would put it without the global one), with the SHA-512 of the zip
// there: the names are yarn's own.
func TestReadYarnBerry(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testutil.YarnBerryInstall(t, dir, filepath.Join(root, "root"), filepath.Join(root, "srv/app"), "pnp", []testutil.NPMPackage{
		{Name: "acme-keys", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": []byte("fixture\n")}},
		{Name: "@acme/tools", Version: "2.0.0-rc.1", Files: map[string][]byte{"index.js": []byte("module.exports = 1\n")}},
	})
	recs, err := readYarn(context.Background(), hostRoot(root), newPathBudget())
	if err != nil {
		t.Fatal(err)
	}
	zips, _ := filepath.Glob(filepath.Join(root, "root/.yarn/berry/cache/*.zip"))
	if len(zips) != 2 {
		t.Fatalf("the global cache holds %q", zips)
	}
	want := map[string]string{"acme-keys": "1.0.0", "@acme/tools": "2.0.0-rc.1"}
	found := map[string]bool{}
	for _, r := range recs {
		o := r.Owner
		if o.Manager != "yarn" || o.Version != want[o.Package] || o.Digest.Algo != "sha512" || len(o.Digest.Sum) != 64 {
			t.Errorf("record %s %+v", r.Path, o)
		}
		switch {
		case strings.HasPrefix(r.Path, "/srv/app/.yarn/cache/"):
		case strings.HasPrefix(r.Path, "/root/.yarn/berry/cache/"):
			b, err := os.ReadFile(filepath.Join(root, r.Path))
			sum := sha512.Sum512(b)
			if err != nil || string(sum[:]) != string(o.Digest.Sum) {
				t.Errorf("%s: %v, or not the lock file's SHA-512", r.Path, err)
			}
			found[o.Package] = true
			if !IsRecordFile(r.Path) && StreamDigest(r.Path) != "sha512" {
				t.Errorf("StreamDigest(%s) = %q", r.Path, StreamDigest(r.Path))
			}
		default:
			t.Errorf("record %s outside the caches", r.Path)
		}
	}
	if len(recs) != 4 || !found["acme-keys"] || !found["@acme/tools"] {
		t.Errorf("%d records, zips found for %v; want 4, both", len(recs), found)
	}
	if !IsRecordFile("/srv/app/yarn.lock") {
		t.Error("the lock file is no record file")
	}
}

// TestYarnBerryRecords: registry packages of a yarn 2+ lock file, with the
// cache key of their checksum or of __metadata; patched, git and
// workspace packages, and yarn 1's lock files, give none.
func TestYarnBerryRecords(t *testing.T) {
	const sum = "d336a85d87501c64ba230b6c1a2901a9b0e376fe7f7a1640a7f8dbdafe674b2e1a5dc6236ffd1329969dc0cf03cd57759b28743075e61229a984065ee1d56bed"
	lock := `# This file is generated by running "yarn install" inside your project.

__metadata:
  version: 8
  cacheKey: 10c0

"@isaacs/fs-minipass@npm:^4.0.0":
  version: 4.0.1
  resolution: "@isaacs/fs-minipass@npm:4.0.1"
  dependencies:
    minipass: "npm:^7.0.4"
  checksum: 10c0/` + sum + `
  languageName: node
  linkType: hard

"ssh2@npm:1.16.0":
  version: 1.16.0
  resolution: "ssh2@npm:1.16.0"
  checksum: 9/` + sum + `
  languageName: node
  linkType: hard

"old@npm:1.0.0":
  version: 1.0.0
  resolution: "old@npm:1.0.0"
  checksum: ` + sum + `

"resolve@patch:resolve@npm%3A^1.22.8#optional!builtin<compat/resolve>":
  version: 1.22.8
  resolution: "resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>::version=1.22.8&hash=c3c19d"
  checksum: 10c0/` + sum + `

"app@workspace:.":
  version: 0.0.0-use.local
  resolution: "app@workspace:."
  languageName: unknown
  linkType: soft
`
	recs, err := yarnBerryRecords("yarn.lock", []byte(lock), []string{"/c"}, 100, newPathBudget())
	var got []string
	for _, r := range recs {
		got = append(got, r.Path+" "+r.Owner.Package+"@"+r.Owner.Version)
	}
	want := []string{
		"/c/@isaacs-fs-minipass-npm-4.0.1-677026e841-10c0.zip @isaacs/fs-minipass@4.0.1",
		"/c/ssh2-npm-1.16.0-bee6b5f04c-9.zip ssh2@1.16.0",
		"/c/old-npm-1.0.0-" + yarnZipName("", "old", "1.0.0", "10c0")[len("old-npm-1.0.0-"):] + " old@1.0.0",
	}
	if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records (%v):\n%s\nwant:\n%s", err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// yarn 1's lock file has no __metadata.
	if recs, err := yarnBerryRecords("yarn.lock", []byte("# yarn lockfile v1\n\n\"ms@^2.1.3\":\n  version \"2.1.3\"\n  resolved \"https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz\"\n"), []string{"/c"}, 100, newPathBudget()); len(recs) != 0 || err != nil {
		t.Errorf("yarn 1 lock file: %v, %v", recs, err)
	}
	// Entries times cache directories stop at room.
	if recs, _ := yarnBerryRecords("yarn.lock", []byte(lock), []string{"/a", "/b", "/c"}, 4, newPathBudget()); len(recs) != 4 {
		t.Errorf("%d records with room for 4", len(recs))
	}
}

func FuzzYarnBerryRecords(f *testing.F) {
	f.Add([]byte("__metadata:\n  cacheKey: 10c0\n\n\"a@npm:1.0.0\":\n  resolution: \"a@npm:1.0.0\"\n  checksum: 10c0/" + strings.Repeat("ab", 64) + "\n"))
	f.Add([]byte("__metadata:\n\"@s/a@npm:1.0.0-rc.1\":\n  resolution: \"@s/a@npm:1.0.0-rc.1\"\n  checksum: ../" + strings.Repeat("00", 64) + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := yarnBerryRecords("yarn.lock", data, []string{"/root/.yarn/berry/cache"}, 1<<10, newPathBudget())
		if err != nil {
			return
		}
		for _, r := range recs {
			if path.Dir(r.Path) != "/root/.yarn/berry/cache" || !strings.HasSuffix(r.Path, ".zip") || len(r.Owner.Digest.Sum) != 64 || r.Owner.Package == "" {
				t.Fatalf("record %+v", r)
			}
		}
	})
}
