package main

// CLI contract tests: exit codes, --fail-on, --baseline, interruption,
// output refusals and directory accounting, through run() or the built
// binary. Every test proves its inputs byte-identical afterwards.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"golang.org/x/sys/unix"
)

// gateFixture holds images made at test time.
type gateFixture struct {
	dir       string
	clean     string // raw disk, no secret
	secrets   string // ext4 disk: one high (npm _authToken) and one low (Stripe test key) secret
	secrets2  string // another ext4 disk with one new high secret
	aesKey    string // ext4 disk with an AES-256 key schedule in a file
	truncated string // a qcow2 cut short
	demo      string // copy of testdata/demo/web01.qcow2 (with its base)
	missing   string
}

func randomAlnum(t *testing.T, n int) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alpha))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = alpha[k.Int64()]
	}
	return string(b)
}

// ext4Image makes an ext4 image of files with mkfs.ext4 -d.
func ext4Image(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", root, path, "4M")
}

func newGateFixture(t *testing.T) *gateFixture {
	t.Helper()
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4")
	dir := t.TempDir()
	f := &gateFixture{dir: dir, clean: filepath.Join(dir, "clean.img"), secrets: filepath.Join(dir, "secrets.img"),
		secrets2: filepath.Join(dir, "secrets2.img"), aesKey: filepath.Join(dir, "aeskey.img"),
		truncated: filepath.Join(dir, "truncated.qcow2"), missing: filepath.Join(dir, "missing.qcow2")}
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "raw", f.clean, "4M")
	testutil.Run(t, "qemu-io", "-f", "raw", "-c", "write -q -P 0x11 1M 512k", f.clean)
	ext4Image(t, f.secrets, map[string][]byte{
		"home/dev/.npmrc":  []byte("//registry.example.com/:_authToken=" + randomAlnum(t, 32) + "\n"),
		"srv/shop/env.txt": []byte("STRIPE_KEY=sk_test_" + randomAlnum(t, 32) + "\n"),
	})
	ext4Image(t, f.secrets2, map[string][]byte{
		"root/.npmrc": []byte("//registry.example.com/:_authToken=" + randomAlnum(t, 32) + "\n"),
	})
	key := make([]byte, 32)
	rand.Read(key)
	ext4Image(t, f.aesKey, map[string][]byte{"var/cache/keys.bin": structural.ExpandAESKey(key)})
	whole := filepath.Join(dir, "whole.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", whole, "64M")
	testutil.Run(t, "qemu-io", "-c", "write -q -P 0x41 0 1M", whole)
	b := testutil.FileSnapshot(t, whole)
	if err := os.WriteFile(f.truncated, b[:100000], 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(whole)
	demoDir := filepath.Join(dir, "demo")
	if err := os.Mkdir(demoDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web01.qcow2", "base.qcow2"} {
		if err := os.WriteFile(filepath.Join(demoDir, name), readAll(t, repoFile(t, "testdata/demo/"+name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.demo = filepath.Join(demoDir, "web01.qcow2")
	return f
}

// unchanged fails the test if any file under dir differs from before.
func unchanged(t *testing.T, before map[string][]byte, _ string) {
	t.Helper()
	for p, b := range before {
		if !bytes.Equal(b, testutil.FileSnapshot(t, p)) {
			t.Errorf("%s changed", p)
		}
	}
}

func snapshotTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out[p] = testutil.FileSnapshot(t, p)
		}
		return nil
	})
	return out
}

func severities(r *report.Report) []string {
	var s []string
	for _, f := range r.Findings {
		s = append(s, f.Severity)
	}
	slices.Sort(s)
	return s
}

