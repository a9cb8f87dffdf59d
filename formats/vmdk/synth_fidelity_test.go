package vmdk

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestFidelitySynthesized(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	data := writePatternRaw(t, filepath.Join(dir, "src.raw"), 2<<20+3*512, 21)
	cases := []struct {
		name  string
		files map[string][]byte
		open  string
		want  func([]byte) []byte // expected guest bytes from the source
	}{
		{name: "streamOptimized GD_AT_END", open: "so-end.vmdk", files: map[string][]byte{"so-end.vmdk": synthStream(data, true, nil)}},
		{name: "streamOptimized GD in header", open: "so.vmdk", files: map[string][]byte{"so.vmdk": synthStream(data, false, nil)}},
		{name: "vmfsSparse COWD", open: "cowd.vmdk", files: map[string][]byte{
			"cowd-delta.vmdk": synthCOWD(data, 16),
			"cowd.vmdk":       []byte(fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=11111111\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\nRW %d VMFSSPARSE \"cowd-delta.vmdk\"\n", len(data)/512)),
		}},
		{name: "seSparse", open: "se.vmdk", files: map[string][]byte{
			"se-sesparse.vmdk": synthSESparse(data, 3),
			"se.vmdk":          []byte(fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=22222222\nparentCID=ffffffff\ncreateType=\"seSparse\"\nRW %d SESPARSE \"se-sesparse.vmdk\"\n", len(data)/512)),
		}, want: func(b []byte) []byte { b = bytes.Clone(b); clear(b[3*4096 : 4*4096]); return b }},
		{name: "vmfs flat", open: "vmfs.vmdk", files: map[string][]byte{
			"vmfs-flat.vmdk": data,
			"vmfs.vmdk":      []byte(fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=33333333\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW %d VMFS \"vmfs-flat.vmdk\"\n", len(data)/512)),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cdir := t.TempDir()
			for n, b := range c.files {
				if err := os.WriteFile(filepath.Join(cdir, n), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := filepath.Join(cdir, c.open)
			want := qemuRaw(t, p)
			src := data
			if c.want != nil {
				src = c.want(data)
			}
			if !bytes.Equal(want, src) {
				t.Fatalf("generator bug: qemu-img reads the fixture differently from its source (diff at %d)", firstDiff(want, src))
			}
			before := dirHashes(t, cdir)
			im := mustOpen(t, p)
			compareView(t, currentDisk(t, im), want, c.name)
			im.Close()
			checkUnchanged(t, cdir, before)
		})
	}
}

// viewByKindName finds a view of im by kind and name.
func viewByKindName(im *model.Image, k model.Kind, name string) (model.View, bool) {
	for _, v := range im.Views {
		if v.Kind == k && v.Name == name {
			return v, true
		}
	}
	return model.View{}, false
}
