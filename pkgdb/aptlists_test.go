package pkgdb

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadAptLists has the real apt-get update fetch a repository's
// indexes into a root's lists, from a Release file that apt-ftparchive
// wrote, kept plain (Release) or signed by gpg (InRelease, as Debian's
// archive serves it). Every list file apt kept is recorded, under its
// path in the Release file, with the SHA-256 of the bytes apt wrote; the
// Release file itself is not. A file put in the lists by hand is not
// recorded. With Acquire::GzipIndexes (Debian's container images), apt
// keeps each list compressed by itself (.lz4), and the record holds the
// decoded digest: the SHA-256 of the index as the repository served it.
func TestReadAptLists(t *testing.T) {
	for _, c := range []struct {
		name    string
		signed  bool
		conf    []string
		release string // the Release file apt keeps
		ext     string // what apt adds to a list's name
	}{
		{"Release", false, nil, "Release", ""},
		{"InRelease", true, nil, "InRelease", ""},
		{"GzipIndexes", true, []string{`Acquire::GzipIndexes "true";`}, "InRelease", ".lz4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			indexes := map[string][]byte{
				"main/binary-amd64/Packages": []byte("Package: acme\nVersion: 1\nArchitecture: all\nDescription-md5: 0123456789abcdef0123456789abcdef\n\n"),
				"main/i18n/Translation-en":   []byte("Package: acme\nDescription-md5: 0123456789abcdef0123456789abcdef\nDescription-en: acme\n connection = mysql://keystone:foobar@127.0.0.1/keystone\n\n"),
			}
			testutil.AptUpdate(t, dir, root, "test", indexes, c.signed, c.conf...)
			lists := filepath.Join(root, "var/lib/apt/lists")
			if err := os.WriteFile(filepath.Join(lists, "by-hand_Packages"), []byte("Package: x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			kept, _ := filepath.Glob(filepath.Join(lists, "*_*"))
			recs, err := readAptLists(context.Background(), hostRoot(root), 256, newPathBudget())
			if err != nil {
				t.Fatal(err)
			}
			byPath := map[string][]Record{}
			for _, r := range recs {
				byPath[r.Path] = append(byPath[r.Path], r)
			}
			seen := 0
			for _, f := range kept {
				base := filepath.Base(f)
				rs, ok := byPath["/var/lib/apt/lists/"+base]
				switch {
				case strings.HasSuffix(base, "_"+c.release):
					if ok {
						t.Errorf("the Release file %s is recorded", base)
					}
					seen++
				case base == "by-hand_Packages":
					if ok {
						t.Errorf("a list file no Release lists is recorded: %+v", rs)
					}
				default:
					index, found := strings.CutSuffix(strings.TrimPrefix(base, strings.SplitAfter(base, "_dists_test_")[0]), c.ext)
					b := indexes[strings.ReplaceAll(index, "_", "/")]
					algo := "sha256"
					if c.ext != "" {
						algo = "sha256-decoded"
					} else if b, err = os.ReadFile(f); err != nil {
						t.Fatal(err)
					}
					sum := sha256.Sum256(b)
					if !found || b == nil || len(rs) != 1 {
						t.Fatalf("list %s: records %+v, want one for index %s", base, rs, index)
					}
					o := rs[0].Owner
					if o.Manager != "apt" || o.Version != "test" || o.Digest.Algo != algo || string(o.Digest.Sum) != string(sum[:]) ||
						strings.ReplaceAll(o.Package, "/", "_") != index {
						t.Errorf("list %s: record %+v, want its path in the Release file and the %s of %s", base, rs[0], algo, index)
					}
					if c.ext != "" {
						// What apt kept decodes to what the repository served.
						fl, err := os.Open(f)
						if err != nil {
							t.Fatal(err)
						}
						got, err := DecodedHash(context.Background(), fl, algo, 1<<20, nil, nil)
						fl.Close()
						if err != nil || string(got) != string(sum[:]) {
							t.Errorf("DecodedHash(%s) = %x, %v; want %x", base, got, err, sum)
						}
					}
					seen++
				}
			}
			if seen != 3 {
				t.Errorf("apt kept %q, want the %s file and two indexes", kept, c.release)
			}
			db := Read(context.Background(), hostRoot(root))
			for p := range indexes {
				if owners := db.Lookup("/var/lib/apt/lists/" + strings.ReplaceAll(filepath.Join(dir, "apt-dists", "dists", "test", p), "/", "_") + c.ext); len(owners) != 1 {
					t.Errorf("Read: %s has owners %+v, want the apt list", p, owners)
				}
			}
		})
	}
}

// TestParseAptReleaseRejects: a Release file that is not one is an error
// that names the offset, and entries that are not "digest size path"
// with a relative path are skipped.
func TestParseAptReleaseRejects(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, text string
		want       []string // paths recorded, or nil with an error
		err        string
	}{
		{"entries", "Codename: x\nSHA256:\n " + sum + " 10 main/i18n/Translation-en\n", []string{"main/i18n/Translation-en"}, ""},
		{"parent", "SHA256:\n " + sum + " 10 ../../etc/shadow\n " + sum + " 10 /etc/shadow\n " + sum + " 10 a/../b\n", nil, ""},
		{"short digest", "SHA256:\n abcd 10 main/x\n", nil, ""},
		{"SHA512 only", "SHA512:\n " + sum + sum + " 10 main/x\n", []string{"main/x"}, ""},
		{"not a field", "Codename: x\nno colon here\n", nil, "offset 12"},
		{"armor without body", "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n", nil, "offset 0"},
	} {
		rel, err := parseAptRelease([]byte(c.text))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one at %q", c.name, err, c.err)
			}
			continue
		}
		var got []string
		for _, ix := range rel.indexes {
			got = append(got, ix.path)
		}
		if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

// FuzzParseAptRelease: any bytes parse without a panic, and every index
// recorded has a full digest and a relative path.
func FuzzParseAptRelease(f *testing.F) {
	sum := strings.Repeat("0f", 32)
	f.Add([]byte("Codename: trixie\nSHA256:\n " + sum + " 34891003 main/i18n/Translation-en\n"))
	f.Add([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: x\nSHA256:\n " + sum + " 1 Packages\n-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n"))
	f.Add([]byte("SHA512:\n " + sum + sum + " 1 a/b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rel, err := parseAptRelease(b)
		if err != nil {
			return
		}
		for _, ix := range rel.indexes {
			if len(ix.sum) != 32 && len(ix.sum) != 64 || strings.HasPrefix(ix.path, "/") || strings.Contains("/"+ix.path+"/", "/../") {
				t.Fatalf("index %+v", ix)
			}
		}
	})
}
