package registry

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// TestLayerPackageProvenance: an image whose first layer dpkg populated
// (two real packages, installed with dpkg --root, then tar'd by tar) and
// whose second layer copies one packaged file again. The image's package
// records come from the first layer and judge both layers' files, as on
// a disk: a key a package ships is info, in either layer, and so is the
// key in a gzip'd package file (decoded in the layer); a package file
// edited since install keeps its severity and says so; a key in /etc
// keeps it; one under tests/ is lowered a level. With NoDowngrade every
// key is at its rule's severity.
func TestLayerPackageProvenance(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "tar", "gzip")
	dir := t.TempDir()
	keys := map[string]string{}
	for _, k := range []string{"packaged", "gzipped", "edited", "etc", "tests"} {
		f := filepath.Join(dir, "key-"+k)
		testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		keys[k] = strings.TrimRight(string(b), "\n")
	}
	testutil.Run(t, "gzip", "-9n", filepath.Join(dir, "key-gzipped"))
	gz, err := os.ReadFile(filepath.Join(dir, "key-gzipped.gz"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		pkgKey    = "/usr/share/selftest/test.key"
		gzKey     = "/usr/share/selftest/test.key.gz"
		editedKey = "/usr/share/edited/edited.key"
		etcKey    = "/etc/app/secret.key"
		testsKey  = "/opt/app/tests/id_ed25519"
	)
	root := filepath.Join(dir, "root")
	testutil.DpkgInstall(t, root,
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "selftest-keys", Version: "1.0-1", Files: []testutil.DebFile{
			{Path: pkgKey, Data: []byte(keys["packaged"] + "\n")},
			{Path: gzKey, Data: gz},
		}}),
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "edited-keys", Version: "2.0-1", Files: []testutil.DebFile{
			{Path: editedKey, Data: []byte(keys["edited"] + "\n")},
		}}))
	write := func(root, p, data string) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(root, editedKey, keys["edited"]+"\n# edited by the admin\n")
	write(root, etcKey, keys["etc"]+"\n")
	write(root, testsKey, keys["tests"]+"\n")
	upper := filepath.Join(dir, "upper")
	write(upper, pkgKey, keys["packaged"]+"\n")
	img := testImage(t, "app", imageOf(t, tarLayer(t, root), tarLayer(t, upper)))

	// got: each key's finding as "severity [reason codes] provenance".
	got := func(rep *report.Report) map[string]string {
		out := map[string]string{}
		for name, k := range keys {
			f := findingsByFP(rep)[fp(k)]
			if f == nil {
				out[name] = "not found"
				continue
			}
			var codes, provs []string
			for _, r := range f.Reasons {
				codes = append(codes, r.Code)
			}
			for _, p := range f.Provenance {
				provs = append(provs, fmt.Sprintf("%s %s %s %s %s modified=%v", p.Manager, p.Package, p.Version, p.Path, p.Digest, p.Modified))
			}
			out[name] = fmt.Sprintf("%s %v %v", f.Severity, codes, provs)
		}
		return out
	}
	rep := report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img))
	want := map[string]string{
		"packaged": "info [package-file-unmodified] [dpkg selftest-keys 1.0-1 /usr/share/selftest/test.key md5 modified=false]",
		"gzipped":  "info [package-file-unmodified] [dpkg selftest-keys 1.0-1 /usr/share/selftest/test.key.gz md5 modified=false]",
		"edited":   "critical [package-file-modified] [dpkg edited-keys 2.0-1 /usr/share/edited/edited.key md5 modified=true]",
		"etc":      "critical [] []",
		"tests":    "high [test-path] []",
	}
	g := got(rep)
	for name, w := range want {
		if g[name] != w {
			t.Errorf("%s: %s\nwant %s", name, g[name], w)
		}
	}
	// The packaged key is in both layers: the first layer's copy is
	// hidden by the second's, and both are judged by the first layer's
	// records.
	f := findingsByFP(rep)[fp(keys["packaged"])]
	var layersOf []string
	for _, l := range f.Locations {
		layersOf = append(layersOf, fmt.Sprintf("%d %s", *l.LayerIndex, l.Exposure))
	}
	slices.Sort(layersOf)
	if !slices.Equal(layersOf, []string{"0 layer", "1 live"}) {
		t.Errorf("the packaged key in layers %q", layersOf)
	}

	// A nightly scan's state keeps each layer's records and digests: a
	// second run, from the state, judges the same.
	statePath := filepath.Join(dir, "state.json")
	var opened atomic.Int64 // layers are opened side by side
	for i := range img.Layers {
		orig := img.Layers[i].open
		img.Layers[i].open = func(ctx context.Context) (io.ReadCloser, error) { opened.Add(1); return orig(ctx) }
		img.Layers[i].openAt = nil
	}
	for run := range 2 {
		st, err := LoadState(statePath)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := newScanner(t, Options{State: st}).run(context.Background(), "registry", func(yield func(image) bool) { yield(img) })
		if err != nil {
			t.Fatal(err)
		}
		if g := got(rep); !maps.Equal(g, want) {
			t.Errorf("run %d with --state: %v\nwant %v", run, g, want)
		}
		if run == 1 && opened.Load() != 2 {
			t.Errorf("layers opened %d times in two runs: the second did not use the state", opened.Load())
		}
		if err := st.Save("test"); err != nil {
			t.Fatal(err)
		}
	}

	// The state holds the records packed. One written before they were
	// packed holds them raw, under "records", and one of version 1
	// (before 2026-12-08) holds them unscrubbed: such blobs are dropped
	// on load, with a note, and their layers read again: it judges the
	// same.
	raw, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var state map[string]any
	if err := json.Unmarshal(raw, &state); err != nil {
		t.Fatal(err)
	}
	packedLayers := 0
	for _, b := range state["blobs"].(map[string]any) {
		blob := b.(map[string]any)
		if _, ok := blob["records"]; ok {
			t.Errorf("the state holds unpacked records")
		}
		packed, ok := blob["records_zstd"].(map[string]any)
		if !ok {
			continue
		}
		packedLayers++
		dec, err := newRecordDecoder()
		if err != nil {
			t.Fatal(err)
		}
		unpacked := map[string][]byte{}
		for p, v := range packed {
			z, err := base64.StdEncoding.DecodeString(v.(string))
			if err != nil {
				t.Fatal(err)
			}
			if unpacked[p], err = dec.DecodeAll(z, nil); err != nil {
				t.Fatal(err)
			}
		}
		dec.Close()
		delete(blob, "records_zstd")
		blob["records"] = unpacked
	}
	if packedLayers != 1 {
		t.Errorf("%d layers with packed records in the state, want 1 (the dpkg layer)", packedLayers)
	}
	state["version"] = 1
	legacyPath := filepath.Join(dir, "legacy-state.json")
	legacy, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacyPath, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(legacyPath)
	if err != nil {
		t.Fatal(err)
	}
	if notes := st.LoadNotes(); len(notes) != 1 || !strings.Contains(notes[0], "1 cached layers whose package records were stored unscrubbed are dropped") {
		t.Errorf("version 1 state: notes %q", notes)
	}
	openedBefore := opened.Load()
	rep, err = newScanner(t, Options{State: st}).run(context.Background(), "registry", func(yield func(image) bool) { yield(img) })
	if err != nil {
		t.Fatal(err)
	}
	if g := got(rep); !maps.Equal(g, want) || opened.Load() != openedBefore+1 {
		t.Errorf("from a version 1 state with unpacked records (%d layers opened, want the records' 1): %v\nwant %v", opened.Load()-openedBefore, g, want)
	}

	// Past the run's cap on held records a layer keeps none, says so in
	// its view, and is not stored in the state: the packaged key is
	// judged as if no package listed it, and a later run reads the layer
	// again.
	cappedState := filepath.Join(dir, "capped-state.json")
	for run := range 2 {
		st, err := LoadState(cappedState)
		if err != nil {
			t.Fatal(err)
		}
		s := newScanner(t, Options{State: st})
		s.maxRecordBytes = 1
		openedBefore := opened.Load()
		rep, err := s.run(context.Background(), "registry", func(yield func(image) bool) { yield(img) })
		if err != nil {
			t.Fatal(err)
		}
		if g := got(rep)["packaged"]; g != "critical [] []" {
			t.Errorf("run %d past the records cap: packaged key %s", run, g)
		}
		var note string
		for _, v := range rep.Targets[0].Views {
			for _, n := range v.Notes {
				if strings.HasPrefix(n, "package records not kept: the run already holds") {
					note = n
				}
			}
		}
		if note == "" {
			t.Errorf("run %d: no view notes the records cap", run)
		}
		if want := int64(2 - run); opened.Load()-openedBefore != want { // the second run reads the records layer again
			t.Errorf("run %d past the records cap opened %d layers, want %d", run, opened.Load()-openedBefore, want)
		}
		if err := st.Save("test"); err != nil {
			t.Fatal(err)
		}
	}

	plain := got(report.Merge(newScanner(t, Options{NoDowngrade: true}).scanImage(context.Background(), img)))
	for name := range keys {
		if plain[name] != "critical [] []" {
			t.Errorf("NoDowngrade: %s: %s", name, plain[name])
		}
	}
}

