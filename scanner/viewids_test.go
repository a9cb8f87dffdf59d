package scanner_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestViewIDsUniqueAcrossTargets: files of one name in different
// directories get view IDs that tell them apart, with as few parent
// directories as it takes; files whose IDs are already unique keep them.
func TestViewIDsUniqueAcrossTargets(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	cases := []struct {
		name  string
		files []string // relative to a temp dir
		want  []string // each target's current view
	}{
		{"distinct names keep their IDs", []string{"a/web.qcow2", "b/db.qcow2"},
			[]string{"web.qcow2#current", "db.qcow2#current"}},
		{"one parent directory tells them apart", []string{"a/disk.qcow2", "b/disk.qcow2", "c/other.qcow2"},
			[]string{"a/disk.qcow2#current", "b/disk.qcow2#current", "other.qcow2#current"}},
		{"two are needed", []string{"x/vm/disk.qcow2", "y/vm/disk.qcow2"},
			[]string{"x/vm/disk.qcow2#current", "y/vm/disk.qcow2#current"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for _, f := range c.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", p, "1M")
				paths = append(paths, p)
			}
			rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), paths)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Targets) != len(c.want) {
				t.Fatalf("%d targets, want %d", len(rep.Targets), len(c.want))
			}
			seen := map[string]bool{}
			for i, tg := range rep.Targets {
				var ids []string
				for _, v := range tg.Views {
					ids = append(ids, v.ID)
					if seen[v.ID] {
						t.Errorf("view ID %s twice in the report", v.ID)
					}
					seen[v.ID] = true
				}
				if !slices.Contains(ids, c.want[i]) {
					t.Errorf("%s: view IDs %q, want %q among them", tg.Path, ids, c.want[i])
				}
			}
		})
	}
}
