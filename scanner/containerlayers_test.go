package scanner_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// selftestExample is where selftestPackage's package ships its gzip'd
// example key.
const selftestExample = "/usr/share/doc/selftest-keys/examples/example.key.gz"

// selftestPackage generates three keys with ssh-keygen, "packaged",
// "example" and "local" (each a PEM block and a newline), and builds with
// dpkg-deb into dir the package selftest-keys, which ships "packaged" at
// testutil.PkgKeyPath and "example", compressed by gzip, at
// selftestExample. It returns the keys and the package's path.
func selftestPackage(t *testing.T, dir string) (map[string][]byte, string) {
	t.Helper()
	keys := map[string][]byte{}
	for _, k := range []string{"packaged", "example", "local"} {
		f := filepath.Join(dir, "key-"+k)
		testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		keys[k] = b
	}
	testutil.Run(t, "gzip", "-n", "-9", filepath.Join(dir, "key-example"))
	exampleGz, err := os.ReadFile(filepath.Join(dir, "key-example.gz"))
	if err != nil {
		t.Fatal(err)
	}
	deb := testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "selftest-keys", Version: "1.0-1", Files: []testutil.DebFile{
		{Path: testutil.PkgKeyPath, Data: keys["packaged"]},
		{Path: selftestExample, Data: exampleGz},
	}})
	return keys, deb
}

// TestContainerLayerProvenance scans a VM disk that holds a Docker host's
// image store, as the real dockerd lays it out (testutil.DockerLoad) in
// an ext4 made by mkfs.ext4 -d, and one that holds Podman's
// (testutil.PodmanLoad). The image has two layers: the bottom one
// as dpkg installed a package (its key file, a gzip'd example key in its
// documentation, and the dpkg database), the top one re-adding the
// package's key file unchanged, and a key of its own in /etc. The VM
// itself has no package records.
//
//   - the key file in the top layer is info, owned by the package that
//     the bottom layer's records name: a layer's files are owned by the
//     records of the layers it stands on, not by the VM's;
//   - the gzip'd example is left undecoded as a package file unmodified,
//     so its key is no finding;
//   - the top layer's own key keeps its severity;
//   - with --no-downgrade, each has its rule's severity and the example is
//     decoded, so the test would fail without layer provenance.
func TestContainerLayerProvenance(t *testing.T) {
	for _, engine := range []struct {
		name        string
		load        func(t testing.TB, root, tag string, layerDirs ...string)
		root, store string // the engine's root in the guest, and its layers' directory
	}{
		{"docker", testutil.DockerLoad, "var/lib/docker", "/var/lib/docker/overlay2/"},
		{"podman", testutil.PodmanLoad, "var/lib/containers/storage", "/var/lib/containers/storage/overlay/"},
	} {
		t.Run(engine.name, func(t *testing.T) {
			testContainerLayerProvenance(t, engine.load, engine.root, engine.store)
		})
	}
}