// TestLayerGoModCache: a layer where the real go command downloaded a
// module (from a file:// proxy) into /root/go, as a Dockerfile's `RUN go
// build` leaves a builder image. The ziphash files are among the layer's
// package records, and the zip is hashed as the go command hashes it:
// the module's test key is info with the zip's go provenance, in the zip
// and in the extracted tree alike.
func TestLayerGoModCache(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "tar")
	dir := t.TempDir()
	key := sshKey(t)
	root := filepath.Join(dir, "root")
	testutil.GoModDownload(t, dir, filepath.Join(root, "root/go"), []testutil.GoModule{
		{Path: "example.com/acme", Version: "v1.2.0", Files: map[string][]byte{"testdata/id_ed25519": key}},
	})
	l1 := tarLayer(t, root)
	img := testImage(t, "builder", imageOf(t, l1))
	fd := findingsByFP(report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img)))[fp(strings.TrimRight(string(key), "\n"))]
	if fd == nil || fd.Severity != report.SeverityInfo || len(fd.Provenance) != 1 || fd.Provenance[0].Manager != "go" || fd.Provenance[0].Modified ||
		fd.Provenance[0].Path != "/root/go/pkg/mod/cache/download/example.com/acme/@v/v1.2.0.zip" || fd.Provenance[0].Digest != "h1" {
		t.Fatalf("the module's key: %+v", fd)
	}
	var inTree bool
	for _, l := range fd.Locations {
		inTree = inTree || l.Path == "/root/go/pkg/mod/example.com/acme@v1.2.0/testdata/id_ed25519"
	}
	if !inTree {
		t.Errorf("no location in the extracted tree: %+v", fd.Locations)
	}
}

