package registry

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// TestLayerDiskNamesAreSealed puts qcow2 disks whose backing names reach a
// host file holding a planted token (by absolute path, by ../, and by a
// bare name) into a docker save tarball. The disks are spooled to temp
// files and audited, but no name inside them resolves on this host: the
// token is never reported, and each disk's error says why.
func TestLayerDiskNamesAreSealed(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	tmp := t.TempDir()
	host := filepath.Join(tmp, "host", "token.raw")
	planted := npmToken(t)
	body := make([]byte, 1<<20)
	copy(body, "NPM_TOKEN="+planted+"\n")
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, body, 0o644); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"abs.qcow2": host, "dotdot.qcow2": "../../host/token.raw", "bare.qcow2": "token.raw"}
	entries := []entry{dir("disk/")}
	for disk, backing := range names {
		p := filepath.Join(tmp, disk)
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", p, "1M")
		entries = append(entries, entry{name: "disk/" + disk, body: testutil.FileSnapshot(t, p)})
	}
	img := imageOf(t, layer(t, "", entries...))
	tarPath := filepath.Join(tmp, "image.tar")
	tag, _ := name.NewTag("example.com/vm:1")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	before := testutil.FileSnapshot(t, host)
	rep, err := newScanner(t, Options{}).ScanLocal(context.Background(), []string{tarPath})
	if err != nil {
		t.Fatal(err)
	}
	if f := findingsByFP(rep)[fp(planted)]; f != nil {
		t.Errorf("the host file's token was reported for the layer's disk: %+v", f.Locations)
	}
	for disk, backing := range names {
		var errs []string
		for _, tg := range rep.Targets {
			if strings.HasSuffix(tg.Path, "!/disk/"+disk) {
				errs = append(errs, tg.Errors...)
			}
		}
		all := strings.Join(errs, "\n")
		if !strings.Contains(all, model.ErrSealed.Error()) || !strings.Contains(all, `backing file "`+backing+`"`) || !strings.Contains(all, "offset") {
			t.Errorf("%s: errors %q: want the sealed refusal of %q with its offset", disk, all, backing)
		}
	}
	if string(testutil.FileSnapshot(t, host)) != string(before) {
		t.Error("host file changed")
	}
}

