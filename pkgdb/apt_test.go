package pkgdb

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadAptCache has the real apt download two packages into a root, as
// `apt-get install --download-only` (or an upgrade that was never
// cleaned) leaves a machine, with its lists stored plain (Debian's
// default) and lz4-compressed (Acquire::GzipIndexes, as Debian's
// container images set it). Each cached .deb is recorded with the SHA-256
// of the bytes apt wrote, under the name apt gave it (an epoch's ":"
// quoted "%3a"). A .deb put in the cache by hand, which no index lists, is
// not recorded, and a cache with no .deb reads no index.
func TestReadAptCache(t *testing.T) {
	for _, gzipIndexes := range []bool{false, true} {
		name := "plain lists"
		if gzipIndexes {
			name = "GzipIndexes"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			debs := []string{
				testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "acme-agent", Version: "1:2.0-1", Files: []testutil.DebFile{{Path: "/opt/acme/agent.conf", Data: []byte("token = shipped\n")}}}),
				testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "acme-docs", Version: "2.0~rc1+dfsg-1", Files: []testutil.DebFile{{Path: "/usr/share/doc/acme/README", Data: []byte("docs\n")}}}),
				testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "not-downloaded", Version: "1", Files: []testutil.DebFile{{Path: "/opt/x", Data: []byte("x\n")}}}),
			}
			testutil.AptDownload(t, dir, root, debs, []string{"acme-agent", "acme-docs"}, gzipIndexes)
			lists, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*_Packages*"))
			if len(lists) != 1 || gzipIndexes != (filepath.Ext(lists[0]) == ".lz4") {
				t.Fatalf("apt's lists %q: want one index, lz4-compressed only with GzipIndexes", lists)
			}
			cache := filepath.Join(root, "var/cache/apt/archives")
			byHand := filepath.Join(cache, "hand-made_1_all.deb")
			if b, err := os.ReadFile(debs[2]); err != nil || os.WriteFile(byHand, b, 0o644) != nil {
				t.Fatal(err)
			}

			recs, err := readAptCache(context.Background(), hostRoot(root), nil, newPathBudget())
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"/var/cache/apt/archives/acme-agent_1%3a2.0-1_all.deb":     "acme-agent 1:2.0-1 all",
				"/var/cache/apt/archives/acme-docs_2.0~rc1+dfsg-1_all.deb": "acme-docs 2.0~rc1+dfsg-1 all",
			}
			if len(recs) != len(want) {
				t.Fatalf("records %+v, want %d", recs, len(want))
			}
			for _, r := range recs {
				b, err := os.ReadFile(filepath.Join(root, r.Path))
				if err != nil {
					t.Fatalf("record %s names no file apt wrote: %v", r.Path, err)
				}
				sum := sha256.Sum256(b)
				o := r.Owner
				if want[r.Path] != o.Package+" "+o.Version+" "+o.Arch || o.Manager != "apt" || o.Digest.Algo != "sha256" || string(o.Digest.Sum) != string(sum[:]) {
					t.Errorf("record %s: %+v, want %q with the file's SHA-256", r.Path, o, want[r.Path])
				}
			}
			// The lz4 index's decoder holds its memory at the scan's gate,
			// and gives it back.
			gate := decode.NewMemoryGate(decode.GatePool, decode.GatePerWalk)
			db := ReadGated(context.Background(), hostRoot(root), gate)
			if !slices.Contains(db.Managers, "apt") || len(db.Lookup("/var/cache/apt/archives/hand-made_1_all.deb")) != 0 {
				t.Errorf("Read: managers %q, the hand-made .deb's owners %+v", db.Managers, db.Lookup("/var/cache/apt/archives/hand-made_1_all.deb"))
			}
			if st := gate.Stats(); st.Held != 0 || gzipIndexes != (st.Peak > 0) {
				t.Errorf("gate %+v: want memory held while the lz4 index was read, and given back", st)
			}

			// apt-get clean: no .deb left, and no index is read (an
			// unreadable one would be an error).
			debsLeft, _ := filepath.Glob(filepath.Join(cache, "*.deb"))
			for _, d := range debsLeft {
				os.Remove(d)
			}
			os.WriteFile(lists[0], []byte("\x00not an index"), 0o644)
			if recs, err := readAptCache(context.Background(), hostRoot(root), nil, newPathBudget()); recs != nil || err != nil {
				t.Errorf("an empty cache: %+v, %v", recs, err)
			}
		})
	}
}

// TestAptCacheName checks aptCacheName against names that apt itself
// gave packages in TestReadAptCache and in Debian's archive (a "+" and
// "~" stay, ":" and "_" are quoted, "." is quoted in the architecture
// only).
func TestAptCacheName(t *testing.T) {
	for _, c := range []struct{ pkg, ver, arch, want string }{
		{"linux-image-6.12.117+deb13-amd64", "6.12.117-1", "amd64", "linux-image-6.12.117+deb13-amd64_6.12.117-1_amd64.deb"},
		{"libc6", "2.41-12", "amd64", "libc6_2.41-12_amd64.deb"},
		{"python3-yaml", "6.0.2-1+b2", "amd64", "python3-yaml_6.0.2-1+b2_amd64.deb"},
		{"tzdata", "2025b-4+deb13u1", "all", "tzdata_2025b-4+deb13u1_all.deb"},
		{"libpam-modules", "1:1.7.0-5", "amd64", "libpam-modules_1%3a1.7.0-5_amd64.deb"},
	} {
		if got := aptCacheName(c.pkg, c.ver, c.arch); got != c.want {
			t.Errorf("aptCacheName(%q, %q, %q) = %q, want %q", c.pkg, c.ver, c.arch, got, c.want)
		}
	}
}