// TestLayerPnpmStore: a layer where the real pnpm added a package (from
// a registry on 127.0.0.1), with root's store kept, as a Node.js image
// built with pnpm holds it: the store file and its hard link in
// node_modules, tar'd by tar. pnpm's index files are among the layer's
// record files, so the package's test key is info, owned by the store
// file, unmodified.
func TestLayerPnpmStore(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "tar")
	dir := t.TempDir()
	key := sshKey(t)
	root := filepath.Join(dir, "root")
	testutil.PnpmInstall(t, dir, filepath.Join(root, "root/.local/share/pnpm/store"), filepath.Join(root, "srv/app"), []testutil.NPMPackage{
		{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_ed25519": key}},
	})
	// Sorted, /root's store comes first: the file's data is the store
	// file's, and node_modules holds a hard link to it (tar writes a
	// file's data under the first of its names).
	l1 := tarLayer(t, root, "--sort=name")
	img := testImage(t, "node", imageOf(t, l1))
	k := fp(strings.TrimRight(string(key), "\n"))
	fd := findingsByFP(report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img)))[k]
	if fd == nil || fd.Severity != report.SeverityInfo || len(fd.Provenance) != 1 || fd.Provenance[0].Manager != "pnpm" ||
		fd.Provenance[0].Package != "acme-fixtures" || fd.Provenance[0].Modified ||
		!strings.HasPrefix(fd.Provenance[0].Path, "/root/.local/share/pnpm/store/v10/files/") {
		t.Fatalf("the package's key: %+v", fd)
	}
	if pf := findingsByFP(report.Merge(newScanner(t, Options{NoDowngrade: true}).scanImage(context.Background(), img)))[k]; pf == nil || pf.Severity == report.SeverityInfo {
		t.Errorf("--no-downgrade: %+v", pf)
	}
}

