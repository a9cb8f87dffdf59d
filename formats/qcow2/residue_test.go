package qcow2_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// markerFile writes a file of n bytes made of a repeated marker string.
func markerFile(t testing.TB, dir, marker string, n int) string {
	t.Helper()
	b := bytes.Repeat([]byte(marker), n/len(marker)+1)[:n]
	p := filepath.Join(dir, marker+".bin")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// unreferenced returns the bytes of the image's main unreferenced view's
// extents, each with its host offset.
func unreferenced(t *testing.T, im *model.Image) (model.View, []model.Extent, [][]byte) {
	t.Helper()
	v, ok := im.View(model.ViewID(im.Path, model.KindUnreferenced, ""))
	if !ok {
		t.Fatal("no unreferenced view")
	}
	var exts []model.Extent
	var data [][]byte
	for e, err := range v.Disk.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.FileOffset != e.Offset || e.File != im.Path {
			t.Fatalf("unreferenced extent %+v does not map host bytes one to one", e)
		}
		b := make([]byte, e.Length)
		if _, err := v.Disk.ReadAt(b, e.Offset); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if bytes.Count(b, []byte{0}) == len(b) {
			t.Fatalf("unreferenced extent %+v is all zeros", e)
		}
		exts = append(exts, e)
		data = append(data, b)
	}
	return v, exts, data
}

func containsMarker(data [][]byte, marker string) bool {
	for _, b := range data {
		if bytes.Contains(b, []byte(marker)) {
			return true
		}
	}
	return false
}

// inflatesToMarker reports whether some extent starts with a compressed
// stream (raw deflate or zstd) whose output holds the marker.
func inflatesToMarker(data [][]byte, marker string) bool {
	for _, b := range data {
		out := make([]byte, 64<<10)
		n, _ := io.ReadFull(flate.NewReader(bytes.NewReader(b)), out)
		if bytes.Contains(out[:n], []byte(marker)) {
			return true
		}
		if zd, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1)); err == nil {
			n, _ := io.ReadFull(zd, out)
			zd.Close()
			if bytes.Contains(out[:n], []byte(marker)) {
				return true
			}
		}
	}
	return false
}

func TestResidue(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	cases := []struct {
		name    string
		build   func(t *testing.T, dir, img string)
		marker  string
		inflate bool // the marker survives in compressed form
		none    bool // a clean image: no residue at all
	}{
		{name: "clean-image", marker: "CLEAN-MARKER-DATA", none: true, build: func(t *testing.T, dir, img string) {
			createQcow2(t, img, "cluster_size=4k", "4M")
			m := markerFile(t, dir, "CLEAN-MARKER-DATA", 70000)
			qemuIO(t, img, "write -s "+m+" 100000 70000", "write -P 0x33 2M 300k")
		}},
		{name: "snapshot-deleted-without-discard", marker: "SNAPSHOT-FREED-MARKER", build: func(t *testing.T, dir, img string) {
			createQcow2(t, img, "cluster_size=64k", "4M")
			m := markerFile(t, dir, "SNAPSHOT-FREED-MARKER", 65536)
			qemuIO(t, img, "write -s "+m+" 1M 64k")
			qemuImg(t, "snapshot", "-c", "s1", img)
			qemuIO(t, img, "write -P 0x11 1M 128k")
			qemuImg(t, "snapshot", "--image-opts", "-d", "s1",
				"driver=qcow2,file.filename="+img+",pass-discard-snapshot=off")
		}},
		{name: "write-zeroes-over-data", marker: "ZERO-FLAG-MARKER", build: func(t *testing.T, dir, img string) {
			createQcow2(t, img, "cluster_size=64k", "4M")
			m := markerFile(t, dir, "ZERO-FLAG-MARKER", 65536)
			qemuIO(t, img, "write -s "+m+" 2M 64k", "write -P 0x22 0 64k")
			qemuIO(t, img, "write -z 2M 64k")
		}},
		{name: "overwritten-compressed-zlib", marker: "COMPRESSED-MARKER-Z", inflate: true, build: func(t *testing.T, dir, img string) {
			createQcow2(t, img, "cluster_size=64k", "4M")
			m := markerFile(t, dir, "COMPRESSED-MARKER-Z", 65536)
			other := markerFile(t, dir, "neighbour-cluster-data", 65536)
			qemuIO(t, img, "write -c -s "+m+" 0 64k", "write -c -s "+other+" 64k 64k")
			qemuIO(t, img, "write -P 0x44 0 64k")
		}},
		{name: "overwritten-compressed-zstd", marker: "COMPRESSED-MARKER-S", inflate: true, build: func(t *testing.T, dir, img string) {
			createQcow2(t, img, "cluster_size=64k,compression_type=zstd", "4M")
			m := markerFile(t, dir, "COMPRESSED-MARKER-S", 65536)
			other := markerFile(t, dir, "neighbour-cluster-data", 65536)
			qemuIO(t, img, "write -c -s "+m+" 0 64k", "write -c -s "+other+" 64k 64k")
			qemuIO(t, img, "write -P 0x44 0 64k")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := filepath.Join(dir, "img.qcow2")
			tc.build(t, dir, img)
			before := sha(t, img)
			im := mustOpen(t, img)
			cur, _ := im.Current()
			if got := readDisk(t, cur.Disk, mib); bytes.Contains(got, []byte(tc.marker)) != tc.none {
				t.Fatalf("marker visible in the current view: %v, want %v", !tc.none, tc.none)
			}
			v, exts, data := unreferenced(t, im)
			switch {
			case tc.none:
				if len(exts) != 0 {
					t.Fatalf("clean image has unreferenced extents %v", exts)
				}
				if v.Attrs["leaked_clusters"] != "0" || v.Attrs["referenced_refcount_zero"] != "0" {
					t.Fatalf("clean image: attrs %v", v.Attrs)
				}
			case tc.inflate:
				if !inflatesToMarker(data, tc.marker) {
					t.Fatalf("no unreferenced extent holds the old compressed stream (extents %v)", exts)
				}
			default:
				if !containsMarker(data, tc.marker) {
					t.Fatalf("marker not in the unreferenced view (extents %v, attrs %v)", exts, v.Attrs)
				}
			}
			t.Logf("attrs %v notes %v extents %d", v.Attrs, v.Notes, len(exts))
			im.Close()
			if sha(t, img) != before {
				t.Fatal("image file changed while reading it")
			}
		})
	}
}

// TestDirtyBit leaves an image with lazy refcounts dirty (qemu-io aborts
// after a write) and checks that the unreferenced view says the refcounts
// are distrusted and counts the cluster whose refcount was never written.
func TestDirtyBit(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	img := filepath.Join(dir, "dirty.qcow2")
	createQcow2(t, img, "lazy_refcounts=on", "1M")
	cmd := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 64k", "-c", "abort", img)
	cmd.Dir = dir
	_ = cmd.Run() // abort exits with SIGABRT on purpose
	im := mustOpen(t, img)
	if im.Attrs["dirty"] != "true" {
		t.Fatalf("attrs %v: dirty bit not reported", im.Attrs)
	}
	v, _, _ := unreferenced(t, im)
	if !slices.ContainsFunc(v.Notes, func(n string) bool { return strings.Contains(n, "distrusted") }) {
		t.Fatalf("notes %v do not say refcounts are distrusted", v.Notes)
	}
	if v.Attrs["referenced_refcount_zero"] == "0" {
		t.Fatalf("attrs %v: the unrecorded refcount is not counted", v.Attrs)
	}
	cur, _ := im.Current()
	checkView(t, cur, convertRaw(t, img, ""))
}
