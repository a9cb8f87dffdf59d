package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

func repoFile(t *testing.T, rel string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

// `imgaudit scan` takes docker save tarballs next to disk images and merges
// both into one report; `imgaudit merge` joins JSON reports.
func TestScanContainerTarballAndMerge(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	dir := t.TempDir()
	imageTar := filepath.Join(dir, "app.tar")
	writeImageTar(t, imageTar, "registry.test/app:1", "etc/ssl/private/app.key", pemKey)

	demo := repoFile(t, "testdata/demo/web01.qcow2")
	out := filepath.Join(dir, "both.json")
	code, _, errs := runCLI(t, "scan", "--no-progress", "--format", "json", "-o", out, imageTar, demo)
	if code != exitFindings {
		t.Fatalf("scan exit %d: %s", code, errs)
	}
	rep := readReportFile(t, out)
	if len(rep.Targets) != 2 {
		t.Fatalf("targets = %d, want the tarball's image and the qcow2", len(rep.Targets))
	}
	var layerHit bool
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			if l.ViewKind == "layer" && l.Path == "/etc/ssl/private/app.key" && l.LayerDigest != "" {
				layerHit = true
			}
		}
	}
	if !layerHit {
		t.Errorf("no finding in the image layer: %+v", rep.Findings)
	}
	if bytes.Contains(readAll(t, out), bytes.TrimSpace(pemKey)[40:80]) {
		t.Fatal("the report contains key material")
	}

	// merge: the demo report and the container report give the combined one.
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	runCLI(t, "scan", "--no-progress", "--format", "json", "-o", a, imageTar)
	runCLI(t, "scan", "--no-progress", "--format", "json", "-o", b, demo)
	merged := filepath.Join(dir, "merged.json")
	if code, _, errs := runCLI(t, "merge", "-o", merged, a, b); code != exitFindings {
		t.Fatalf("merge exit %d: %s", code, errs)
	}
	m := readReportFile(t, merged)
	if len(m.Targets) != 2 || len(m.Findings) != len(rep.Findings) {
		t.Errorf("merged: %d targets, %d findings; direct scan: %d findings", len(m.Targets), len(m.Findings), len(rep.Findings))
	}
}

// oneFileImage is an image with one layer holding one file.
func oneFileImage(t *testing.T, file string, data []byte) v1.Image {
	t.Helper()
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	tw.WriteHeader(&tar.Header{Name: file, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeImageTar writes a docker save tarball of an image with one layer
// holding one file.
func writeImageTar(t *testing.T, path, ref, file string, data []byte) {
	img := oneFileImage(t, file, data)
	tag, _ := name.NewTag(ref)
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readReportFile(t *testing.T, p string) *report.Report {
	var r report.Report
	if err := json.Unmarshal(readAll(t, p), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// A KubeVirt containerDisk whose disk holds only public material (a key
// that an installed package ships unmodified): the disk scanner inside
// the container scan rates it info, and --no-downgrade passes through.
func TestContainerDiskDowngrades(t *testing.T) {
	disk := readAll(t, testutil.BuildPackagedImage(t, false).Image)
	imageTar := filepath.Join(t.TempDir(), "disk.tar")
	writeImageTar(t, imageTar, "registry.test/vm:1", "disk/packaged.qcow2", disk)
	for _, c := range []struct {
		flags    []string
		code     int
		severity string
	}{
		{nil, exitOK, report.SeverityInfo},
		{[]string{"--no-downgrade"}, exitFindings, report.SeverityCritical},
	} {
		out := filepath.Join(t.TempDir(), "r.json")
		code, _, errs := runCLI(t, append(append([]string{"scan", "--no-progress", "--format", "json", "-o", out}, c.flags...), imageTar)...)
		rep := readReportFile(t, out)
		if code != c.code || rep.Summary.BySeverity[c.severity] == 0 {
			t.Errorf("%v: exit %d (want %d), by_severity %v (want some %s): %s", c.flags, code, c.code, rep.Summary.BySeverity, c.severity, errs)
		}
	}
}
