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

// TestReadPnpmStore has the real pnpm add two packages (one scoped, one
// file of it executable) from a registry on 127.0.0.1 into an
// application, with its store in a user's home, as pnpm leaves a machine.
// Every file of both packages is recorded once, at the path where pnpm
// stored it, with its package, version and the SHA-512 of the bytes
// there; the executable one under its "-exec" name.
func TestReadPnpmStore(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testutil.PnpmInstall(t, dir, filepath.Join(root, "home/dev/.local/share/pnpm/store"), filepath.Join(root, "srv/app"), []testutil.NPMPackage{
		{Name: "acme-keys", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_rsa": []byte("fixture\n"), "bin/cli.js": []byte("#!/usr/bin/env node\n")}, Executable: []string{"bin/cli.js"}},
		{Name: "@acme/tools", Version: "2.0.0-rc.1", Files: map[string][]byte{"index.js": []byte("module.exports = 1\n")}},
	})
	recs, err := readPnpmStore(context.Background(), hostRoot(root), newPathBudget())
	if err != nil {
		t.Fatal(err)
	}
	// Each package's files and its package.json: 3 and 2.
	byPkg := map[string]int{}
	exec := 0
	for _, r := range recs {
		o := r.Owner
		want, ok := map[string]string{"acme-keys": "1.0.0", "@acme/tools": "2.0.0-rc.1"}[o.Package]
		b, rerr := os.ReadFile(filepath.Join(root, r.Path))
		sum := sha512.Sum512(b)
		if !ok || o.Version != want || o.Manager != "pnpm" || o.Digest.Algo != "sha512" || string(o.Digest.Sum) != string(sum[:]) || rerr != nil ||
			!strings.HasPrefix(r.Path, "/home/dev/.local/share/pnpm/store/v") {
			t.Errorf("record %s %+v: want a file pnpm stored, with its digest (%v)", r.Path, o, rerr)
		}
		byPkg[o.Package]++
		if strings.HasSuffix(r.Path, "-exec") {
			exec++
		}
	}
	if byPkg["acme-keys"] != 3 || byPkg["@acme/tools"] != 2 || exec != 1 {
		t.Errorf("records by package %v, %d executable; want 3 and 2, 1", byPkg, exec)
	}
}

// TestPnpmRecords: an index names its files by their SHA-512; one whose
// integrity is no SHA-512 has no record, an index with no package name
// is an error.
func TestPnpmRecords(t *testing.T) {
	const sri = "sha512-" + "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
	for _, tc := range []struct {
		in      string
		paths   []string
		wantErr bool
	}{
		{`{"name":"a","version":"1","files":{"x.js":{"integrity":"` + sri + `","mode":420},"bin":{"integrity":"` + sri + `","mode":493}}}`,
			[]string{"/s/files/cf/83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e-exec", "/s/files/cf/83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"}, false},
		{`{"name":"a","version":"1","files":{"x.js":{"integrity":"sha1-AAAA","mode":420}}}`, nil, false},
		{`{"version":"1","files":{}}`, nil, true},
		{`not json`, nil, true},
	} {
		recs, err := pnpmRecords("/s", "index.json", []byte(tc.in), newPathBudget())
		var paths []string
		for _, r := range recs {
			paths = append(paths, r.Path)
		}
		if (err != nil) != tc.wantErr || strings.Join(paths, " ") != strings.Join(tc.paths, " ") {
			t.Errorf("%s: %q, %v", tc.in, paths, err)
		}
	}
}

func FuzzPnpmRecords(f *testing.F) {
	f.Add([]byte(`{"name":"nan","version":"2.30.0","requiresBuild":false,"files":{"nan.h":{"checkedAt":1796609034952,"integrity":"sha512-h8DdUUB1/Pp3CgjJ0RkikpxG+tpiUPze6r7RTQDwQSbV1SrDlMU9teuhSwUArzqZ+22YMCOkgYPgNVW7eFwbiA==","mode":420,"size":28482}}}`))
	f.Add([]byte(`{"name":"a","files":{"b":{"integrity":"sha512-x","mode":493}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := pnpmRecords("/root/.local/share/pnpm/store/v10", "index.json", data, newPathBudget())
		if err != nil {
			return
		}
		for _, r := range recs {
			rest, ok := strings.CutPrefix(r.Path, "/root/.local/share/pnpm/store/v10/files/")
			if !ok || len(r.Owner.Digest.Sum) != 64 || r.Owner.Package == "" || strings.Contains(rest, "..") {
				t.Fatalf("record %+v", r)
			}
		}
	})
}
