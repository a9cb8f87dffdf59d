package qcow2_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestEncrypted(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct{ format, want string }{{"aes", "AES"}, {"luks", "LUKS"}} {
		t.Run(tc.format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "enc.qcow2")
			args := []string{"create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=not-a-real-passphrase",
				"-o", "encrypt.format=" + tc.format + ",encrypt.key-secret=sec0" + map[string]string{"luks": ",encrypt.iter-time=10", "aes": ""}[tc.format],
				img, "1M"}
			// qemu-img times PBKDF2 by thread CPU time to pick the LUKS
			// iteration count; on a loaded machine it can read no time at
			// all and give up ("Unable to get accurate CPU usage").
			for try := 1; ; try++ {
				out, err := exec.Command("qemu-img", args...).CombinedOutput()
				if err == nil {
					break
				}
				if try == 5 || !bytes.Contains(out, []byte("Unable to get accurate CPU usage")) {
					t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
				}
			}
			_, err := qcow2.Open(context.Background(), img, model.Options{})
			if !errors.Is(err, model.ErrEncrypted) {
				t.Fatalf("err = %v, want ErrEncrypted", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
		})
	}
}

// layerWrite is what the top layer holds in TestBackingProblems.
const layerWrite = "write -P 0x5a 64k 64k"

func TestBackingProblems(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	cases := []struct {
		name  string
		build func(t *testing.T, dir string) string
		want  string // in the backing link's error
	}{
		{"missing-backing-file", func(t *testing.T, dir string) string {
			base := filepath.Join(dir, "base.qcow2")
			createQcow2(t, base, "", "4M")
			top := filepath.Join(dir, "top.qcow2")
			createQcow2(t, top, "", "4M", "-b", "base.qcow2", "-F", "qcow2")
			qemuIO(t, top, layerWrite)
			os.Remove(base)
			return top
		}, "no such file"},
		{"cycle", func(t *testing.T, dir string) string {
			a, b := filepath.Join(dir, "a.qcow2"), filepath.Join(dir, "b.qcow2")
			createQcow2(t, b, "", "4M")
			createQcow2(t, a, "", "4M", "-b", "b.qcow2", "-F", "qcow2")
			qemuIO(t, a, layerWrite)
			qemuImg(t, "rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", b)
			return a
		}, "cycle"},
		{"nbd-protocol", func(t *testing.T, dir string) string {
			img := filepath.Join(dir, "nbd.qcow2")
			createQcow2(t, img, "", "4M")
			qemuIO(t, img, layerWrite)
			qemuImg(t, "rebase", "-u", "-b", "nbd://localhost:10809", "-F", "raw", img)
			return img
		}, "protocol"},
		{"json-protocol", func(t *testing.T, dir string) string {
			img := filepath.Join(dir, "json.qcow2")
			createQcow2(t, img, "", "4M")
			qemuIO(t, img, layerWrite)
			qemuImg(t, "rebase", "-u", "-b", `json:{"file":{"driver":"file","filename":"/etc/passwd"}}`, "-F", "raw", img)
			return img
		}, "protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := tc.build(t, dir)
			im := mustOpen(t, img)
			if len(im.Backing) == 0 {
				t.Fatal("no backing link recorded")
			}
			var linkErr error
			for _, l := range im.Backing {
				if l.Err != nil {
					linkErr = l.Err
				}
			}
			if linkErr == nil || !strings.Contains(linkErr.Error(), tc.want) {
				t.Fatalf("backing links %+v: want an error mentioning %q", im.Backing, tc.want)
			}
			if len(im.Errors) == 0 {
				t.Fatal("the backing problem is not in Image.Errors")
			}
			// The other views still work: what this layer holds reads back.
			cur, _ := im.Current()
			got := readDisk(t, cur.Disk, mib)
			want := make([]byte, 4*mib)
			copy(want[64*kib:128*kib], bytes.Repeat([]byte{0x5a}, 64*kib))
			if !bytes.Equal(got, want) {
				t.Fatalf("current view: %s", firstDiff(got, want))
			}
			for _, v := range im.Views {
				readExtents(t, v.Disk)
			}
		})
	}
}

