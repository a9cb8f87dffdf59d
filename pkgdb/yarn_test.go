package pkgdb

import (
	"context"
	"crypto/sha512"
	"os"
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
	recs, err := readYarnCache(context.Background(), hostRoot(root))
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
