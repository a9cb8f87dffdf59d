package scanner_test

import (
	"archive/zip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// A directory scan accounts for every file: each is a target, read
// through one (a backing file), or skipped with its reason. Without
// overlays the directory is plain (only images are targets); with one it
// is a store whose loose files are scanned too.
func TestDirectoryAccounting(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	linkSkips := func(dir string) map[string]string {
		return map[string]string{
			"shadow":      "symlink to a file outside the scanned directory: not followed",
			"again.qcow2": "symlink to " + filepath.Join(dir, "base.qcow2") + ", which is scanned as " + filepath.Join(dir, "base.qcow2"),
			"far.qcow2":   "symlink to a file outside the scanned directory: not followed",
			"gone.qcow2":  "broken symlink: not followed",
			// A link that leads out is refused before its target is
			// looked at: the same answer whether or not it exists.
			"nowhere.qcow2":  "symlink to a file outside the scanned directory: not followed",
			"out-gone.qcow2": "symlink to a file outside the scanned directory: not followed",
			"sub":            "symlink to a directory: not followed",
			"pipe":           "not a regular file: named pipe",
		}
	}
	zipNote := "named .vdi, content is a zip archive: not an image; scanned as raw bytes"
	tests := []struct {
		name        string
		overlay     bool
		backingRoot bool              // pass the directory far.qcow2 lies in as --backing-root
		wantTargets map[string]string // base name -> a note it must have ("" none)
		wantSkipped func(dir string) map[string]string
		wantRead    []string // read, but not as targets
	}{
		{
			name:        "plain directory",
			wantTargets: map[string]string{"base.qcow2": "", "disk.vdi": zipNote, "real.vhd": "named .vhd, content is vdi"},
			wantSkipped: func(dir string) map[string]string {
				m := linkSkips(dir)
				m["notes.txt"] = "not an image: text"
				return m
			},
		},
		{
			// A symlink into a --backing-root directory is followed and
			// says so; one to a file outside every root still is not.
			name:        "plain directory with a backing root",
			backingRoot: true,
			wantTargets: map[string]string{"base.qcow2": "", "disk.vdi": zipNote, "real.vhd": "named .vhd, content is vdi", "far.qcow2": "(under --backing-root"},
			wantSkipped: func(dir string) map[string]string {
				m := linkSkips(dir)
				delete(m, "far.qcow2")
				for _, l := range []string{"shadow", "nowhere.qcow2", "out-gone.qcow2"} {
					m[l] = "symlink to a file outside the scanned directory and every --backing-root: not followed"
				}
				m["notes.txt"] = "not an image: text"
				return m
			},
		},
		{
			name:        "store with an overlay",
			overlay:     true,
			wantTargets: map[string]string{"web.qcow2": "", "disk.vdi": zipNote, "real.vhd": "named .vhd, content is vdi", "notes.txt": ""},
			wantSkipped: linkSkips,
			wantRead:    []string{"base.qcow2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "images")
			outside := filepath.Join(root, "elsewhere")
			for _, d := range []string{dir, outside} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			in := func(name string) string { return filepath.Join(dir, name) }
			testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", in("base.qcow2"), "4M")
			if tc.overlay {
				testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", in("web.qcow2"))
			}
			testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(outside, "far.qcow2"), "4M")
			testutil.Run(t, "qemu-img", "create", "-q", "-f", "vdi", in("real.vhd"), "4M") // a VDI named .vhd
			if err := os.WriteFile(in("notes.txt"), []byte("a note about the images\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			zf, err := os.Create(in("disk.vdi")) // a zip named .vdi
			if err != nil {
				t.Fatal(err)
			}
			zw := zip.NewWriter(zf)
			w, _ := zw.Create("disk.img")
			w.Write([]byte("not a disk"))
			zw.Close()
			zf.Close()
			secret := filepath.Join(root, "shadow")
			if err := os.WriteFile(secret, []byte("root:$6$planted:19000:0:99999:7:::\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for link, to := range map[string]string{"again.qcow2": "base.qcow2", "far.qcow2": "../elsewhere/far.qcow2", "gone.qcow2": "missing.qcow2", "sub": ".", "shadow": secret,
				"nowhere.qcow2": "/nonexistent-imgaudit-test/far.qcow2", "out-gone.qcow2": "../missing.qcow2"} {
				if err := os.Symlink(to, in(link)); err != nil {
					t.Fatal(err)
				}
			}
			if err := syscall.Mkfifo(in("pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
			before := treeSums(t, root)

			opts := scanner.Options{Engine: newEngine(t)}
			if tc.backingRoot {
				opts.BackingRoots = []string{outside}
			}
			rep, err := scanner.New(opts).Scan(context.Background(), []string{dir})
			if err != nil {
				t.Fatal(err)
			}
			targets := map[string][]string{}
			for _, tg := range rep.Targets {
				targets[filepath.Base(tg.Path)] = tg.Notes
				if len(tg.Errors) > 0 {
					t.Errorf("%s: errors %q", tg.Path, tg.Errors)
				}
			}
			for name, note := range tc.wantTargets {
				notes, ok := targets[name]
				if !ok || note != "" && !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, note) }) || note == "" && len(notes) > 0 {
					t.Errorf("target %s: notes %q (present %v), want %q", name, notes, ok, note)
				}
			}
			if len(targets) != len(tc.wantTargets) {
				t.Errorf("targets %v, want %v", targets, tc.wantTargets)
			}
			skipped := map[string]string{}
			for _, s := range rep.Skipped {
				skipped[filepath.Base(s.Path)] = s.Reason
			}
			wantSkipped := tc.wantSkipped(dir)
			for name, reason := range wantSkipped {
				if skipped[name] != reason {
					t.Errorf("skipped %s: %q, want %q", name, skipped[name], reason)
				}
			}
			if len(skipped) != len(wantSkipped) {
				t.Errorf("skipped %v", skipped)
			}
			if !rep.Complete || len(rep.IncompleteReasons) != 0 {
				t.Errorf("complete=%v reasons %+v", rep.Complete, rep.IncompleteReasons)
			}
			for _, name := range tc.wantRead {
				if !slices.Contains(rep.Inputs, in(name)) {
					t.Errorf("inputs %q lack %s", rep.Inputs, name)
				}
			}
			after := treeSums(t, root)
			for p, sum := range before {
				if after[p] != sum {
					t.Errorf("%s changed during the scan", p)
				}
			}
		})
	}
}

// A target that cannot be read, and a view that cannot, make the run
// incomplete, with one reason each.
func TestUnreadableTargetsMakeTheRunIncomplete(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	img := filepath.Join(dir, "t.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "64M")
	testutil.Run(t, "qemu-io", "-c", "write -q -P 0x41 0 1M", img)
	whole, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "trunc.qcow2")
	if err := os.WriteFile(trunc, whole[:100000], 0o644); err != nil {
		t.Fatal(err)
	}
	// An overlay whose backing file is gone: one error, said once (it was
	// listed as a target error and again as a backing error).
	gone, orphan := filepath.Join(dir, "gone.qcow2"), filepath.Join(dir, "orphan.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", gone, "64M")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "gone.qcow2", orphan)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	// A saved VM state that repeats its own host bytes: its reader cuts it
	// there (formats/memory), and the view says so as its error.
	cutState, err := hostile.QCOW2AliasVMState(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		targets []string
		reason  string
		view    string // the view the reason is about, "" for the target
	}{
		{"missing file", []string{img, filepath.Join(dir, "missing.qcow2")}, "1 of 2 targets could not be read completely", ""},
		{"saved VM state cut", []string{cutState}, "1 of 1 targets could not be read completely", "#memory:saved"},
		{"truncated qcow2 alone", []string{trunc}, "1 of 1 targets could not be read completely", ""},
		{"backing file missing", []string{orphan}, "1 of 1 targets could not be read completely", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), tc.targets)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Complete || rep.IncompleteReason != tc.reason || len(rep.IncompleteReasons) != 1 {
				t.Fatalf("complete=%v reason=%q reasons=%+v", rep.Complete, rep.IncompleteReason, rep.IncompleteReasons)
			}
			x := rep.IncompleteReasons[0]
			if !strings.HasSuffix(x.View, tc.view) || (tc.view == "") != (x.View == "") {
				t.Errorf("reason %+v is about view %q, want one ending %q", x, x.View, tc.view)
			}
			if x.Target != tc.targets[len(tc.targets)-1] || !strings.Contains(x.Reason, filepath.Base(x.Target)) {
				t.Errorf("reason %+v does not name the target", x)
			}
			var buf strings.Builder
			if err := report.WriteTable(&buf, rep, report.TableOptions{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), "TARGET ERRORS (1)\n  "+x.Reason+"\n") || strings.Contains(buf.String(), ", complete\n") ||
				strings.Count(x.Reason, x.Target) != 1 {
				t.Errorf("table:\n%s", buf.String())
			}
		})
	}
}
