package report

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleInfo() ImageInfo {
	golden := time.Date(2026, 12, 6, 2, 25, 18, 0, time.UTC)
	return ImageInfo{
		Path: "web01.qcow2", Format: "qcow2", VirtualSize: 24 << 20,
		Backing: []Backing{{Name: "base.qcow2", Path: "/srv/base.qcow2", Format: "qcow2"}, {Name: "gone.raw", Error: "not opened"}},
		Attrs:   map[string]string{"version": "3", "cluster_size": "65536"},
		Views: []InfoView{
			{View: View{ID: "web01.qcow2#current", Kind: "current", Name: "current", Size: 24 << 20, AllocatedBytes: 832 << 10}},
			{View: View{ID: "web01.qcow2#snapshot:golden", Kind: "snapshot", Name: "golden", Created: &golden, Size: 24 << 20,
				AllocatedBytes: 1 << 20, Attrs: map[string]string{"vm_state_size": "4096"}, Notes: []string{"vm state saved"}}},
			{View: View{ID: "web01.qcow2#unreferenced", Kind: "unreferenced", Name: "web01.qcow2", Size: 3 << 20,
				AllocatedBytes: 69 << 10, Error: "read: short"}},
		},
		UnreferencedBytes: 69 << 10,
		Errors:            []string{"gone.raw: not opened"},
	}
}

func TestWriteInfoTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		ii   ImageInfo
		want []string
	}{
		{"image", sampleInfo(), []string{
			"image:         web01.qcow2\n",
			"format:        qcow2\n",
			"virtual size:  24.0 MiB (25165824 bytes)\n",
			"backing chain: <- base.qcow2 (qcow2) <- gone.raw [NOT OPENED]\n",
			"details:       cluster_size=65536 version=3\n",
			"snapshots:     1\n",
			"unreferenced:  69.0 KiB of non-zero data that no table references\n",
			"views:\n",
			"  web01.qcow2#snapshot:golden  snapshot      2026-12-06 02:25:18  24.0 MiB  1.0 MiB    vm state 4096 bytes; vm state saved\n",
			"  web01.qcow2#unreferenced     unreferenced  -                    3.0 MiB   69.0 KiB    ERROR: read: short\n",
			"error:         gone.raw: not opened\n",
		}},
		{"unreadable", ImageInfo{Path: "x.img", Errors: []string{"x.img: not an image"}}, []string{
			"image:         x.img\nerror:         x.img: not an image\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			WriteInfoTable(&b, tc.ii)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("no %q in\n%s", w, b.String())
				}
			}
		})
	}
}

// TestInfoJSONKeys: the JSON form of `imgaudit info` (README) lists views
// with the fields of a report's View except scanned_bytes, since nothing
// was scanned.
func TestInfoJSONKeys(t *testing.T) {
	var b bytes.Buffer
	if err := WriteInfoJSON(&b, []ImageInfo{sampleInfo()}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Images []map[string]json.RawMessage `json:"images"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil || len(doc.Images) != 1 {
		t.Fatalf("%v\n%s", err, b.String())
	}
	img := doc.Images[0]
	if got, want := slices.Sorted(maps.Keys(img)), []string{"attrs", "backing", "errors", "format", "path", "unreferenced_bytes", "views", "virtual_size"}; !slices.Equal(got, want) {
		t.Errorf("image keys %v, want %v", got, want)
	}
	var views []map[string]json.RawMessage
	if err := json.Unmarshal(img["views"], &views); err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{
		{"allocated_bytes", "id", "kind", "name", "size"},
		{"allocated_bytes", "attrs", "created", "id", "kind", "name", "notes", "size"},
		{"allocated_bytes", "error", "id", "kind", "name", "size"},
	} {
		if got := slices.Sorted(maps.Keys(views[i])); !slices.Equal(got, want) {
			t.Errorf("view %d keys %v, want %v", i, got, want)
		}
	}
}
