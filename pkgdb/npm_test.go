package pkgdb

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadNPMCache has the real npm install two packages (one scoped) from
// a registry on 127.0.0.1 into an application, with the cache in a user's
// home, as `npm install` leaves a machine. Each cached tarball is recorded
// with its package, version and the SHA-512 of the bytes npm wrote, at the
// path cacache stores it.
func TestReadNPMCache(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	tarballs := testutil.NPMInstall(t, dir, filepath.Join(root, "home/dev/.npm"), filepath.Join(root, "srv/app"), []testutil.NPMPackage{
		{Name: "acme-keys", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": []byte("fixture\n")}},
		{Name: "@acme/tools", Version: "2.0.0-rc.1", Files: map[string][]byte{"index.js": []byte("module.exports = 1\n")}},
	})
	recs, err := readNPMCache(context.Background(), hostRoot(root), newPathBudget())
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Fatalf("records %+v, want the two tarballs", recs)
	}
	for _, r := range recs {
		o := r.Owner
		want, ok := map[string]string{"acme-keys": "1.0.0", "@acme/tools": "2.0.0-rc.1"}[o.Package]
		b, rerr := os.ReadFile(filepath.Join(root, r.Path))
		tgz, _ := os.ReadFile(tarballs[o.Package])
		sum := sha512.Sum512(b)
		if !ok || o.Version != want || o.Manager != "npm" || o.Digest.Algo != "sha512" || string(o.Digest.Sum) != string(sum[:]) || rerr != nil || string(b) != string(tgz) {
			t.Errorf("record %s %+v: want the tarball npm pack made, at a path npm wrote (%v)", r.Path, o, rerr)
		}
	}
}

// TestNPMTarballURL: registry tarball URLs give their package and version;
// other URLs the cache holds (package documents, git hosts' archives) do
// not.
func TestNPMTarballURL(t *testing.T) {
	for _, c := range []struct{ url, pkg, version string }{
		{"https://registry.npmjs.org/ssh2/-/ssh2-1.17.0.tgz", "ssh2", "1.17.0"},
		{"https://registry.npmjs.org/@eslint/config-helpers/-/config-helpers-0.7.0.tgz", "@eslint/config-helpers", "0.7.0"},
		{"https://registry.npmjs.org/@types%2fnode/-/node-22.1.0.tgz", "@types/node", "22.1.0"},
		{"http://127.0.0.1:4873/acme-keys/-/acme-keys-1.0.0-beta.2.tgz", "acme-keys", "1.0.0-beta.2"},
		{"https://npm.example.com/artifactory/api/npm/npm/lodash/-/lodash-4.17.21.tgz", "lodash", "4.17.21"},
		{"https://registry.npmjs.org/ssh2", "", ""},
		{"https://codeload.github.com/mscdex/ssh2/tar.gz/5c506eb", "", ""},
		{"https://registry.npmjs.org/ssh2/-/other-1.0.0.tgz", "", ""},
		{"file:///tmp/x/-/x-1.tgz", "", ""},
	} {
		pkg, version, ok := npmTarballURL(c.url)
		if ok != (c.pkg != "") || pkg != c.pkg || version != c.version {
			t.Errorf("npmTarballURL(%q) = %q, %q, %v; want %q, %q", c.url, pkg, version, ok, c.pkg, c.version)
		}
	}
}

// FuzzNPMBucket parses arbitrary index buckets: it must never panic, and
// every record it yields names a content file of the cache and a SHA-512.
func FuzzNPMBucket(f *testing.F) {
	f.Add([]byte("\n1666170934ce424c7a33fa4ec0f77024df6518f3\t{\"key\":\"make-fetch-happen:request-cache:https://registry.npmjs.org/ssh2/-/ssh2-1.17.0.tgz\",\"integrity\":\"sha512-wPldCk3asibAjQ/kziWQQt1Wh3PgDFpC0XpwclzKcdT1vql6KeYxf5LIt4nlFkUeR8WuphYMKqUA56X4rjbfgQ==\",\"time\":1796598764806,\"size\":257206}\n"))
	f.Fuzz(func(t *testing.T, bucket []byte) {
		entries := map[string]npmEntry{}
		parseNPMBucket(bucket, entries)
		recs, _ := npmRecords("/root/.npm/_cacache", entries, newPathBudget())
		for _, r := range recs {
			if len(r.Owner.Digest.Sum) != 64 || r.Owner.Package == "" || filepath.Dir(filepath.Dir(filepath.Dir(r.Path))) != "/root/.npm/_cacache/content-v2/sha512" {
				t.Fatalf("bad record %+v", r)
			}
		}
	})
}

// TestNPMBucketOrder: a bucket's lines apply in order, as cacache reads
// them: a later entry for a key replaces an earlier one, a null integrity
// (cacache's rm) removes it, and a line whose SHA-1 does not match its
// JSON (a torn write) is skipped.
func TestNPMBucketOrder(t *testing.T) {
	const key = `make-fetch-happen:request-cache:https://registry.npmjs.org/a/-/a-1.0.0.tgz`
	line := func(js string) string { s := sha1.Sum([]byte(js)); return "\n" + hex.EncodeToString(s[:]) + "\t" + js }
	one := `{"key":"` + key + `","integrity":"sha512-` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64)) + `"}`
	two := `{"key":"` + key + `","integrity":"sha512-` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 64)) + `"}`
	null := `{"key":"` + key + `","integrity":null}`
	torn := strings.Replace(line(one), "sha512-", "sha512-x", 1)
	for _, c := range []struct {
		name, bucket string
		want         byte // the digest's bytes; 0: no record
	}{
		{"one", line(one), 1},
		{"replaced", line(one) + line(two), 2},
		{"removed", line(one) + line(null), 0},
		{"removed, then written", line(one) + line(null) + line(two), 2},
		{"torn write", line(one) + torn, 1},
	} {
		entries := map[string]npmEntry{}
		parseNPMBucket([]byte(c.bucket), entries)
		recs, _ := npmRecords("/root/.npm/_cacache", entries, newPathBudget())
		if c.want == 0 && len(recs) != 0 || c.want != 0 && (len(recs) != 1 || recs[0].Owner.Digest.Sum[0] != c.want) {
			t.Errorf("%s: records %+v, want digest of %d", c.name, recs, c.want)
		}
	}
}