// FuzzReadAptCache reads arbitrary package indexes, plain and compressed,
// beside a cache of two packages: it must never panic, and every record
// must name a cached .deb, a package and a SHA-256.
func FuzzReadAptCache(f *testing.F) {
	f.Add([]byte("Package: a\nVersion: 1:2-1\nArchitecture: all\nSHA256: 397168fff217504788b47accc680574d4732115e12d36f044c7f5ac7a9391e15\n\nPackage: b\nVersion: 1\nArchitecture: amd64\nSHA256: 00\n"), false)
	f.Add([]byte("Package: a\n Description continued\nVersion: 1:2-1\r\nArchitecture: all\nSHA256: 397168fff217504788b47accc680574d4732115e12d36f044c7f5ac7a9391e15"), true)
	f.Fuzz(func(t *testing.T, index []byte, compressed bool) {
		name := "var/lib/apt/lists/x_Packages"
		if compressed {
			name += ".gz"
		}
		root := memRoot{
			"var/cache/apt/archives/a_1%3a2-1_all.deb": {Data: []byte("!<arch>\n")},
			"var/cache/apt/archives/b_1_amd64.deb":     {Data: []byte("!<arch>\n")},
			name:                                       {Data: index},
		}
		recs, _ := readAptCache(context.Background(), root, nil, newPathBudget())
		for _, r := range recs {
			if _, ok := root[r.Path[1:]]; !ok || r.Owner.Package == "" || r.Owner.Manager != "apt" || r.Owner.Digest.Algo != "sha256" || len(r.Owner.Digest.Sum) != 32 {
				t.Fatalf("bad record %+v", r)
			}
		}
		Read(context.Background(), root)
	})
}

// TestAptCacheLimits: index files past the limits (how many files, how
// many bytes one decompresses to, all of them together) are cut, each
// with an error that says which limit, and what was read before stays
// recorded. The oversized indexes are gzip bombs made by gzip.
func TestAptCacheLimits(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	deb := testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "acme-agent", Version: "1:2.0-1", Files: []testutil.DebFile{{Path: "/opt/acme/agent.conf", Data: []byte("x\n")}}})
	testutil.AptDownload(t, dir, root, []string{deb}, []string{"acme-agent"}, false)
	// apt's own index sorts first ("_tmp_..."), then the bombs.
	testutil.Bash(t, filepath.Join(root, "var/lib/apt/lists"), `for n in a b c d; do head -c 8M < <(yes 'Description: padding') | gzip > ${n}_Packages.gz; done`)
	for _, c := range []struct {
		name string
		lim  aptLimits
		want []string
	}{
		{"one file's bytes", aptLimits{lists: 8, listBytes: 1 << 20, allBytes: 64 << 20}, []string{"a_Packages.gz: over 1048576 bytes decompressed", "d_Packages.gz: over 1048576 bytes decompressed"}},
		{"all files' bytes", aptLimits{lists: 8, listBytes: 1 << 20, allBytes: 5 << 19}, []string{"c_Packages.gz: over ", "package indexes over 2621440 bytes in all"}},
		{"files", aptLimits{lists: 2, listBytes: 64 << 20, allBytes: 64 << 20}, []string{"over 2 package indexes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			recs, err := readAptCacheWith(context.Background(), hostRoot(root), c.lim, nil, newPathBudget())
			if len(recs) != 1 || recs[0].Owner.Package != "acme-agent" {
				t.Errorf("records %+v, want acme-agent's, read before the limits", recs)
			}
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v, want %q", err, w)
				}
			}
		})
	}
}

// TestReadAptCacheHostileIndex: a guest's compressed Packages list whose
// xz header declares a 256 MiB dictionary (the real xz writes one for
// 11 bytes of text: 68 bytes in all) is an error that names the list,
// and nothing near that size is allocated; nor is a list named .xz that
// is no stream read as one.
func TestReadAptCacheHostileIndex(t *testing.T) {
	testutil.RequireTool(t, "xz")
	for _, c := range []struct{ name, script, err string }{
		{"dictionary", "printf 'Package: x\\n' | xz --lzma2=dict=256MiB > h_dists_s_main_binary-amd64_Packages.xz", "memory"},
		{"not xz", "printf 'Package: x\\n' > h_dists_s_main_binary-amd64_Packages.xz", "not a compressed stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			lists := filepath.Join(root, "var/lib/apt/lists")
			cache := filepath.Join(root, "var/cache/apt/archives")
			for _, d := range []string{lists, cache} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(cache, "x_1_all.deb"), []byte("!<arch>\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			testutil.Bash(t, lists, c.script)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			recs, err := readAptCache(context.Background(), hostRoot(root), nil, newPathBudget())
			runtime.ReadMemStats(&after)
			if len(recs) != 0 || err == nil || !strings.Contains(err.Error(), "_Packages.xz") || !strings.Contains(err.Error(), c.err) {
				t.Errorf("records %+v, error %v; want none, and an error naming the list and %q", recs, err, c.err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("reading the list allocated %d MiB", alloc>>20)
			}
		})
	}
}
