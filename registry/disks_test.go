package registry

import (
	"context"
	"os"
	"path/filepath"
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

// overlayPair makes, with qemu-img, a qcow2 base holding one secret and an
// overlay on it holding another, whose backing file name is backing.
func overlayPair(t *testing.T, backing string) (base, overlay []byte, baseTok, topTok string) {
	t.Helper()
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	baseTok, topTok = npmToken(t), npmToken(t)
	img := make([]byte, 4<<20)
	copy(img[64<<10:], "NPM_TOKEN="+baseTok+"\n")
	rawBase := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(rawBase, img, 0o644); err != nil {
		t.Fatal(err)
	}
	copy(img[1<<20:], "NPM_TOKEN="+topTok+"\n")
	rawTop := filepath.Join(dir, "top.raw")
	if err := os.WriteFile(rawTop, img, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "qemu-img", "convert", "-O", "qcow2", rawBase, filepath.Join(dir, "base.qcow2"))
	testutil.Run(t, "qemu-img", "convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", rawTop, filepath.Join(dir, "overlay.qcow2"))
	if backing != "base.qcow2" {
		testutil.Run(t, "qemu-img", "rebase", "-u", "-b", backing, "-F", "qcow2", filepath.Join(dir, "overlay.qcow2"))
	}
	base, _ = os.ReadFile(filepath.Join(dir, "base.qcow2"))
	overlay, _ = os.ReadFile(filepath.Join(dir, "overlay.qcow2"))
	return base, overlay, baseTok, topTok
}

// writeSource writes img as an OCI layout or a docker save tarball.
func writeSource(t *testing.T, kind string, img v1.Image) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), kind)
	switch kind {
	case "oci-layout":
		lp, err := layout.Write(p, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := lp.AppendImage(img); err != nil {
			t.Fatal(err)
		}
	case "docker-save":
		tag, _ := name.NewTag("example.com/vm:1")
		if err := tarball.WriteToFile(p, tag, img); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestDisksInPlace: a containerDisk whose qcow2 overlay and base lie in
// one layer. In an uncompressed layer of a local source, both are read
// where they lie (the scan works with a --tmp-dir that cannot be made,
// where a spool would fail) and the overlay's backing file is followed
// inside the layer; in a gzip layer, the overlay is spooled, and its
// backing name resolves to nothing. A backing name that climbs out of the
// layer, or names a file the layer lacks, is refused, never looked up on
// the host.
func TestDisksInPlace(t *testing.T) {
	noTmp := filepath.Join(t.TempDir(), "file")
	os.WriteFile(noTmp, nil, 0o644)
	noTmp = filepath.Join(noTmp, "tmp") // under a regular file: cannot be made
	tests := []struct {
		name       string
		source     string
		compressed bool
		backing    string
		backingErr string // in the overlay's backing link; "" when followed
	}{
		{name: "layout uncompressed", source: "oci-layout", backing: "base.qcow2"},
		{name: "docker save uncompressed", source: "docker-save", backing: "base.qcow2"},
		{name: "absolute name inside the layer", source: "oci-layout", backing: "/disk/base.qcow2"},
		{name: "layout gzip: spooled", source: "oci-layout", compressed: true, backing: "base.qcow2"},
		{name: "name climbs out of the layer", source: "oci-layout", backing: "../../../etc/hostname", backingErr: "outside the container layer or archive"},
		{name: "name the layer lacks", source: "oci-layout", backing: "/etc/hostname", backingErr: "no such member"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, overlay, baseTok, topTok := overlayPair(t, tc.backing)
			es := []entry{dir("disk/"), {name: "disk/overlay.qcow2", body: overlay}, {name: "disk/base.qcow2", body: base}}
			l := static.NewLayer(tarBytes(t, es), types.OCIUncompressedLayer)
			if tc.compressed {
				l = layer(t, "", es...)
			}
			src := writeSource(t, tc.source, imageOf(t, l))
			before := treeDigest(t, src)
			s := newScanner(t, Options{TmpDir: noTmp})
			rep, err := s.ScanLocal(context.Background(), []string{src})
			if err != nil {
				t.Fatal(err)
			}
			if after := treeDigest(t, src); after != before {
				t.Fatal("the source changed while scanned")
			}
			layerErrs := strings.Join(rep.Targets[0].Errors, "\n")
			if tc.compressed {
				// The spool cannot be made: the disk is not read at all.
				if !strings.Contains(layerErrs, "--tmp-dir") {
					t.Fatalf("gzip layer with no --tmp-dir: errors %q, want a spool error", layerErrs)
				}
				return
			}
			if layerErrs != "" {
				t.Fatalf("layer errors: %s", layerErrs)
			}
			var top *report.Target
			for i, tg := range rep.Targets {
				if strings.HasSuffix(tg.Path, "!/disk/overlay.qcow2") {
					top = &rep.Targets[i]
				}
			}
			if top == nil || len(top.Backing) != 1 {
				t.Fatalf("no overlay target with one backing link: %+v", rep.Targets)
			}
			if !strings.Contains(strings.Join(top.Notes, "\n"), "read in place") {
				t.Errorf("overlay notes %q do not say it was read in place", top.Notes)
			}
			by := findingsByFP(rep)
			if f := by[fp(topTok)]; f == nil || !containsStr(f.Exposure, report.ExposureLive) {
				t.Errorf("overlay's secret: %+v", f)
			}
			viaBacking := false
			if f := by[fp(baseTok)]; f != nil {
				for _, loc := range f.Locations {
					viaBacking = viaBacking || strings.HasSuffix(loc.View, "!/disk/overlay.qcow2#backing:base.qcow2")
				}
			}
			if b := top.Backing[0]; tc.backingErr == "" {
				if b.Error != "" || b.Path != "/disk/base.qcow2" || !viaBacking {
					t.Errorf("backing %+v, base secret through it: %v; want it followed inside the layer", b, viaBacking)
				}
			} else if !strings.Contains(b.Error, tc.backingErr) || viaBacking {
				t.Errorf("backing %+v, want an error with %q", b, tc.backingErr)
			}
			assertNoLeak(t, rep, baseTok, topTok)
		})
	}
}
