package vmdk

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/internal/zeros"
)

// gteOffsets returns the file offsets of the grain table entries (primary,
// redundant) that map guest byte off in a hosted sparse file.
func gteOffsets(t *testing.T, b []byte, off int64) (int64, int64) {
	t.Helper()
	h, err := ParseSparseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	gi := off / int64(h.GrainSize*512)
	di, ti := gi/512, gi%512
	at := func(gd uint64) int64 {
		gt := binary.LittleEndian.Uint32(b[int64(gd)*512+di*4:])
		return int64(gt)*512 + ti*4
	}
	return at(h.GDOffset), at(h.RGDOffset)
}

func TestUnreferenced(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "src.raw")
	data := writePatternRaw(t, rawPath, 2<<20, 31)
	secretAt := int64(bytes.Index(data, []byte(secret)))
	for _, sub := range []string{"monolithicSparse", "streamOptimized"} {
		testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, rawPath, filepath.Join(dir, sub+".vmdk"))
	}
	staleData := bytes.Repeat([]byte("STALE-"+secret), 2000)[:64<<10]

	type edit func(t *testing.T, b []byte) []byte
	dropGrain := func(both bool) edit {
		return func(t *testing.T, b []byte) []byte {
			p, r := gteOffsets(t, b, secretAt)
			put32(b, int(p), 0)
			if both {
				put32(b, int(r), 0)
			}
			return b
		}
	}
	cases := []struct {
		name      string
		src       string // qemu-made file, or "" for the generator
		gen       func() []byte
		edit      edit
		view      string // view name holding the stale bytes
		find      string
		wantNote  string
		goneFromC bool // the secret left the current view
	}{
		{name: "sparse grain dropped from GT", src: "monolithicSparse", edit: dropGrain(true), view: "x.vmdk", find: secret, goneFromC: true},
		{name: "sparse primary GT disagrees", src: "monolithicSparse", edit: dropGrain(false), view: "x.vmdk", find: secret, wantNote: "redundant grain table", goneFromC: true},
		{name: "stream grain dropped from GT", src: "streamOptimized", edit: dropGrain(true), view: "x.vmdk:stale-grains", find: secret, goneFromC: true},
		{name: "synthesized stale grain", gen: func() []byte { return synthStream(data, true, [][]byte{staleData}) }, view: "x.vmdk:stale-grains", find: "STALE-" + secret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b []byte
			if c.gen != nil {
				b = c.gen()
			} else {
				b, _ = os.ReadFile(filepath.Join(dir, c.src+".vmdk"))
			}
			if c.edit != nil {
				b = c.edit(t, b)
			}
			p := filepath.Join(t.TempDir(), "x.vmdk")
			os.WriteFile(p, b, 0o644)
			want := qemuRaw(t, p)
			im := mustOpen(t, p)
			cur, _ := im.Current()
			compareView(t, cur.Disk, want, "current")
			if c.wantNote != "" && !strings.Contains(strings.Join(cur.Notes, "\n"), c.wantNote) {
				t.Fatalf("notes %q lack %q", cur.Notes, c.wantNote)
			}
			curBytes := readDisk(t, cur.Disk)
			if c.goneFromC {
				if bytes.HasPrefix(curBytes[secretAt:], []byte(c.find)) {
					t.Fatal("the dropped grain still reads in the current view")
				}
			} else if bytes.Contains(curBytes, []byte(c.find)) {
				t.Fatal("the stale pattern is visible in the current view")
			}
			v, ok := viewByKindName(im, model.KindUnreferenced, c.view)
			if !ok {
				t.Fatalf("no unreferenced view %q", c.view)
			}
			if !strings.HasPrefix(v.ID, "x.vmdk#unreferenced") {
				t.Fatalf("view ID %q", v.ID)
			}
			// Read only through the extents, as a scanner does.
			ext, err := model.CollectExtents(t.Context(), v.Disk)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range ext {
				buf := make([]byte, e.Length)
				if _, err := v.Disk.ReadAt(buf, e.Offset); err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(buf, []byte(c.find)) {
					found = true
					if c.view == "x.vmdk" && !bytes.Equal(buf, b[e.FileOffset:e.FileOffset+e.Length]) {
						t.Fatal("unreferenced extent is not the host bytes at its offset")
					}
				}
				if c.view == "x.vmdk" && zeros.All(buf) {
					t.Fatalf("unreferenced extent %+v is all zeros", e)
				}
			}
			if !found {
				t.Fatalf("stale pattern not found in %s (%d extents)", v.ID, len(ext))
			}
		})
	}
}
