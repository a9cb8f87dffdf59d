package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// mergedFS flattens an image with go-containerregistry's own whiteout
// implementation (mutate.Extract) and returns path -> content.
func mergedFS(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			out[cleanPath(h.Name)] = string(b)
		}
	}
}

// TestExposureMatchesMergedFilesystem plants a distinct token in every
// file of layered images that delete and replace files in every way the
// OCI spec allows, and checks each finding's exposure against the
// filesystem that go-containerregistry's mutate.Extract builds: "live"
// exactly when the merged filesystem still holds the token.
func TestExposureMatchesMergedFilesystem(t *testing.T) {
	tok := func() string { return npmToken(t) }
	body := func(s string) string { return "//registry.npmjs.org/:_authToken=" + s + "\n" }
	type layerSpec func() []entry
	tests := []struct {
		name   string
		layers []layerSpec
	}{
		{"whiteout file", []layerSpec{
			func() []entry {
				return []entry{dir("root/"), file("root/.npmrc", body(tok())), file("etc/keep", body(tok()))}
			},
			func() []entry { return []entry{whiteout("root/.npmrc")} },
		}},
		{"overwrite file", []layerSpec{
			func() []entry { return []entry{file("app/config", body(tok()))} },
			func() []entry { return []entry{file("app/config", body(tok()))} },
		}},
		{"whiteout directory", []layerSpec{
			func() []entry {
				return []entry{dir("srv/"), dir("srv/a/"), file("srv/a/k", body(tok())), file("srv/b", body(tok()))}
			},
			func() []entry { return []entry{whiteout("srv/a")} },
		}},
		{"opaque directory", []layerSpec{
			func() []entry { return []entry{dir("opt/"), file("opt/x", body(tok())), file("optional", body(tok()))} },
			func() []entry { return []entry{dir("opt/"), opaque("opt/"), file("opt/y", body(tok()))} },
		}},
		{"file replaces directory", []layerSpec{
			func() []entry { return []entry{dir("var/"), file("var/secret", body(tok()))} },
			func() []entry { return []entry{file("var", "now a file\n")} },
		}},
		{"three layers, middle deletes, top re-adds other", []layerSpec{
			func() []entry { return []entry{file("a/t1", body(tok())), file("a/t2", body(tok()))} },
			func() []entry { return []entry{whiteout("a/t1")} },
			func() []entry { return []entry{file("a/t1", body(tok()))} },
		}},
	}
	s := newScanner(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var layers []v1.Layer
			var planted []string
			for _, spec := range tt.layers {
				es := spec()
				for _, e := range es {
					if i := bytes.Index(e.body, []byte("npm_")); i >= 0 {
						planted = append(planted, string(e.body[i:i+40]))
					}
				}
				layers = append(layers, layer(t, "", es...))
			}
			img := imageOf(t, layers...)
			fsys := mergedFS(t, img)
			rep := s.scanImage(context.Background(), testImage(t, "test", img))
			got := findingsByFP(report.Merge(rep))
			for _, secret := range planted {
				f := got[fp(secret)]
				if f == nil {
					t.Fatalf("token %s… not found; findings: %d", secret[:8], len(got))
				}
				live := false
				for _, c := range fsys {
					live = live || strings.Contains(c, secret)
				}
				want := report.ExposureLayer
				if live {
					want = report.ExposureLive
				}
				if len(f.Exposure) != 1 || f.Exposure[0] != want {
					t.Errorf("token in %s: exposure %v, want [%s] (merged filesystem by mutate.Extract)", f.Locations[0].Path, f.Exposure, want)
				}
			}
		})
	}
}