func testContainerLayerProvenance(t *testing.T, load func(t testing.TB, root, tag string, layerDirs ...string), engineRoot, store string) {
	testutil.RequireTool(t, "ssh-keygen", "gzip", "mkfs.ext4", "dpkg-deb", "dpkg")
	dir := t.TempDir()
	keys, deb := selftestPackage(t, dir)
	bottom, top := filepath.Join(dir, "bottom"), filepath.Join(dir, "top")
	testutil.DpkgInstall(t, bottom, deb)
	// The bottom layer keeps the records, the top one the file.
	if err := os.Remove(filepath.Join(bottom, testutil.PkgKeyPath)); err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{testutil.PkgKeyPath: keys["packaged"], testutil.EtcKeyPath: keys["local"]} {
		full := filepath.Join(top, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	guest := filepath.Join(dir, "guest")
	load(t, filepath.Join(guest, engineRoot), "app:1", bottom, top)
	img := filepath.Join(dir, "container-host.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", guest, img, "64M")
	before := testutil.FileSnapshot(t, img)

	scan := func(noDowngrade bool) *report.Report {
		rep, err := scanner.New(scanner.Options{Engine: newEngine(t), NoDowngrade: noDowngrade}).Scan(context.Background(), []string{img})
		if err != nil || !rep.Complete {
			t.Fatalf("scan: %v %s", err, rep.IncompleteReason)
		}
		return rep
	}
	rep, plain := scan(false), scan(true)
	if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
		t.Fatal("the image changed during the scans")
	}
	find := func(r *report.Report, k string) *report.Finding {
		for i := range r.Findings {
			if r.Findings[i].Fingerprint == fp(bytes.TrimRight(keys[k], "\n")) {
				return &r.Findings[i]
			}
		}
		return nil
	}
	inLayer := func(f *report.Finding, p string) bool {
		for _, l := range f.Locations {
			if strings.HasPrefix(l.Path, store) && strings.HasSuffix(l.Path, "/diff"+p) {
				return true
			}
		}
		return false
	}

	f := find(rep, "packaged")
	if f == nil || f.Severity != report.SeverityInfo || !inLayer(f, testutil.PkgKeyPath) {
		t.Fatalf("the package's key in the top layer: %+v%s", f, summary(rep))
	}
	if len(f.Provenance) != 1 || f.Provenance[0].Manager != "dpkg" || f.Provenance[0].Package != "selftest-keys" || f.Provenance[0].Modified ||
		!strings.HasSuffix(f.Provenance[0].Path, "/diff"+testutil.PkgKeyPath) {
		t.Errorf("provenance %+v", f.Provenance)
	}
	if f := find(rep, "example"); f != nil {
		t.Errorf("the package's gzip'd example was decoded: %+v", f)
	}
	packaged := int64(0)
	for _, tg := range rep.Targets {
		for _, v := range tg.Views {
			if v.Decoding != nil {
				packaged += v.Decoding.UnmodifiedPackageFiles
			}
		}
	}
	if packaged < 1 {
		t.Errorf("no compressed file left as a package file unmodified")
	}
	if f := find(rep, "local"); f == nil || f.Severity == report.SeverityInfo || len(f.Provenance) != 0 || !inLayer(f, testutil.EtcKeyPath) {
		t.Errorf("the top layer's own key: %+v", f)
	}

	for _, k := range []string{"packaged", "example", "local"} {
		if f := find(plain, k); f == nil || f.Severity == report.SeverityInfo || len(f.Provenance) != 0 {
			t.Errorf("--no-downgrade: key %s: %+v", k, f)
		}
	}
	if f := find(plain, "example"); f != nil && !inLayer(f, selftestExample) {
		t.Errorf("--no-downgrade: the example key is not placed in its layer: %+v", f.Locations)
	}
}

// TestContainerdStoreProvenance scans a VM disk holding a containerd
// image store (a Kubernetes node's, or Docker 29's), as the real
// containerd lays it out (testutil.ContainerdImport): the layer's
// gzip'd blob in the content store and its unpacked copy in an
// overlayfs snapshot. The layer is a dpkg-installed package (a key file
// and a gzip'd example key) and a key of its own in /etc.
//
//   - the example's copy in the snapshot is left undecoded as a package
//     file unmodified, and so is its copy inside the blob (a tar member
//     with the same bytes): its key is no finding at all;
//   - the package's key is info in both copies (the blob's by
//     propagation);
//   - the layer's own key keeps its severity;
//   - with --no-downgrade, the example is decoded in both places.
func TestContainerdStoreProvenance(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "gzip", "mkfs.ext4", "dpkg-deb", "dpkg")
	dir := t.TempDir()
	keys, deb := selftestPackage(t, dir)
	layer := filepath.Join(dir, "layer")
	testutil.DpkgInstall(t, layer, deb)
	if err := os.MkdirAll(filepath.Join(layer, filepath.Dir(testutil.EtcKeyPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, testutil.EtcKeyPath), keys["local"], 0o600); err != nil {
		t.Fatal(err)
	}
	guest := filepath.Join(dir, "guest")
	testutil.ContainerdImport(t, filepath.Join(guest, "var/lib/containerd"), "app:1", layer)
	img := filepath.Join(dir, "k8s-node.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", guest, img, "64M")

	scan := func(noDowngrade bool) *report.Report {
		rep, err := scanner.New(scanner.Options{Engine: newEngine(t), NoDowngrade: noDowngrade}).Scan(context.Background(), []string{img})
		if err != nil || !rep.Complete {
			t.Fatalf("scan: %v %s", err, rep.IncompleteReason)
		}
		return rep
	}
	rep, plain := scan(false), scan(true)
	find := func(r *report.Report, k string) *report.Finding {
		for i := range r.Findings {
			if r.Findings[i].Fingerprint == fp(bytes.TrimRight(keys[k], "\n")) {
				return &r.Findings[i]
			}
		}
		return nil
	}
	const snapshots = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/"
	const blobs = "/var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/"
	// where says where a finding lies: in the snapshot's file p, and in
	// the blob as tar member p (decoded from the gzip'd layer).
	where := func(f *report.Finding, p string) (snapshot, blob bool) {
		for _, l := range f.Locations {
			if strings.HasPrefix(l.Path, snapshots) && strings.HasSuffix(l.Path, "/fs"+p) {
				snapshot = true
			}
			for _, st := range l.Decoded {
				if strings.HasPrefix(l.Path, blobs) && st.Codec == "tar" && "/"+st.Member == p {
					blob = true
				}
			}
		}
		return snapshot, blob
	}

	if f := find(rep, "example"); f != nil {
		t.Errorf("the package's gzip'd example was decoded: %+v", f.Locations)
	}
	packaged := int64(0)
	for _, tg := range rep.Targets {
		for _, v := range tg.Views {
			if v.Decoding != nil {
				packaged += v.Decoding.UnmodifiedPackageFiles
			}
		}
	}
	if packaged < 2 {
		t.Errorf("%d compressed files left as package files unmodified, want the snapshot's example and the blob's", packaged)
	}
	f := find(rep, "packaged")
	if f == nil || f.Severity != report.SeverityInfo {
		t.Fatalf("the package's key: %+v%s", f, summary(rep))
	}
	if s, b := where(f, testutil.PkgKeyPath); !s || !b {
		t.Errorf("the package's key: in the snapshot %v, in the blob %v: %+v", s, b, f.Locations)
	}
	if f := find(rep, "local"); f == nil || f.Severity == report.SeverityInfo {
		t.Errorf("the layer's own key: %+v", f)
	}
	f = find(plain, "example")
	if f == nil || f.Severity == report.SeverityInfo {
		t.Fatalf("--no-downgrade: the example key: %+v", f)
	}
	if s, b := where(f, selftestExample); !s || !b {
		t.Errorf("--no-downgrade: the example key in the snapshot %v, in the blob %v: %+v", s, b, f.Locations)
	}
}