// Every --fail-on threshold and every exit code but 130 (see
// TestInterruptWritesPartialReport).
func TestExitCodes(t *testing.T) {
	f := newGateFixture(t)
	before := snapshotTree(t, f.dir)
	// The fixture's secrets are what the thresholds below assume.
	out := filepath.Join(t.TempDir(), "r.json")
	code, _, errs := runCLI(t, "scan", "--no-progress", "--format", "json", "-o", out, f.secrets)
	if got := severities(readReportFile(t, out)); code != exitFindings || !slices.Equal(got, []string{"high", "low"}) {
		t.Fatalf("secrets image: exit %d, severities %v, want [high low]; %s", code, got, errs)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		complete bool
		verdict  string // on stderr
	}{
		{"clean image", []string{f.clean}, exitOK, true, "PASS (exit 0): 0 findings at or above --fail-on low"},
		{"default threshold low", []string{f.secrets}, exitFindings, true, "FAIL (exit 1): 2 findings at or above --fail-on low"},
		{"--fail-on low", []string{"--fail-on", "low", f.secrets}, exitFindings, true, "2 findings at or above --fail-on low"},
		{"--fail-on medium", []string{"--fail-on", "medium", f.secrets}, exitFindings, true, "1 finding at or above --fail-on medium"},
		{"--fail-on high", []string{"--fail-on", "high", f.secrets}, exitFindings, true, "1 finding at or above --fail-on high"},
		{"--fail-on critical", []string{"--fail-on", "critical", f.secrets}, exitOK, true, "PASS (exit 0): 0 findings at or above --fail-on critical"},
		{"--fail-on critical, demo", []string{"--fail-on", "critical", f.demo}, exitFindings, true, "at or above --fail-on critical"},
		{"--fail-on none", []string{"--fail-on", "none", f.secrets, f.demo}, exitOK, true, "PASS (exit 0)"},
		{"missing target beside a clean one", []string{"--fail-on", "high", f.clean, f.missing}, exitIncomplete, false,
			"FAIL (exit 2): incomplete: 1 of 2 targets could not be read completely"},
		{"truncated qcow2 alone", []string{f.truncated}, exitUsage, false, "no target could be read"},
		{"missing target alone", []string{f.missing}, exitUsage, false, "no target could be read"},
		{"incomplete and findings", []string{"--fail-on", "high", f.secrets, f.missing}, exitIncompleteFindings, false,
			"FAIL (exit 3): incomplete: 1 of 2 targets could not be read completely; 1 finding at or above --fail-on high"},
		{"incomplete, --fail-on none", []string{"--fail-on", "none", f.secrets, f.truncated}, exitIncomplete, false, "FAIL (exit 2): incomplete"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r.json")
			args := append([]string{"scan", "--no-progress", "--format", "json", "-o", out}, tc.args...)
			code, stdout, errs := runCLI(t, args...)
			if code != tc.code || !strings.Contains(errs, tc.verdict) || stdout != "" {
				t.Fatalf("exit %d (want %d); stderr %q (want %q); stdout %q", code, tc.code, errs, tc.verdict, stdout)
			}
			r := readReportFile(t, out)
			if r.Complete != tc.complete || !tc.complete && (r.IncompleteReason == "" || len(r.IncompleteReasons) == 0) {
				t.Errorf("complete=%v reason %q reasons %+v, want complete=%v", r.Complete, r.IncompleteReason, r.IncompleteReasons, tc.complete)
			}
			if !strings.Contains(errs, "SUMMARY: ") {
				t.Errorf("no summary line on stderr: %q", errs)
			}
		})
	}
	// The table says it too, in its header, and says each error once.
	code, stdout, _ := runCLI(t, "scan", "--no-progress", f.clean, f.missing)
	if code != exitIncomplete || !strings.Contains(stdout, "INCOMPLETE: 1 of 2 targets could not be read completely") ||
		strings.Count(stdout, filepath.Base(f.missing)) != 2 { // the target line, the error, nothing else
		t.Errorf("table: exit %d\n%s", code, stdout)
	}
	unchanged(t, before, f.dir)
}

func TestBaseline(t *testing.T) {
	f := newGateFixture(t)
	before := snapshotTree(t, f.dir)
	out := t.TempDir()
	base := filepath.Join(out, "baseline.json")
	if code, _, errs := runCLI(t, "scan", "--no-progress", "--fail-on", "none", "--format", "json", "-o", base, f.secrets); code != exitOK {
		t.Fatalf("baseline scan: exit %d %s", code, errs)
	}
	tests := []struct {
		name       string
		targets    []string
		code       int
		findings   int
		suppressed int
	}{
		{"nothing new", []string{f.secrets}, exitOK, 0, 2},
		{"one new secret", []string{f.secrets, f.secrets2}, exitFindings, 1, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := filepath.Join(out, "r.json")
			args := append([]string{"scan", "--no-progress", "--baseline", base, "--format", "json", "-o", rp}, tc.targets...)
			code, _, errs := runCLI(t, args...)
			r := readReportFile(t, rp)
			if code != tc.code || len(r.Findings) != tc.findings || r.Summary.SuppressedByBaseline != tc.suppressed {
				t.Fatalf("exit %d, %d findings, %d suppressed; want %d, %d, %d (%s)", code, len(r.Findings), r.Summary.SuppressedByBaseline,
					tc.code, tc.findings, tc.suppressed, errs)
			}
			for _, fd := range r.Findings {
				if fd.New == nil || !*fd.New {
					t.Errorf("finding %s not marked new", fd.Rule)
				}
			}
		})
	}
	// The report may replace the baseline it was compared with: written
	// whole, after the baseline was read.
	if code, _, errs := runCLI(t, "scan", "--no-progress", "--baseline", base, "--format", "json", "-o", base, f.secrets2); code != exitFindings {
		t.Fatalf("scan over its own baseline: exit %d %s", code, errs)
	}
	if r := readReportFile(t, base); len(r.Findings) != 1 {
		t.Errorf("new baseline has %d findings", len(r.Findings))
	}
	unchanged(t, before, f.dir)
}

