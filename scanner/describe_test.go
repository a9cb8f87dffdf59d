package scanner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestDescribeContentNeverBlocks: the walk of a scanned directory sees a
// regular file, and describeContent opens it later to say what it holds;
// a file swapped for a FIFO in between (or one named directly) must not
// block the scan waiting for a writer, as os.Open does.
func TestDescribeContentNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	text, fifo := filepath.Join(dir, "notes.txt"), filepath.Join(dir, "swapped")
	if err := os.WriteFile(text, []byte("plain words\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, wantPrefix string }{
		{text, "text"},
		{fifo, "unreadable: "},
	} {
		got := make(chan string, 1)
		go func() { got <- describeContent(tc.path) }()
		select {
		case g := <-got:
			if !strings.HasPrefix(g, tc.wantPrefix) {
				t.Errorf("describeContent(%s) = %q, want %q…", filepath.Base(tc.path), g, tc.wantPrefix)
			}
		case <-time.After(10 * time.Second):
			// Unblock the open so that the test binary can end.
			if w, err := os.OpenFile(tc.path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
			t.Fatalf("describeContent(%s) blocked for 10 s", filepath.Base(tc.path))
		}
	}
}