// TestDuplicateEntryLastWins: a tar with the same path twice leaves the
// later copy on disk when extracted in order, as container runtimes do;
// GNU tar is the oracle (go-containerregistry's mutate.Extract keeps the
// first copy, unlike the runtimes).
func TestDuplicateEntryLastWins(t *testing.T) {
	testutil.RequireTool(t, "tar")
	first, second := npmToken(t), npmToken(t)
	es := []entry{file("etc/dup", "_authToken="+first+"\n"), file("etc/dup", "_authToken="+second+"\n")}
	dirOut := t.TempDir()
	tarPath := filepath.Join(t.TempDir(), "l.tar")
	if err := os.WriteFile(tarPath, tarBytes(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "tar", "-xf", tarPath, "-C", dirOut)
	onDisk, err := os.ReadFile(filepath.Join(dirOut, "etc/dup"))
	if err != nil {
		t.Fatal(err)
	}
	s := newScanner(t, Options{})
	rep := report.Merge(s.scanImage(context.Background(), testImage(t, "dup", imageOf(t, layer(t, "", es...)))))
	by := findingsByFP(rep)
	for _, tok := range []string{first, second} {
		f := by[fp(tok)]
		if f == nil {
			t.Fatalf("token not found")
		}
		want := report.ExposureLayer
		if strings.Contains(string(onDisk), tok) {
			want = report.ExposureLive
		}
		if f.Exposure[0] != want {
			t.Errorf("exposure %v, want %s (GNU tar extraction)", f.Exposure, want)
		}
	}
}

// testImage turns an in-memory image into the scanner's image, reading
// blobs through go-containerregistry's image interface.
func testImage(t *testing.T, target string, img v1.Image) image {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	d, _ := img.Digest()
	return imageFromManifest(target, d.String(), mt, raw, "", func(h v1.Hash) blobSource {
		return blobSource{open: func(context.Context) (io.ReadCloser, error) {
			if cfg, _ := img.ConfigName(); cfg == h {
				b, err := img.RawConfigFile()
				return io.NopCloser(bytes.NewReader(b)), err
			}
			l, err := img.LayerByDigest(h)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		}}
	})
}

func TestRegistryTagWhiteoutsAndLayerDigest(t *testing.T) {
	sec := testSecrets(t)
	host := inProcessRegistry(t)
	l0 := layer(t, "", dir("root/"), file("root/.npmrc", "//registry.npmjs.org/:_authToken="+sec.npm+"\n"),
		dir("root/.ssh/"), file("root/.ssh/id_rsa", sec.rsaPEM), file("etc/hostname", "web\n"))
	l1 := layer(t, compression.ZStd, whiteout("root/.npmrc"), whiteout("root/.ssh/id_rsa"), file("etc/motd", "hello\n"))
	push(t, host+"/team/app:v1", imageOf(t, l0, l1))

	s := newScanner(t, Options{PlainHTTP: true})
	rep, err := s.ScanRefs(context.Background(), []string{host + "/team/app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Targets != 1 || rep.Summary.TargetsFailed != 0 || len(rep.Targets[0].Views) != 3 {
		t.Fatalf("targets: %+v", rep.Targets)
	}
	byFP := findingsByFP(rep)
	for _, secret := range []string{sec.npm, sec.rsaPEM} {
		f := byFP[fp(secret)]
		if f == nil {
			t.Fatalf("secret %q… not found in %d findings", secret[:12], len(rep.Findings))
		}
		if len(f.Exposure) != 1 || f.Exposure[0] != report.ExposureLayer || !f.OutsideGuestControl {
			t.Errorf("%s: exposure %v", f.Rule, f.Exposure)
		}
		for _, l := range f.Locations {
			if l.LayerDigest != layerDigest(t, l0) || l.LayerIndex == nil || *l.LayerIndex != 0 || l.ViewKind != "layer" {
				t.Errorf("%s: location %+v, want layer 0 %s", f.Rule, l, layerDigest(t, l0))
			}
			if !strings.HasPrefix(l.View, host+"/team/app:v1@sha256:") || !strings.Contains(l.View, "#layer:0:") {
				t.Errorf("view %q", l.View)
			}
		}
	}
	if v := rep.Targets[0].Views[1]; v.Attrs["compression"] != "zstd" {
		t.Errorf("layer 1 attrs %v, want zstd", v.Attrs)
	}
}

func TestMultiArchIndexAndPlatform(t *testing.T) {
	host := inProcessRegistry(t)
	amd, arm := npmToken(t), npmToken(t)
	mk := func(tok string) v1.Image {
		return imageOf(t, layer(t, "", file("etc/npmrc", "//r/:_authToken="+tok+"\n")))
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: mk(amd), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: mk(arm), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	pushIndex(t, host+"/multi:1", idx)
	tests := []struct {
		platform string
		want     []string
		absent   []string
	}{
		{"", []string{amd, arm}, nil},
		{"linux/arm64", []string{arm}, []string{amd}},
		{"linux/amd64", []string{amd}, []string{arm}},
	}
	for _, tt := range tests {
		t.Run("platform="+tt.platform, func(t *testing.T) {
			s := newScanner(t, Options{PlainHTTP: true, Platform: tt.platform})
			rep, err := s.ScanRefs(context.Background(), []string{host + "/multi:1"})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Targets) != len(tt.want) {
				t.Fatalf("%d targets, want %d", len(rep.Targets), len(tt.want))
			}
			by := findingsByFP(rep)
			for _, tok := range tt.want {
				f := by[fp(tok)]
				if f == nil || f.Exposure[0] != report.ExposureLive {
					t.Errorf("token missing or not live: %+v", f)
				}
			}
			for _, tok := range tt.absent {
				if by[fp(tok)] != nil {
					t.Errorf("token of another platform reported")
				}
			}
			for _, tg := range rep.Targets {
				if tg.Platform == "" || tg.Digest == "" {
					t.Errorf("target %s without platform/digest", tg.Path)
				}
			}
		})
	}
}

// TestBrokenLayerReportsOthers truncates the gzip stream of the middle
// layer: the error names the layer, and the layers around it still report.
func TestBrokenLayerReportsOthers(t *testing.T) {
	host := inProcessRegistry(t)
	t0, t1, t2 := npmToken(t), npmToken(t), npmToken(t)
	var filler strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&filler, "line %d of a file that makes the layer longer than one gzip block\n", i)
	}
	good0 := layer(t, "", file("a", "_authToken="+t0+"\n"))
	full := layer(t, "", file("b", "_authToken="+t1+"\n"+filler.String()), file("c", "_authToken="+t2+"\n"))
	rc, _ := full.Compressed()
	whole, _ := io.ReadAll(rc)
	broken := static.NewLayer(whole[:len(whole)*2/3], types.DockerLayer)
	good2 := layer(t, "", file("d", "_authToken="+t2+"x\n"))
	push(t, host+"/broken:1", imageOf(t, good0, broken, good2))

	s := newScanner(t, Options{PlainHTTP: true, Retries: -1})
	rep, err := s.ScanRefs(context.Background(), []string{host + "/broken:1"})
	if err != nil {
		t.Fatal(err)
	}
	tg := rep.Targets[0]
	if len(tg.Errors) != 1 || !strings.Contains(tg.Errors[0], "#layer:1:") || !strings.Contains(tg.Errors[0], "unexpected EOF") {
		t.Fatalf("errors %q", tg.Errors)
	}
	if rep.Summary.TargetsFailed != 0 {
		t.Errorf("a target with one broken layer counts as failed")
	}
	by := findingsByFP(rep)
	if by[fp(t0)] == nil || by[fp(t1)] == nil {
		t.Errorf("findings of layer 0 and of layer 1 before the break missing")
	}
	if by[fp(t2+"x")] == nil {
		t.Errorf("finding of layer 2 (after the broken layer) missing")
	}
}