func findingRules(r *report.Report) map[string]int {
	m := map[string]int{}
	for _, f := range r.Findings {
		m[f.Rule]++
	}
	return m
}

// --memory-rules turns the AES key-schedule search on for disk views;
// --no-rollback turns the rollback analysis off.
func TestMemoryRulesAndNoRollback(t *testing.T) {
	f := newGateFixture(t)
	before := snapshotTree(t, f.dir)
	tests := []struct {
		name    string
		args    []string
		rule    string
		present bool
	}{
		{"AES schedule on a disk: off by default", []string{f.aesKey}, "aes-key-schedule", false},
		{"AES schedule on a disk: --memory-rules", []string{"--memory-rules", f.aesKey}, "aes-key-schedule", true},
		{"rollback analysis by default", []string{f.demo}, "rollback-host-key", true},
		{"--no-rollback", []string{"--no-rollback", f.demo}, "rollback-host-key", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rp := filepath.Join(t.TempDir(), "r.json")
			code, _, errs := runCLI(t, append([]string{"scan", "--no-progress", "--format", "json", "-o", rp}, tc.args...)...)
			if code != exitOK && code != exitFindings {
				t.Fatalf("exit %d: %s", code, errs)
			}
			rules := findingRules(readReportFile(t, rp))
			if (rules[tc.rule] > 0) != tc.present {
				t.Errorf("rule %s present=%v, want %v (rules %v)", tc.rule, rules[tc.rule] > 0, tc.present, rules)
			}
		})
	}
	unchanged(t, before, f.dir)
}

// extract -o - writes the view's bytes, as qemu-img convert does.
func TestExtractToStdout(t *testing.T) {
	f := newGateFixture(t)
	before := snapshotTree(t, f.dir)
	ref := filepath.Join(t.TempDir(), "ref.raw")
	testutil.Run(t, "qemu-img", "convert", "-O", "raw", f.demo, ref)
	code, stdout, errs := runCLI(t, "extract", f.demo, "-o", "-")
	if code != exitOK || !bytes.Equal([]byte(stdout), testutil.FileSnapshot(t, ref)) {
		t.Fatalf("extract -o -: exit %d, %d bytes, want %d: %s", code, len(stdout), len(testutil.FileSnapshot(t, ref)), errs)
	}
	unchanged(t, before, f.dir)
}

