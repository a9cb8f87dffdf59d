package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// TestLocalSources writes the same two-layer image as an OCI layout and as
// a docker save tarball (go-containerregistry's layout and tarball writers)
// and checks that both are recognised and give the same findings.
func TestLocalSources(t *testing.T) {
	deleted, live := npmToken(t), npmToken(t)
	img := imageOf(t,
		layer(t, "", file("root/.npmrc", "_authToken="+deleted+"\n"), file("app/env", "NPM_TOKEN="+live+"\n")),
		layer(t, "", whiteout("root/.npmrc")))
	dir := t.TempDir()
	layoutDir := filepath.Join(dir, "layout")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "image.tar")
	tag, _ := name.NewTag("example.com/app:1")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	notSource := filepath.Join(dir, "plain.tar")
	if err := os.WriteFile(notSource, tarBytes(t, []entry{file("x", "y")}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want bool
	}{{layoutDir, true}, {tarPath, true}, {notSource, false}, {dir, false}, {filepath.Join(dir, "missing"), false}} {
		if got := IsContainerSource(tt.path); got != tt.want {
			t.Errorf("IsContainerSource(%s) = %v, want %v", filepath.Base(tt.path), got, tt.want)
		}
	}
	for _, src := range []string{layoutDir, tarPath} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			before := treeDigest(t, src)
			s := newScanner(t, Options{})
			rep, err := s.ScanLocal(context.Background(), []string{src})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Targets) != 1 || len(rep.Targets[0].Errors) != 0 {
				t.Fatalf("targets %+v", rep.Targets)
			}
			by := findingsByFP(rep)
			for tok, want := range map[string]string{deleted: report.ExposureLayer, live: report.ExposureLive} {
				if f := by[fp(tok)]; f == nil || len(f.Exposure) != 1 || f.Exposure[0] != want {
					t.Errorf("want exposure %s, got %+v", want, f)
				}
			}
			if after := treeDigest(t, src); after != before {
				t.Errorf("%s changed while scanned", src)
			}
		})
	}
}

// treeDigest hashes every file under p (or p itself).
func treeDigest(t *testing.T, p string) string {
	t.Helper()
	var all []string
	filepath.Walk(p, func(q string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			b, err := os.ReadFile(q)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, q, string(b))
		}
		return nil
	})
	return hashStrings(all)
}

// TestCompressions: gzip, zstd and uncompressed layers give the same finding.
func TestCompressions(t *testing.T) {
	tok := npmToken(t)
	es := []entry{file("etc/npmrc", "_authToken="+tok+"\n")}
	tests := []struct {
		name string
		l    v1.Layer
	}{
		{"gzip", layer(t, "", es...)},
		{"zstd", layer(t, "zstd", es...)},
		{"none", static.NewLayer(tarBytes(t, es), types.OCIUncompressedLayer)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScanner(t, Options{})
			rep := report.Merge(s.scanImage(context.Background(), testImage(t, "c", imageOf(t, tt.l))))
			f := findingsByFP(rep)[fp(tok)]
			if f == nil || f.Locations[0].Offset != int64(len("_authToken=")) {
				t.Fatalf("finding %+v", f)
			}
			if got := rep.Targets[0].Views[0].Attrs["compression"]; got != tt.name {
				t.Errorf("compression %q", got)
			}
		})
	}
}

