package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// makeImage builds a qcow2 with data, two internal snapshots and a backing
// file, using the real qemu tools.
func makeImage(t *testing.T) (dir, img, base string) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir = t.TempDir()
	base = filepath.Join(dir, "base.raw")
	img = filepath.Join(dir, "web01.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "raw", base, "8M")
	testutil.Run(t, "qemu-io", "-f", "raw", "-c", "write -q -P 0x11 1M 512k", base)
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.raw", img)
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x22 0 64k", img)
	testutil.Run(t, "qemu-img", "snapshot", "-c", "one", img)
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x33 1M 64k", img)
	testutil.Run(t, "qemu-img", "snapshot", "-c", "two", img)
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x44 4M 128k", img)
	return dir, img, base
}

func TestInfoAndExtractMatchQemu(t *testing.T) {
	dir, img, base := makeImage(t)
	before := map[string][]byte{img: testutil.FileSnapshot(t, img), base: testutil.FileSnapshot(t, base)}

	code, out, errs := runCLI(t, "info", "--format", "json", img)
	if code != 0 {
		t.Fatalf("info exit %d: %s", code, errs)
	}
	var info struct {
		Images []struct {
			Format  string `json:"format"`
			Backing []struct {
				Name string `json:"name"`
			} `json:"backing"`
			Views []struct {
				ID   string `json:"id"`
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"views"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info json: %v\n%s", err, out)
	}
	if len(info.Images) != 1 || info.Images[0].Format != "qcow2" {
		t.Fatalf("info: %s", out)
	}
	if b := info.Images[0].Backing; len(b) != 1 || b[0].Name != "base.raw" {
		t.Errorf("backing = %+v", b)
	}
	// Expected bytes of each view, from qemu-img itself.
	want := map[string][]string{
		"web01.qcow2#current":          {"convert", "-O", "raw", img},
		"web01.qcow2#snapshot:one":     {"convert", "-l", "snapshot.name=one", "-O", "raw", img},
		"web01.qcow2#snapshot:two":     {"convert", "-l", "snapshot.name=two", "-O", "raw", img},
		"web01.qcow2#backing:base.raw": {"convert", "-f", "raw", "-O", "raw", base},
	}
	seen := map[string]bool{}
	for _, v := range info.Images[0].Views {
		seen[v.ID] = true
	}
	for id, args := range want {
		t.Run(id, func(t *testing.T) {
			if !seen[id] {
				t.Fatalf("info lists no view %s: %s", id, out)
			}
			ref := filepath.Join(dir, "ref.raw")
			testutil.Run(t, "qemu-img", append(args[:len(args)-1:len(args)-1], args[len(args)-1], ref)...)
			got := filepath.Join(dir, "got.raw")
			if code, _, errs := runCLI(t, "extract", img, "--view", id, "-o", got); code != 0 {
				t.Fatalf("extract exit %d: %s", code, errs)
			}
			a, b := testutil.FileSnapshot(t, ref), testutil.FileSnapshot(t, got)
			if !bytes.Equal(a, b) {
				t.Fatalf("extract of %s differs from qemu-img convert (%d vs %d bytes)", id, len(b), len(a))
			}
		})
	}
	// The IDs a report gives when several scanned files share a name
	// (parent directories in front) select the same view; a directory
	// that is not the image's does not.
	for _, c := range []struct {
		id string
		ok bool
	}{
		{filepath.Base(dir) + "/web01.qcow2#snapshot:one", true},
		{"elsewhere/web01.qcow2#snapshot:one", false},
	} {
		got := filepath.Join(dir, "prefixed.raw")
		code, _, errs := runCLI(t, "extract", img, "--view", c.id, "-o", got)
		if (code == 0) != c.ok {
			t.Errorf("extract --view %s: exit %d, want success %v: %s", c.id, code, c.ok, errs)
		}
		if c.ok {
			ref := filepath.Join(dir, "ref-one.raw")
			testutil.Run(t, "qemu-img", "convert", "-l", "snapshot.name=one", "-O", "raw", img, ref)
			if !bytes.Equal(testutil.FileSnapshot(t, got), testutil.FileSnapshot(t, ref)) {
				t.Errorf("extract --view %s differs from qemu-img convert", c.id)
			}
		}
	}
	for p, b := range before {
		if !bytes.Equal(b, testutil.FileSnapshot(t, p)) {
			t.Errorf("%s changed after info and extract", p)
		}
	}
}

func TestExtractRefusesToOverwriteItsInput(t *testing.T) {
	_, img, base := makeImage(t)
	before := testutil.FileSnapshot(t, base)
	code, _, errs := runCLI(t, "extract", img, "-o", base)
	if code != exitUsage || !strings.Contains(errs, "refusing") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !bytes.Equal(before, testutil.FileSnapshot(t, base)) {
		t.Fatal("backing file changed")
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "Usage"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"info"}, exitUsage, "no image"},
		{[]string{"info", "--format", "xml", "x"}, exitUsage, "--format"},
		{[]string{"rules", "--format", "xml"}, exitUsage, "--format must be table or json"},
		{[]string{"rules", "--published-keys", "--format", "sarif"}, exitUsage, "--format must be table or json"},
		{[]string{"extract", "x"}, exitUsage, "-o FILE"},
		{[]string{"scan"}, exitUsage, "no target"},
		{[]string{"scan", "--fail-on", "severe", "x"}, exitUsage, "fail-on"},
		// info is no threshold: public material never fails a gate
		{[]string{"scan", "--fail-on", "info", "x"}, exitUsage, "fail-on"},
		{[]string{"scan", "--disable-rule", "no-such-rule", "x"}, exitUsage, "no rule"},
		{[]string{"scan", "--enable-rule", "no-such-rule", "x"}, exitUsage, "--enable-rule: no rule"},
		{[]string{"registry", "--enable-rule", "no-such-rule", "x"}, exitUsage, "--enable-rule: no rule"},
		{[]string{"registry", "--state-retention", "-1h", "x"}, exitUsage, `"-1h" is negative`},
		{[]string{"registry", "--state-retention", "a month", "x"}, exitUsage, `"a month": want days (30d) or a duration (720h, 90m)`},
		{[]string{"scan", "/nonexistent/image.qcow2"}, exitUsage, "no target could be read"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errs := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.msg) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, errs, tt.msg)
			}
		})
	}

}