// TestLayerNodeCaches: for each Node.js package manager that keeps what it
// downloads, a layer where the real tool installed two packages (from a
// registry on 127.0.0.1) into an application, as a Dockerfile's `RUN npm
// install` or `RUN yarn install` leaves an image: npm's tarballs in
// /root/.npm (vouched by its cache index), yarn 1's in root's cache
// (/usr/local/share/.cache/yarn, by their .yarn-metadata.json), yarn 4's
// zips in /root/.yarn/berry/cache (Plug'n'Play, by /app/yarn.lock). Those
// records are among the layer's package records: the packages' test key
// is info with both kept files' provenance, one of them larger than the
// scan window and hashed as it streams. With --no-downgrade it is not.
func TestLayerNodeCaches(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "tar")
	for _, c := range []struct {
		name, manager string
		install       func(t *testing.T, dir, root string, p []testutil.NPMPackage)
		// kept says whether a provenance path is the kept file of pkg.
		kept func(path, pkg string) bool
		// modules: the packages are unpacked into /app/node_modules too.
		modules bool
	}{
		{"npm", "npm", func(t *testing.T, dir, root string, p []testutil.NPMPackage) {
			testutil.NPMInstall(t, dir, filepath.Join(root, "root/.npm"), filepath.Join(root, "app"), p)
		}, func(path, _ string) bool { return strings.HasPrefix(path, "/root/.npm/_cacache/content-v2/sha512/") }, true},
		{"yarn 1", "yarn", func(t *testing.T, dir, root string, p []testutil.NPMPackage) {
			testutil.YarnInstall(t, dir, filepath.Join(root, "usr/local/share/.cache/yarn"), filepath.Join(root, "app"), p)
		}, func(path, pkg string) bool {
			return strings.HasPrefix(path, "/usr/local/share/.cache/yarn/v") && strings.HasSuffix(path, "/node_modules/"+pkg+"/.yarn-tarball.tgz")
		}, true},
		{"yarn 4", "yarn", func(t *testing.T, dir, root string, p []testutil.NPMPackage) {
			testutil.YarnBerryInstall(t, dir, filepath.Join(root, "root"), filepath.Join(root, "app"), "pnp", p)
		}, func(path, pkg string) bool { return strings.HasPrefix(path, "/root/.yarn/berry/cache/"+pkg+"-npm-") }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			key := sshKey(t)
			big := make([]byte, 9<<20)
			if _, err := rand.Read(big); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(dir, "root")
			c.install(t, dir, root, []testutil.NPMPackage{
				{Name: "acme-fixtures", Version: "1.0.0", Files: map[string][]byte{"test/fixtures/id_ed25519": key}},
				{Name: "acme-big", Version: "3.1.4", Files: map[string][]byte{"data/blob.bin": big, "test/fixtures/id_ed25519": key}},
			})
			l1 := tarLayer(t, root)
			img := testImage(t, "node", imageOf(t, l1))
			k := fp(strings.TrimRight(string(key), "\n"))
			fd := findingsByFP(report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img)))[k]
			if fd == nil || fd.Severity != report.SeverityInfo {
				t.Fatalf("the packages' key: %+v", fd)
			}
			pkgs := map[string]bool{}
			for _, p := range fd.Provenance {
				pkgs[p.Package] = p.Manager == c.manager && !p.Modified && c.kept(p.Path, p.Package)
			}
			if len(pkgs) != 2 || !pkgs["acme-fixtures"] || !pkgs["acme-big"] {
				t.Errorf("provenance %+v, want both kept files unmodified (the big one hashed as it streamed)", fd.Provenance)
			}
			if c.modules && !slices.ContainsFunc(fd.Locations, func(l report.Location) bool {
				return l.Path == "/app/node_modules/acme-fixtures/test/fixtures/id_ed25519"
			}) {
				t.Errorf("no location in node_modules: %+v", fd.Locations)
			}
			if pf := findingsByFP(report.Merge(newScanner(t, Options{NoDowngrade: true}).scanImage(context.Background(), img)))[k]; pf == nil || pf.Severity == report.SeverityInfo {
				t.Errorf("--no-downgrade: %+v", pf)
			}
		})
	}
}

