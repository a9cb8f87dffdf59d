package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestBackingRootFlag: an overlay naming its base in another directory by
// absolute path (as libvirt writes it) is refused by info and scan, with
// the reason, until --backing-root names the base's directory; a
// --backing-root that is not a directory is a usage error; every command
// that opens images documents the flag.
func TestBackingRootFlag(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	templates := filepath.Join(dir, "templates")
	base := filepath.Join(templates, "base.raw")
	img := filepath.Join(dir, "images", "web01.qcow2")
	testutil.Run(t, "mkdir", "-p", templates, filepath.Dir(img))
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "raw", base, "4M")
	testutil.Run(t, "qemu-io", "-f", "raw", "-c", "write -q -P 0x11 1M 64k", base)
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, img)
	refusal := `backing file "` + base + `": outside the allowed roots: not followed (see --backing-root)`

	for _, c := range []struct {
		args    []string
		refused bool
	}{
		{[]string{"info", "--format", "json", img}, true},
		{[]string{"info", "--format", "json", "--backing-root", templates, img}, false},
		{[]string{"scan", "--format", "json", "--fail-on", "none", img}, true},
		{[]string{"scan", "--format", "json", "--fail-on", "none", img, "--backing-root", templates}, false},
	} {
		t.Run(strings.Join(c.args[:1], " ")+map[bool]string{true: " refused", false: " with root"}[c.refused], func(t *testing.T) {
			_, out, errs := runCLI(t, c.args...)
			var doc struct {
				Images []struct {
					Backing []struct{ Error string } `json:"backing"`
					Views   []struct{ Kind string }  `json:"views"`
				} `json:"images"`
				Targets []struct {
					Errors []string                `json:"errors"`
					Views  []struct{ Kind string } `json:"views"`
				} `json:"targets"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("%v: %s %s", err, out, errs)
			}
			var text string
			var kinds []string
			for _, im := range doc.Images {
				for _, b := range im.Backing {
					text += b.Error
				}
				for _, v := range im.Views {
					kinds = append(kinds, v.Kind)
				}
			}
			for _, tg := range doc.Targets {
				text += strings.Join(tg.Errors, "\n")
				for _, v := range tg.Views {
					kinds = append(kinds, v.Kind)
				}
			}
			hasBacking := strings.Contains(strings.Join(kinds, ","), "backing")
			if c.refused != strings.Contains(text, refusal) || c.refused == hasBacking {
				t.Errorf("errors %q, view kinds %v: refused should be %v", text, kinds, c.refused)
			}
		})
	}
	// extract writes the view either way, but fails where the base was
	// not followed: zeros stand where its bytes would be.
	for _, c := range []struct {
		args []string
		code int
		data bool
	}{
		{[]string{"extract", img, "-o", filepath.Join(dir, "refused.raw")}, exitUsage, false},
		{[]string{"extract", img, "-o", filepath.Join(dir, "rooted.raw"), "--backing-root", templates}, exitOK, true},
	} {
		code, _, errs := runCLI(t, c.args...)
		out := testutil.FileSnapshot(t, c.args[3])
		got := len(out) == 4<<20 && out[1<<20] == 0x11
		if code != c.code || got != c.data || (code != exitOK && !strings.Contains(errs, refusal)) {
			t.Errorf("%v: exit %d, base data %v, stderr %q", c.args, code, got, errs)
		}
	}
	for _, cmd := range []string{"scan", "info", "extract"} {
		args := []string{cmd, "--backing-root", filepath.Join(dir, "missing"), img}
		if cmd != "info" { // info has no -o, and an unknown flag is refused first
			args = append(args, "-o", filepath.Join(dir, "out.raw"))
		}
		code, _, errs := runCLI(t, args...)
		if code != exitUsage || !strings.Contains(errs, "--backing-root") {
			t.Errorf("%s with a missing --backing-root: exit %d, %q", cmd, code, errs)
		}
		_, out, errs := runCLI(t, cmd, "--help")
		if !strings.Contains(out+errs, "-backing-root DIR") {
			t.Errorf("%s --help does not document --backing-root", cmd)
		}
	}
}
