package scanner

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// TestDescribe: what `imgaudit info` shows, from the same conversion the
// scan report uses (a qcow2 chain is checked against qemu-img by
// cmd/imgaudit's TestInfoAndExtractMatchQemu).
func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "disk.raw")
	data := make([]byte, 1<<20)
	copy(data[4096:], "some data")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		wantErr    bool
		format     string
		views      []string
	}{
		{"raw", raw, false, "raw", []string{"disk.raw#current"}},
		{"missing", filepath.Join(dir, "missing.qcow2"), true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ii, err := Describe(context.Background(), tc.path, model.Options{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if ii.Path != tc.path || ii.Format != tc.format || ii.Backing == nil || ii.Views == nil || ii.Errors == nil {
				t.Errorf("Describe = %+v", ii)
			}
			if len(ii.Views) != len(tc.views) {
				t.Fatalf("views %+v, want %v", ii.Views, tc.views)
			}
			for i, id := range tc.views {
				v := ii.Views[i]
				if v.ID != id || v.Size != int64(len(data)) || v.AllocatedBytes <= 0 || v.AllocatedBytes > v.Size {
					t.Errorf("view %d = %+v, want %s of %d bytes", i, v.View, id, len(data))
				}
			}
		})
	}
}