// TestLayerAptLists: a layer that kept apt's lists (a Dockerfile's
// apt-get update without rm -rf /var/lib/apt/lists) holds Translation-en,
// whose package descriptions quote example credentials. Its InRelease is
// among the layer's package records, and the list, larger than the scan
// window, is hashed with SHA-256 as it streams: the credential is info,
// with the list's provenance. With --no-downgrade it is not. Debian's
// and Ubuntu's images set Acquire::GzipIndexes, so apt keeps its lists
// compressed (.lz4): what they decode to is hashed, as the list streams
// (one larger than the window once compressed) or from the window that
// holds it whole.
func TestLayerAptLists(t *testing.T) {
	testutil.RequireTool(t, "tar")
	for _, c := range []struct {
		name   string
		conf   []string
		size   int  // of Translation-en
		random bool // descriptions that lz4 cannot compress
		digest string
	}{
		{"plain", nil, 9 << 20, false, "sha256"},
		{"GzipIndexes streamed", []string{`Acquire::GzipIndexes "true";`}, 9 << 20, true, "sha256-decoded"},
		{"GzipIndexes whole", []string{`Acquire::GzipIndexes "true";`}, 1 << 20, false, "sha256-decoded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "root")
			const cred = "Xk8pq2vL9w"
			var tr strings.Builder
			for i := 0; tr.Len() < c.size; i++ {
				desc := fmt.Sprintf("number %d", i)
				if c.random {
					b := make([]byte, 600)
					rand.Read(b)
					desc = base64.StdEncoding.EncodeToString(b)
				}
				fmt.Fprintf(&tr, "Package: acme-%d\nDescription-md5: %032x\nDescription-en: acme module %d\n A module of acme, %s.\n\n", i, i, i, desc)
			}
			tr.WriteString("Package: acme-identity\nDescription-md5: 0123456789abcdef0123456789abcdef\nDescription-en: acme identity service\n  connection = mysql://keystone:" + cred + "@127.0.0.1/keystone\n\n")
			testutil.AptUpdate(t, dir, root, "trixie", map[string][]byte{"main/i18n/Translation-en": []byte(tr.String())}, true, c.conf...)
			if c.conf != nil {
				kept, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*_Translation-en.lz4"))
				if len(kept) != 1 {
					t.Fatalf("apt kept %q, want Translation-en.lz4", kept)
				}
				fi, err := os.Stat(kept[0])
				if err != nil {
					t.Fatal(err)
				}
				if large := fi.Size() > scanWindow; large != c.random {
					t.Fatalf("Translation-en.lz4 is %d bytes: larger than the window %v, want %v", fi.Size(), large, c.random)
				}
			}
			img := testImage(t, "apt", imageOf(t, tarLayer(t, root)))
			fd := findingsByFP(report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img)))[fp(cred)]
			if fd == nil || fd.Severity != report.SeverityInfo || len(fd.Provenance) != 1 || fd.Provenance[0].Manager != "apt" ||
				fd.Provenance[0].Package != "main/i18n/Translation-en" || fd.Provenance[0].Modified || fd.Provenance[0].Digest != c.digest {
				t.Fatalf("the description's credential: %+v", fd)
			}
			if pf := findingsByFP(report.Merge(newScanner(t, Options{NoDowngrade: true}).scanImage(context.Background(), img)))[fp(cred)]; pf == nil || pf.Severity == report.SeverityInfo {
				t.Errorf("--no-downgrade: %+v", pf)
			}
			if c.conf == nil {
				return
			}
			// --no-decode: the raw scan reads the credential in lz4's
			// literals, and the list is decoded only to be hashed.
			if nd := findingsByFP(report.Merge(newScanner(t, Options{NoDecode: true}).scanImage(context.Background(), img)))[fp(cred)]; nd == nil || nd.Severity != report.SeverityInfo ||
				len(nd.Provenance) != 1 || nd.Provenance[0].Modified || nd.Provenance[0].Digest != c.digest {
				t.Errorf("--no-decode: %+v", nd)
			}
		})
	}
}