// TestDirTransportManifestList: a manifest list that podman pushed to a
// dir: transport directory is read as an OCI layout's index: each
// platform's image is a target, and --platform picks one.
func TestDirTransportManifestList(t *testing.T) {
	amd, arm := npmToken(t), npmToken(t)
	dir := t.TempDir()
	var layers []string
	for i, tok := range []string{amd, arm} {
		d := filepath.Join(dir, fmt.Sprintf("layer%d", i))
		if err := os.MkdirAll(filepath.Join(d, "app"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "app/.npmrc"), []byte("//registry.npmjs.org/:_authToken="+tok+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, d)
	}
	out := filepath.Join(dir, "list")
	testutil.PodmanManifestList(t, out, []string{"linux/amd64", "linux/arm64"}, layers)
	if !IsContainerSource(out) {
		t.Fatal("IsContainerSource = false")
	}
	before := treeDigest(t, out)
	for _, tc := range []struct {
		platform  string
		platforms []string
		found     []string
		absent    []string
	}{
		{"", []string{"linux/amd64", "linux/arm64"}, []string{amd, arm}, nil},
		{"linux/arm64", []string{"linux/arm64"}, []string{arm}, []string{amd}},
	} {
		t.Run("platform="+tc.platform, func(t *testing.T) {
			rep, err := newScanner(t, Options{Platform: tc.platform}).ScanLocal(context.Background(), []string{out})
			if err != nil {
				t.Fatal(err)
			}
			var platforms []string
			for _, tg := range rep.Targets {
				if len(tg.Errors) != 0 || !strings.HasPrefix(tg.Path, out+"@sha256:") {
					t.Errorf("target %s: errors %v", tg.Path, tg.Errors)
				}
				platforms = append(platforms, tg.Platform)
			}
			slices.Sort(platforms)
			if !slices.Equal(platforms, tc.platforms) {
				t.Errorf("platforms %v, want %v", platforms, tc.platforms)
			}
			by := findingsByFP(rep)
			for _, tok := range tc.found {
				if f := by[fp(tok)]; f == nil || len(f.Exposure) != 1 || f.Exposure[0] != report.ExposureLive {
					t.Errorf("want a live finding, got %+v", f)
				}
			}
			for _, tok := range tc.absent {
				if f := by[fp(tok)]; f != nil {
					t.Errorf("the other platform's token found: %+v", f)
				}
			}
		})
	}
	if after := treeDigest(t, out); after != before {
		t.Errorf("%s changed while scanned", out)
	}
}

// TestPodmanSaveFormats: the same two-layer image, as the real podman
// saves it in each of its formats (a docker save tarball, an OCI archive,
// an OCI layout directory, a dir: transport directory), is recognised and
// gives the same findings:
// the token the second layer deletes is a layer's, the other live.
func TestPodmanSaveFormats(t *testing.T) {
	deleted, live := npmToken(t), npmToken(t)
	dir := t.TempDir()
	write := func(p, body string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lower, upper := filepath.Join(dir, "lower"), filepath.Join(dir, "upper")
	write(filepath.Join(lower, "root/.npmrc"), "//registry.npmjs.org/:_authToken="+deleted+"\n")
	write(filepath.Join(lower, "app/.npmrc"), "//registry.npmjs.org/:_authToken="+live+"\n")
	write(filepath.Join(upper, "root/.wh..npmrc"), "")
	var first []string
	for _, format := range []string{"docker-archive", "oci-archive", "oci-dir", "docker-dir"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(dir, format)
			testutil.PodmanSave(t, out, format, "localhost/imgaudit/app:1", lower, upper)
			if !IsContainerSource(out) {
				t.Fatalf("IsContainerSource(%s) = false", format)
			}
			before := treeDigest(t, out)
			rep, err := newScanner(t, Options{}).ScanLocal(context.Background(), []string{out})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Targets) != 1 || len(rep.Targets[0].Errors) != 0 || len(rep.Targets[0].Views) != 3 {
				t.Fatalf("targets %+v, want one image of 2 layers and a config, without errors", rep.Targets)
			}
			by := findingsByFP(rep)
			for tok, want := range map[string]string{deleted: report.ExposureLayer, live: report.ExposureLive} {
				if f := by[fp(tok)]; f == nil || len(f.Exposure) != 1 || f.Exposure[0] != want {
					t.Errorf("want exposure %s, got %+v", want, f)
				}
			}
			var got []string
			for _, f := range rep.Findings {
				got = append(got, f.Fingerprint+" "+strings.Join(f.Exposure, ","))
			}
			slices.Sort(got)
			if first == nil {
				first = got
			} else if !slices.Equal(got, first) {
				t.Errorf("findings %v, want those of docker-archive %v", got, first)
			}
			if after := treeDigest(t, out); after != before {
				t.Errorf("%s changed while scanned", out)
			}
		})
	}
}

// TestLayoutManifestCap: a layout whose index lists more manifests than a
// scan reads gives an error image for the rest, so that the run is
// incomplete (the remote path's rule); it dropped them silently before.
func TestLayoutManifestCap(t *testing.T) {
	img := imageOf(t, layer(t, "", file("app/env", "x\n")))
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	var index map[string]any
	if err := json.Unmarshal(testutil.FileSnapshot(t, filepath.Join(dir, "index.json")), &index); err != nil {
		t.Fatal(err)
	}
	one := index["manifests"].([]any)[0]
	for _, n := range []int{maxManifests, maxManifests + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			index["manifests"] = slices.Repeat([]any{one}, n)
			b, err := json.Marshal(index)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			images := newScanner(t, Options{}).resolveLayout(dir)
			var failed []string
			for _, im := range images {
				if im.Err != nil {
					failed = append(failed, im.Err.Error())
				}
			}
			switch {
			case n == maxManifests && (len(images) != n || len(failed) != 0):
				t.Errorf("%d images, errors %q: want %d images", len(images), failed, n)
			case n > maxManifests && (len(images) != maxManifests+1 || len(failed) != 1 || !strings.Contains(failed[0], "more than 4096 manifests")):
				t.Errorf("%d images, errors %q: want %d and an error for the rest", len(images), failed, maxManifests)
			}
		})
	}
}