// TestFailOnNeverCountsPublicFindings: a scan whose only findings are keys
// that an installed package ships unmodified (severity info) passes every
// --fail-on threshold, even low; --no-downgrade restores the rule's
// severity and the gate fails.
func TestFailOnNeverCountsPublicFindings(t *testing.T) {
	img := testutil.BuildPackagedImage(t, false).Image
	cases := []struct {
		args []string
		code int
		want string // in the output
		not  string // not in the output
	}{
		{[]string{"--fail-on", "low"}, exitOK, "KNOWN PUBLIC (", "CRITICAL"},
		{nil, exitOK, " known public findings", "CRITICAL"},
		{[]string{"--format", "json"}, exitOK, `"severity": "info"`, `"severity": "critical"`},
		{[]string{"--format", "sarif"}, exitOK, `"level": "note"`, `"level": "error"`},
		{[]string{"--no-downgrade"}, exitFindings, "critical", "KNOWN PUBLIC"},
		{[]string{"--no-downgrade", "--fail-on", "critical"}, exitFindings, "CRITICAL", "info"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errs := runCLI(t, append(append([]string{"scan", "--no-progress"}, c.args...), img)...)
			if code != c.code || !strings.Contains(out, c.want) || strings.Contains(out, c.not) {
				t.Errorf("exit %d (want %d), output lacks %q or has %q: %s\n%s", code, c.code, c.want, c.not, errs, out)
			}
		})
	}
}

// TestDaysFlag: --state-retention takes whole days or Go durations, and
// says its value back as it was given.
func TestDaysFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		str  string
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, "30d", false},
		{"720h", 30 * 24 * time.Hour, "30d", false},
		{"90m", 90 * time.Minute, "1h30m0s", false},
		{"0", 0, "0s", false},
		{"1.5d", 0, "", true},
		{"d", 0, "", true},
		{"-2d", 0, "", true},
		{"-1h", 0, "", true},
	} {
		var d daysFlag
		err := d.Set(tt.in)
		if (err != nil) != tt.err || !tt.err && (time.Duration(d) != tt.want || d.String() != tt.str) {
			t.Errorf("Set(%q): %v, %v (%s); want %v (%s), error %v", tt.in, time.Duration(d), err, d.String(), tt.want, tt.str, tt.err)
		}
	}
}