// TestImageRecordsCap: an image's judging holds its merged package
// records unpacked within a cap. The first layer is dpkg's (a real
// package shipping a key), the two above it each add a large md5sums of
// another package. Where the cap fits all, the key is info by the
// package's record; where it fits the first two layers, the third is
// not read, with a note, and the key is still info; where it does not
// fit the first layer's records, none are read and the key keeps its
// rule's severity.
func TestImageRecordsCap(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "tar")
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "key")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", keyPath)
	key, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	testutil.DpkgInstall(t, root, testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "selftest-keys", Version: "1.0-1",
		Files: []testutil.DebFile{{Path: "/usr/share/selftest/test.key", Data: key}}}))
	filler := func(name string) v1.Layer {
		var b strings.Builder
		for i := range 20000 {
			fmt.Fprintf(&b, "%032x  usr/share/%s/file%d\n", i, name, i)
		}
		return layer(t, "", file("var/lib/dpkg/info/"+name+".md5sums", b.String()))
	}
	img := testImage(t, "app", imageOf(t, tarLayer(t, root), filler("big1"), filler("big2")))

	s := newScanner(t, Options{})
	s.scanImage(context.Background(), img)
	var sizes []int64 // each layer's records, unpacked
	for _, b := range img.Layers {
		dec, err := newRecordDecoder()
		if err != nil {
			t.Fatal(err)
		}
		recs, err := s.blobs[b.Digest].unpackedRecords(dec)
		dec.Close()
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range recs {
			n += int64(len(r))
		}
		sizes = append(sizes, n)
	}
	for _, c := range []struct {
		name     string
		cap      int64
		cutAt    int // the layer named in the note; -1: no note
		severity string
	}{
		{"all fit", maxImageRecordBytes, -1, report.SeverityInfo},
		{"two layers fit", sizes[0] + sizes[1], 2, report.SeverityInfo},
		{"the first layer does not fit", sizes[0] - 1, 0, report.SeverityCritical},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newScanner(t, Options{})
			s.maxImageRecordBytes = c.cap
			rep := report.Merge(s.scanImage(context.Background(), img))
			var notes []string
			for _, n := range rep.Targets[0].Notes {
				if strings.Contains(n, "package records pass") {
					notes = append(notes, n)
				}
			}
			want := []string(nil)
			if c.cutAt >= 0 {
				want = []string{fmt.Sprintf("package provenance: the image's package records pass %d MiB at layer %d: that layer's and those above it are not read, so the files they list get no package provenance", c.cap>>20, c.cutAt)}
			}
			if !slices.Equal(notes, want) {
				t.Errorf("cap %d (layers' records %v): notes %q, want %q", c.cap, sizes, notes, want)
			}
			if f := findingsByFP(rep)[fp(strings.TrimRight(string(key), "\n"))]; f == nil || f.Severity != c.severity {
				t.Errorf("cap %d: the packaged key %+v, want severity %s", c.cap, f, c.severity)
			}
		})
	}
}

// TestLargeFilesHashedForProvenance: a packaged file too large for the
// scan window (9 MiB; a browser's omni.ja is 43 MB) that holds a key is
// judged by the image's package records as a small one is: the layer is
// read again for its digests, streamed and decompressed (a registry's
// gzip layer) or in place (podman's docker save tarball). A key in a
// large file no package ships keeps its severity.
func TestLargeFilesHashedForProvenance(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "tar")
	dir := t.TempDir()
	packagedKey, ownKey := strings.TrimRight(string(sshKey(t)), "\n"), strings.TrimRight(string(sshKey(t)), "\n")
	big := func(key string) []byte {
		var b strings.Builder
		for b.Len() < 9<<20 {
			fmt.Fprintf(&b, "filler line %d\n", b.Len())
		}
		b.WriteString(key + "\n")
		return []byte(b.String())
	}
	root := filepath.Join(dir, "root")
	testutil.DpkgInstall(t, root, testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "big-app", Version: "1.0-1",
		Files: []testutil.DebFile{{Path: "/usr/lib/big-app/omni.ja", Data: big(packagedKey)}}}))
	if err := os.MkdirAll(filepath.Join(root, "opt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "opt/own.bin"), big(ownKey), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, rep *report.Report) {
		t.Helper()
		for key, want := range map[string]string{
			packagedKey: "info [package-file-unmodified] [dpkg big-app /usr/lib/big-app/omni.ja md5 modified=false]",
			ownKey:      "critical [] []",
		} {
			f := findingsByFP(rep)[fp(key)]
			if f == nil {
				t.Errorf("a key was not found")
				continue
			}
			var codes, provs []string
			for _, r := range f.Reasons {
				codes = append(codes, r.Code)
			}
			for _, p := range f.Provenance {
				provs = append(provs, fmt.Sprintf("%s %s %s %s modified=%v", p.Manager, p.Package, p.Path, p.Digest, p.Modified))
			}
			if got := fmt.Sprintf("%s %v %v", f.Severity, codes, provs); got != want {
				t.Errorf("the key in %s: %s, want %s", f.Locations[0].Path, got, want)
			}
		}
		for _, tg := range rep.Targets {
			for _, v := range tg.Views {
				for _, n := range v.Notes {
					if strings.Contains(n, "package provenance") {
						t.Errorf("view %s: %s", v.ID, n)
					}
				}
			}
		}
	}
	t.Run("streamed", func(t *testing.T) {
		img := testImage(t, "app", imageOf(t, tarLayer(t, root)))
		check(t, report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img)))
	})
	t.Run("in place", func(t *testing.T) {
		out := filepath.Join(dir, "app.tar")
		testutil.PodmanSave(t, out, "docker-archive", "localhost/imgaudit/big:1", root)
		rep, err := newScanner(t, Options{}).ScanLocal(context.Background(), []string{out})
		if err != nil {
			t.Fatal(err)
		}
		check(t, rep)
	})
}