func TestDepthLimit(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := filepath.Join(t.TempDir(), "img.qcow2")
	createQcow2(t, img, "", "1M")
	_, err := qcow2.Open(context.Background(), img, model.Options{Depth: model.MaxChainDepth + 1})
	if err == nil || !strings.Contains(err.Error(), "deeper") {
		t.Fatalf("err = %v, want a depth error", err)
	}
}

// TestHostileHeader patches fields of a real image's header and checks that
// Open refuses each with a FormatError that names the field's offset,
// without allocating what the field claims.
func TestHostileHeader(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.qcow2")
	createQcow2(t, orig, "cluster_size=4k", "4M")
	qemuIO(t, orig, "write -P 0x77 0 8k")
	qemuImg(t, "snapshot", "-c", "s", orig)
	good := testutil.FileSnapshot(t, orig)
	be := binary.BigEndian
	cases := []struct {
		name   string
		patch  func(b []byte)
		offset int64
		want   string
	}{
		{"l1-size-huge", func(b []byte) { be.PutUint32(b[36:], 0xffffffff) }, 36, "l1_size"},
		{"l1-too-small", func(b []byte) { be.PutUint32(b[36:], 0); be.PutUint64(b[24:], 1<<40) }, 36, "too small"},
		{"virtual-size-huge", func(b []byte) { be.PutUint64(b[24:], 1<<62) }, 24, "virtual size"},
		{"refcount-table-huge", func(b []byte) { be.PutUint32(b[56:], 1<<20) }, 56, "refcount table"},
		{"snapshots-too-many", func(b []byte) { be.PutUint32(b[60:], 100000) }, 60, "snapshots"},
		{"cluster-bits", func(b []byte) { be.PutUint32(b[20:], 30) }, 20, "cluster_bits"},
		{"unknown-incompatible-bit", func(b []byte) { be.PutUint64(b[72:], 1<<40) }, 72, "incompatible"},
		{"l1-offset-unaligned", func(b []byte) { be.PutUint64(b[40:], 0x1200) }, 40, "aligned"},
		{"l1-offset-past-56-bits", func(b []byte) { be.PutUint64(b[40:], 1<<60) }, 40, "host offset"},
		{"header-length", func(b []byte) { be.PutUint32(b[100:], 1<<20) }, 100, "header_length"},
		{"version", func(b []byte) { be.PutUint32(b[4:], 4) }, 4, "version"},
		{"backing-name-too-long", func(b []byte) { be.PutUint64(b[8:], 512); be.PutUint32(b[16:], 5000) }, 16, "backing file name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.patch(b)
			p := filepath.Join(t.TempDir(), "bad.qcow2")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := qcow2.Open(context.Background(), p, model.Options{})
			if err == nil {
				im.Close()
				t.Fatal("Open accepted the patched image")
			}
			var fe *model.FormatError
			if !errors.As(err, &fe) || fe.Offset != tc.offset || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a FormatError at offset %d mentioning %q", err, tc.offset, tc.want)
			}
		})
	}

	// A broken snapshot table leaves the other views usable.
	t.Run("snapshot-table-truncated", func(t *testing.T) {
		b := bytes.Clone(good)
		be.PutUint32(b[60:], 2) // claims two snapshots; the second runs into zeros or EOF
		snapOff := be.Uint64(b[64:])
		b = b[:snapOff+40]
		p := filepath.Join(t.TempDir(), "bad.qcow2")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		im, err := qcow2.Open(context.Background(), p, model.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer im.Close()
		if len(im.Errors) == 0 {
			t.Fatal("truncated snapshot table not reported")
		}
		cur, _ := im.Current()
		readExtents(t, cur.Disk)
	})
}
