package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// FuzzScanBlob feeds arbitrary bytes to the layer reader as a blob of a
// (possibly compressed) tar: it must never panic, hang or allocate beyond
// its windows, whatever the decompressor and tar reader make of them.
// The layer's findings are then judged by the package records it kept,
// packed as a run holds them (layerProvenance), which must not panic
// either. A seed is a layer with dpkg records that own a file holding a
// key.
func FuzzScanBlob(f *testing.F) {
	s := newScanner(f, Options{MaxSpoolSize: 1 << 20})
	key := testSecrets(f).rsaPEM
	sum := md5.Sum([]byte(key))
	f.Add(tarBytes(f, []entry{
		dir("lib/"), {name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		file("var/lib/dpkg/status", "Package: keys\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n"),
		file("var/lib/dpkg/info/keys.md5sums", hex.EncodeToString(sum[:])+"  usr/share/keys/test.pem\n"),
		file("usr/share/keys/test.pem", key),
		file("opt/app/tests/other.pem", key+"\n"),
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := blob{Digest: "sha256:fuzz", Kind: blobTar, Size: int64(len(data)), open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}}
		res := s.scanBlobOnce(context.Background(), b)
		if res.Bytes < 0 || res.Scanned > res.Bytes+int64(len(data))+1<<20 {
			t.Fatalf("implausible counts: %d bytes, %d scanned", res.Bytes, res.Scanned)
		}
		findings := slices.Clone(res.Findings)
		for i := range findings {
			findings[i].Locations = slices.Clone(findings[i].Locations)
			for j := range findings[i].Locations {
				findings[i].Locations[j].Target, findings[i].Locations[j].LayerIndex = "fuzz", new(int)
			}
		}
		layerProvenance(context.Background(), "fuzz", []*blobResult{res}, []*pathIndex{&res.Index}, findings, maxImageRecordBytes, nil)
	})
}

// FuzzPathIndex checks that any entry list builds an index that survives
// its JSON form and answers the same.
func FuzzPathIndex(f *testing.F) {
	f.Add([]byte("a/b\x00.wh.c\x00d/.wh..wh..opq\x00e/"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b indexBuilder
		names := bytes.Split(data, []byte{0})
		for _, n := range names {
			b.add(cleanPath(string(n)), bytes.HasSuffix(n, []byte("/")))
		}
		x := b.build()
		raw, err := x.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var y pathIndex
		if err := y.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := cleanPath(string(n))
			if x.hides(p) != y.hides(p) {
				t.Fatalf("hides(%q) differs after JSON", p)
			}
		}
	})
}

// FuzzLocalArchive feeds arbitrary bytes to the readers of local image
// archives as a file: a docker save tarball or an OCI archive (a tar of
// an OCI layout), each recognised, resolved into images and scanned as
// ScanLocal does. They must never panic or hang, whatever the archive's
// index, manifests and links say; the seeds are both kinds of archive of
// a one-layer image holding a token.
func FuzzLocalArchive(f *testing.F) {
	img := imageOf(f, layer(f, "", file("app/.npmrc", "//registry.npmjs.org/:_authToken="+npmToken(f)+"\n")))
	var docker bytes.Buffer
	tag, err := name.NewTag("example.com/app:1")
	if err != nil {
		f.Fatal(err)
	}
	if err := tarball.Write(tag, img, &docker); err != nil {
		f.Fatal(err)
	}
	f.Add(docker.Bytes())
	dir := f.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		f.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		f.Fatal(err)
	}
	var entries []entry
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		entries = append(entries, entry{name: filepath.ToSlash(rel), body: b})
		return err
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tarBytes(f, entries))
	e := testEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A scanner of its own: a run's blob cache would answer for a
		// layer of an earlier input of the same digest.
		s := newScanner(t, Options{Engine: e, MaxSpoolSize: 1 << 20})
		p := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if !IsContainerSource(p) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := s.ScanLocal(ctx, []string{p})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Targets) == 0 {
			t.Fatalf("no target for a recognised archive")
		}
	})
}

// FuzzHashEntries feeds arbitrary bytes as a layer's tar to the second
// read that hashes its large files (hashEntries), asked for its first
// entries: it must never panic or hang, and an entry it hashes has the
// three digests.
func FuzzHashEntries(f *testing.F) {
	f.Add(tarBytes(f, []entry{dir("usr/"), file("usr/lib/app/omni.ja", "a packaged file\n"), file("opt/own.bin", "another\n")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := map[int]string{1: "/usr/lib/app/omni.ja", 2: "/opt/own.bin"}
		res := &blobResult{}
		if err := hashEntries(context.Background(), bytes.NewReader(data), want, res); err != nil {
			return
		}
		for p, sums := range res.Digests {
			if len(sums["md5"]) != 16 || len(sums["sha1"]) != 20 || len(sums["sha256"]) != 32 {
				t.Fatalf("%s: digests %v", p, sums)
			}
		}
	})
}

// FuzzDirTransport feeds arbitrary bytes as the manifest.json of a dir:
// transport directory that holds one layer and its config: recognised,
// resolved and scanned as ScanLocal does, it must never panic or hang,
// whatever blobs the manifest names. The seed is the image's own
// manifest.
func FuzzDirTransport(f *testing.F) {
	img := imageOf(f, layer(f, "", file("app/.npmrc", "//registry.npmjs.org/:_authToken="+npmToken(f)+"\n")))
	raw, err := img.RawManifest()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	// A manifest list (skopeo copy --all) names the image's manifest,
	// which lies beside it as DIGEST.manifest.json.
	mdigest, err := img.Digest()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
		mdigest.String() + `","size":` + strconv.Itoa(len(raw)) + `,"platform":{"architecture":"amd64","os":"linux"}}]}`))
	blobs := map[string][]byte{mdigest.Hex + ".manifest.json": raw}
	cfgName, err := img.ConfigName()
	if err != nil {
		f.Fatal(err)
	}
	if blobs[cfgName.Hex], err = img.RawConfigFile(); err != nil {
		f.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			f.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			f.Fatal(err)
		}
		if blobs[d.Hex], err = io.ReadAll(rc); err != nil {
			f.Fatal(err)
		}
		rc.Close()
	}
	e := testEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		files := map[string][]byte{"version": []byte(dirTransportVersion + "1\n"), "manifest.json": data}
		maps.Copy(files, blobs)
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if !IsContainerSource(dir) {
			t.Fatalf("a dir: transport directory is not recognised")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := newScanner(t, Options{Engine: e, MaxSpoolSize: 1 << 20}).ScanLocal(ctx, []string{dir})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Targets) == 0 {
			t.Fatalf("no target for a recognised directory")
		}
	})
}