// TestLayoutBlobsStayInside: an OCI layout whose layer blob is a symlink
// to a file outside the layout, or a FIFO, or whose index.json is a FIFO,
// is refused without blocking (the blobs are named by index.json, like the
// files an image names; go-containerregistry refuses such blobs itself),
// and the token in the outside file is never reported.
func TestLayoutBlobsStayInside(t *testing.T) {
	testutil.RequireTool(t, "mkfifo")
	for _, kind := range []string{"symlink", "symlink-uncompressed", "fifo", "index-fifo"} {
		t.Run(kind, func(t *testing.T) {
			tmp := t.TempDir()
			token := npmToken(t)
			l := layer(t, "", file("app/env", "NPM_TOKEN="+token+"\n"))
			if kind == "symlink-uncompressed" {
				// A blob read in place is opened without following links too.
				l = static.NewLayer(tarBytes(t, []entry{file("app/env", "NPM_TOKEN="+token+"\n")}), types.OCIUncompressedLayer)
			}
			lp, err := layout.Write(filepath.Join(tmp, "layout"), empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := lp.AppendImage(imageOf(t, l)); err != nil {
				t.Fatal(err)
			}
			blob := filepath.Join(tmp, "layout", "blobs", "sha256", strings.TrimPrefix(layerDigest(t, l), "sha256:"))
			moved := filepath.Join(tmp, "host-blob")
			if err := os.Rename(blob, moved); err != nil {
				t.Fatal(err)
			}
			switch kind {
			case "symlink", "symlink-uncompressed":
				err = os.Symlink(moved, blob)
			case "fifo":
				err = exec.Command("mkfifo", blob).Run()
			case "index-fifo":
				index := filepath.Join(tmp, "layout", "index.json")
				if err = os.Remove(index); err == nil {
					err = exec.Command("mkfifo", index).Run()
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var rep *report.Report
			go func() {
				defer close(done)
				rep, err = newScanner(t, Options{}).ScanLocal(context.Background(), []string{filepath.Join(tmp, "layout")})
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("scan blocked")
			}
			if err != nil {
				t.Fatal(err)
			}
			if findingsByFP(rep)[fp(token)] != nil {
				t.Error("the blob outside the layout was read")
			}
			want := map[string]string{"symlink": "is a symlink", "symlink-uncompressed": "is a symlink", "fifo": "not a regular file", "index-fifo": "named pipe"}[kind]
			var errs []string
			for _, tg := range rep.Targets {
				errs = append(errs, tg.Errors...)
			}
			if !strings.Contains(strings.Join(errs, "\n"), want) {
				t.Errorf("errors %q lack %q", errs, want)
			}
		})
	}
}

// TestLayoutLinkedDirsStayInside: an OCI layout with its own oci-layout
// and index.json whose blobs directory, or blobs/sha256, is a symlink to
// another store's, or whose index.json links to another store's (its
// blobs copied in), is refused: the other store's image (and its token)
// is never read under the layout's name, the layout's image is a target
// error naming the link, the run is incomplete, and a layout scanned
// beside it still reports its own secret. Before, only a blob that was
// itself a link was refused.
func TestLayoutLinkedDirsStayInside(t *testing.T) {
	for _, kind := range []string{"blobs", "blobs-sha256", "index"} {
		t.Run(kind, func(t *testing.T) {
			token, own := npmToken(t), npmToken(t)
			other := writeSource(t, "oci-layout", imageOf(t, layer(t, "", file("app/env", "NPM_TOKEN="+token+"\n"))))
			good := writeSource(t, "oci-layout", imageOf(t, layer(t, "", file("app/env", "NPM_TOKEN="+own+"\n"))))
			evil := filepath.Join(t.TempDir(), "evil")
			if err := os.MkdirAll(filepath.Join(evil, "blobs"), 0o755); err != nil {
				t.Fatal(err)
			}
			testutil.Bash(t, evil, "cp "+filepath.Join(other, "oci-layout")+" "+filepath.Join(other, "index.json")+" .")
			link, target := "", ""
			switch kind {
			case "blobs":
				os.Remove(filepath.Join(evil, "blobs"))
				link, target = filepath.Join(evil, "blobs"), filepath.Join(other, "blobs")
			case "blobs-sha256":
				link, target = filepath.Join(evil, "blobs", "sha256"), filepath.Join(other, "blobs", "sha256")
			case "index":
				testutil.Bash(t, evil, "cp -r "+filepath.Join(other, "blobs", "sha256")+" blobs/ && rm index.json")
				link, target = filepath.Join(evil, "index.json"), filepath.Join(other, "index.json")
			}
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			rep, err := newScanner(t, Options{}).ScanLocal(context.Background(), []string{evil, good})
			if err != nil {
				t.Fatal(err)
			}
			if f := findingsByFP(rep)[fp(token)]; f != nil {
				t.Errorf("the other store's token was reported: %+v", f.Locations)
			}
			if findingsByFP(rep)[fp(own)] == nil {
				t.Error("the layout scanned beside it lost its own finding")
			}
			var errs []string
			for _, tg := range rep.Targets {
				if strings.HasPrefix(tg.Path, evil) {
					errs = append(errs, tg.Errors...)
				}
			}
			if all := strings.Join(errs, "\n"); !strings.Contains(all, link+" is a symlink") || rep.Complete {
				t.Errorf("errors %q, complete %v: want one naming %s as a symlink, and an incomplete run", all, rep.Complete, link)
			}
		})
	}
}

// TestMetadataLimits: the JSON a local source makes the scan read whole
// is bounded. An OCI layout's index.json or a manifest blob it names
// over maxMetadataBytes (padded with spaces: still valid JSON), a
// manifest blob that is a symlink, and a docker save tarball whose
// manifest.json is over the limit are each an image error that says
// why; nothing over the limit is read.
func TestMetadataLimits(t *testing.T) {
	testutil.RequireTool(t, "tar")
	pad := func(t *testing.T, p string) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(bytes.Repeat([]byte(" "), maxMetadataBytes), b...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ kind, want string }{
		{"index", "over 8388608 bytes"},
		{"manifest", "over 8388608 bytes"},
		{"manifest-symlink", "symlink"},
		{"save-manifest", "manifest.json is 8388"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			img := imageOf(t, layer(t, "", file("app/env", "A=1\n")))
			src := writeSource(t, "oci-layout", img)
			blobs := filepath.Join(src, "blobs", "sha256")
			digest, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			switch c.kind {
			case "index":
				pad(t, filepath.Join(src, "index.json"))
			case "manifest":
				pad(t, filepath.Join(blobs, digest.Hex))
			case "manifest-symlink":
				m := filepath.Join(blobs, digest.Hex)
				if err := os.Rename(m, m+".moved"); err != nil || os.Symlink(m+".moved", m) != nil {
					t.Fatal(err)
				}
			case "save-manifest":
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "manifest.json"), append(bytes.Repeat([]byte(" "), maxMetadataBytes), "[]"...), 0o644); err != nil {
					t.Fatal(err)
				}
				src = filepath.Join(t.TempDir(), "save.tar")
				testutil.Bash(t, dir, "tar -cf "+src+" manifest.json")
			}
			rep, err := newScanner(t, Options{}).ScanLocal(context.Background(), []string{src})
			if err != nil {
				t.Fatal(err)
			}
			var errs []string
			for _, tg := range rep.Targets {
				errs = append(errs, tg.Errors...)
			}
			if all := strings.Join(errs, "\n"); !strings.Contains(all, c.want) || rep.Complete {
				t.Errorf("errors %q, complete %v: want one with %q, and an incomplete run", all, rep.Complete, c.want)
			}
		})
	}
}