// -o names a pipe or a character device: scan writes its report into the
// pipe (a FIFO's reader gets the JSON), extract writes the view's bytes
// as a stream, and the device node stays a device (renaming a report over
// /dev/null had made it a regular file). A node of /dev/null's device in
// a temporary directory stands for /dev/null.
func TestOutputToPipesAndDevices(t *testing.T) {
	f := newGateFixture(t)
	dir := t.TempDir()
	null := filepath.Join(dir, "null")
	if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod (the suite runs as root): %v", err)
	}
	for _, args := range [][]string{
		{"scan", "--no-progress", "--format", "json", "--fail-on", "none", "-o", null, f.clean},
		{"extract", f.demo, "-o", null},
	} {
		if code, _, errs := runCLI(t, args...); code != exitOK {
			t.Errorf("%s -o %s: exit %d: %s", args[0], null, code, errs)
		}
		if st, err := os.Lstat(null); err != nil || st.Mode()&os.ModeCharDevice == 0 {
			t.Fatalf("%s: the device node is now %v (%v)", args[0], st.Mode(), err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		got <- b
	}()
	if code, _, errs := runCLI(t, "scan", "--no-progress", "--format", "json", "--fail-on", "none", "-o", fifo, f.clean); code != exitOK {
		t.Fatalf("scan -o FIFO: exit %d: %s", code, errs)
	}
	select {
	case b := <-got:
		var rep struct{ Targets []json.RawMessage }
		if err := json.Unmarshal(b, &rep); err != nil || len(rep.Targets) != 1 {
			t.Errorf("the FIFO's reader got %d bytes that are no report of one target: %v", len(b), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the FIFO's reader got nothing in 30 s")
	}
}

// No output path may overwrite evidence: a target, a file in a scanned
// directory, a backing file found during the scan, a hard or symbolic link
// to any of them, a merge input, the registry's state file.
func TestOutputRefusals(t *testing.T) {
	f := newGateFixture(t)
	demoDir := filepath.Dir(f.demo)
	base := filepath.Join(demoDir, "base.qcow2")
	links := t.TempDir()
	hard, sym := filepath.Join(links, "hard.json"), filepath.Join(links, "sym.json")
	if err := os.Link(f.secrets, hard); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, sym); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(links, "a.json")
	if code, _, errs := runCLI(t, "scan", "--no-progress", "--format", "json", "-o", rep, f.clean); code != exitOK {
		t.Fatalf("%d %s", code, errs)
	}
	state := filepath.Join(links, "state.json")
	if err := os.WriteFile(state, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ign, rules := filepath.Join(links, "accepted.ignore"), filepath.Join(links, "extra.toml")
	if err := os.WriteFile(ign, []byte("sha256:"+strings.Repeat("0", 64)+" # test fixture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rules, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before, linked := snapshotTree(t, f.dir), snapshotTree(t, links)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"scan -o the target", []string{"scan", "-o", f.secrets, f.secrets}, "refusing to write " + f.secrets + ": it is " + f.secrets + ", which this run reads"},
		{"scan -o into the scanned directory", []string{"scan", "-o", filepath.Join(demoDir, "r.json"), demoDir}, "it lies inside " + demoDir},
		{"scan -o the backing file of the target", []string{"scan", "-o", base, f.demo}, "refusing to write " + base + ": it is " + base},
		{"scan -o a hard link to the target", []string{"scan", "-o", hard, f.secrets}, "refusing to write " + hard},
		{"scan -o a symlink to the backing file", []string{"scan", "-o", sym, f.demo}, "refusing to write " + sym},
		{"scan -o a missing directory", []string{"scan", "-o", filepath.Join(f.dir, "nonexistent", "r.json"), f.secrets}, "nonexistent: no such file or directory"},
		{"scan -o its --ignore file", []string{"scan", "--ignore", ign, "-o", ign, f.secrets}, "refusing to write " + ign},
		{"scan -o its --rules file", []string{"scan", "--rules", rules, "-o", rules, f.secrets}, "refusing to write " + rules},
		{"registry -o its --ignore file", []string{"registry", "--ignore", ign, "-o", ign, "127.0.0.1:1/x:1"}, "refusing to write " + ign},
		{"merge -o an input", []string{"merge", "-o", rep, rep}, "refusing to write " + rep},
		{"registry -o its state", []string{"registry", "--state", state, "-o", state, "127.0.0.1:1/x:1"}, "refusing to write " + state},
		{"extract -o the backing file", []string{"extract", f.demo, "-o", base}, "refusing to write " + base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] == "scan" {
				// Progress lines would say that the scan ran: every
				// refusal comes before it, a backing file's too.
				args = append([]string{"scan", "--progress"}, args[1:]...)
			}
			start := time.Now()
			code, stdout, errs := runCLI(t, args...)
			t.Logf("refused in %v", time.Since(start))
			if code != exitUsage || !strings.Contains(errs, tc.want) || stdout != "" {
				t.Fatalf("exit %d, stderr %q (want %q), stdout %q", code, errs, tc.want, stdout)
			}
			if strings.Contains(errs, " allocated") {
				t.Errorf("the scan ran before the refusal: %q", errs)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(demoDir, "r.json")); err == nil {
		t.Error("a report was written into the scanned directory")
	}
	unchanged(t, before, f.dir)
	unchanged(t, linked, links)
}

// TestOutputRefusalsOfFilesOpened: a file an image opened without then
// reading it through a view is evidence too: a backing file that could
// not be decrypted (the run is incomplete) and a Parallels disk's
// DiskDescriptor.xml. Neither was among the inputs, so scan and extract
// wrote their output over them (an audit saw both replaced). The base
// uses qcow2's legacy AES encryption: LUKS has qemu-img time PBKDF2 by
// thread CPU time, which on a loaded machine reads none and fails
// ("Unable to get accurate CPU usage"; TestEncrypted retries for it).
func TestOutputRefusalsOfFilesOpened(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
qemu-img create -q -f qcow2 --object secret,id=s0,data=pw -o encrypt.format=aes,encrypt.key-secret=s0 base.qcow2 16M
qemu-img create -q -f qcow2 -u -b base.qcow2 -F qcow2 top.qcow2 16M
mkdir p
qemu-img create -q -f parallels p/disk.hds 16M`)
	desc := filepath.Join(dir, "p", "DiskDescriptor.xml")
	const guid = "{5fbaabe3-6958-40ff-92a7-860e329aab41}"
	x := `<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
  <Disk_Parameters><Disk_size>32768</Disk_size><Cylinders>64</Cylinders><Heads>16</Heads><Sectors>32</Sectors><Padding>0</Padding></Disk_Parameters>
  <StorageData><Storage><Start>0</Start><End>32768</End><Blocksize>2048</Blocksize>
    <Image><GUID>` + guid + `</GUID><Type>Compressed</Type><File>disk.hds</File></Image>
  </Storage></StorageData>
  <Snapshots><Shot><GUID>` + guid + `</GUID><ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID></Shot></Snapshots>
</Parallels_disk_image>
`
	if err := os.WriteFile(desc, []byte(x), 0o644); err != nil {
		t.Fatal(err)
	}
	base, top, hds := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2"), filepath.Join(dir, "p", "disk.hds")
	if code, out, errs := runCLI(t, "info", hds); code != exitOK || !strings.Contains(out+errs, "parallels") {
		t.Fatalf("info %s: exit %d %s %s", hds, code, out, errs)
	}
	before := snapshotTree(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"scan -o a backing file that failed to decrypt", []string{"scan", "--no-progress", "--format", "json", "-o", base, top}, "refusing to write " + base},
		{"scan -o the DiskDescriptor.xml", []string{"scan", "--no-progress", "--format", "json", "-o", desc, hds}, "refusing to write " + desc},
		{"extract -o the DiskDescriptor.xml", []string{"extract", hds, "-o", desc}, "refusing to write " + desc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tc.args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q: want exit %d and %q", code, errs, exitUsage, tc.want)
			}
		})
	}
	unchanged(t, before, dir)
}

// TestMain removes the binary cliBinary built, which would otherwise be
// left in the temporary directory (22 MB a run).
func TestMain(m *testing.M) {
	code := m.Run()
	if cliBuilt.Load() {
		if bin, err := cliBinary(); err == nil {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}

// cliBuilt says whether a test asked cliBinary for the binary, so that
// TestMain does not build it only to remove it.
var cliBuilt atomic.Bool

// cliBinary builds imgaudit once for the tests that run it as a process.
var cliBinary = sync.OnceValues(func() (string, error) {
	cliBuilt.Store(true)
	dir, err := os.MkdirTemp("", "imgaudit-cli-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // nobody runs it too
		return "", err
	}
	bin := filepath.Join(dir, "imgaudit")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, out)
	}
	return bin, nil
})

func buildCLI(t *testing.T) string {
	t.Helper()
	bin, err := cliBinary()
	if err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// SIGINT during a scan: exit 130 and a partial report, marked incomplete.
func TestInterruptWritesPartialReport(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	// A slow input that is cheap to make: 64 MiB of distinct AWS key IDs
	// (as the hostile suite's distinct-hits case), each a match to
	// validate until the scan's findings limit, then counted, takes 0.8 s
	// to scan on one worker, in 4 MiB chunks, so the interrupt sent when
	// the scan begins lands inside it and is heeded when the chunk in
	// flight ends. It used to be 1 GiB of one byte written with qemu-io,
	// which came to scan in 0.5 s, then 16 MiB of these, which took 3 s
	// when it was chosen and 0.34 s on 2026-12-07.
	img := filepath.Join(dir, "distinct-hits.raw")
	if err := hostile.WriteDistinctHits(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, img)
	out := filepath.Join(dir, "r.json")
	cmd := exec.Command(bin, "scan", "--progress", "--workers", "1", "--format", "json", "-o", out, img)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	var signalled time.Time
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "scanning "+filepath.Base(img)+"#current") {
			// The scan has begun.
			cmd.Process.Signal(syscall.SIGINT)
			signalled = time.Now()
			break
		}
	}
	rest, _ := io.ReadAll(stderr)
	err = cmd.Wait()
	if !signalled.IsZero() {
		t.Logf("exited %v after SIGINT", time.Since(signalled))
	}
	code := cmd.ProcessState.ExitCode()
	log := strings.Join(lines, "\n") + "\n" + string(rest)
	if code != exitInterrupted || !strings.Contains(log, "imgaudit scan: interrupted") {
		t.Fatalf("exit %d (%v), want 130; stderr:\n%s", code, err, log)
	}
	r := readReportFile(t, out)
	if r.Complete || !strings.Contains(r.IncompleteReason, "interrupted") || len(r.Targets) != 1 {
		t.Errorf("report: complete=%v reason %q, %d targets", r.Complete, r.IncompleteReason, len(r.Targets))
	}
	if fileSum(t, img) != before {
		t.Fatal("image changed")
	}
}

// fileSum hashes a file too large to hold twice in memory.
func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// A directory scan accounts for every file, also when the scanning user
// cannot read some of them: an unreadable overlay is a failed target (the
// run is incomplete, exit 2), not silence.
func TestDirectoryAccountingAsUnprivilegedUser(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	bin := buildCLI(t)
	var asUser []string
	if os.Geteuid() == 0 {
		testutil.RequireTool(t, "setpriv")
		asUser = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} { // t.TempDir makes them 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir, outside, outDir := filepath.Join(root, "images"), filepath.Join(root, "elsewhere"), filepath.Join(root, "out")
	for _, d := range []string{dir, outside, outDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(outDir, 0o777)
	in := func(n string) string { return filepath.Join(dir, n) }
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", in("base.qcow2"), "4M")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", in("overlay.qcow2"))
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(outside, "far.qcow2"), "4M")
	if err := os.Symlink("../elsewhere/far.qcow2", in("far.qcow2")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in("README"), []byte("images of the build farm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	zf, _ := os.Create(in("disk.vdi"))
	zw := zip.NewWriter(zf)
	w, _ := zw.Create("disk.img")
	w.Write([]byte("no disk here"))
	zw.Close()
	zf.Close()
	before := snapshotTree(t, root)
	if err := os.Chmod(in("overlay.qcow2"), 0); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(outDir, "r.json")
	args := append(asUser, bin, "scan", "--no-progress", "--format", "json", "-o", out, dir)
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitIncomplete {
		t.Fatalf("exit %d, want %d: %s", code, exitIncomplete, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("no report: %v; stderr %s", err, stderr.String())
	}
	r := readReportFile(t, out)
	failed, notes := map[string]string{}, map[string][]string{}
	for _, tg := range r.Targets {
		if len(tg.Errors) > 0 {
			failed[filepath.Base(tg.Path)] = tg.Errors[0]
		}
		notes[filepath.Base(tg.Path)] = tg.Notes
	}
	skipped := map[string]string{}
	for _, s := range r.Skipped {
		skipped[filepath.Base(s.Path)] = s.Reason
	}
	if r.Complete || r.Summary.TargetsFailed != 1 || !strings.Contains(failed["overlay.qcow2"], "permission denied") {
		t.Errorf("complete=%v targets_failed=%d failed=%v", r.Complete, r.Summary.TargetsFailed, failed)
	}
	if _, ok := notes["base.qcow2"]; !ok {
		t.Errorf("base.qcow2 is no target: %v", notes)
	}
	if !slices.Contains(notes["disk.vdi"], "named .vdi, content is a zip archive: not an image; scanned as raw bytes") {
		t.Errorf("disk.vdi notes %q", notes["disk.vdi"])
	}
	for name, reason := range map[string]string{
		"far.qcow2": "symlink to a file outside the scanned directory: not followed",
		"README":    "not an image: text",
	} {
		if skipped[name] != reason {
			t.Errorf("skipped %s: %q, want %q", name, skipped[name], reason)
		}
	}
	os.Chmod(in("overlay.qcow2"), 0o644)
	unchanged(t, before, root)
}

// info lists a missing backing file in the chain and says its error once.
func TestInfoSaysEachErrorOnce(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "top.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "4M")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", top)
	if err := os.Remove(base); err != nil {
		t.Fatal(err)
	}
	_, out, _ := runCLI(t, "info", top)
	if !strings.Contains(out, "<- base.qcow2 (qcow2) [NOT OPENED]") || strings.Count(out, "no such file or directory") != 1 {
		t.Errorf("info:\n%s", out)
	}
}
