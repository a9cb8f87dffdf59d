package hostile_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/internal/gctune"
	"github.com/imgaudit/imgaudit/internal/hostile"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/registry"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// The budgets every hostile case must stay within, with room for a
// shared 2-core machine: the documented bound on memory (README,
// "Limits"), temporary disk a few times what the sparse spool writes, and
// time far above what the cases take alone (0.1 to 10 s) and far below
// what they took before (killed at 60 s, or never ending).
const (
	maxRSS     = 512 << 20
	maxTempDir = 64 << 20
	maxTime    = 150 * time.Second
)

// expect is what a case's report must show besides the common checks.
type expect struct {
	// note is a substring of the hostile target's view notes or errors,
	// naming what was cut or refused.
	note string
	// truncated: the summary must say that a limit cut something.
	truncated bool
	// refused is a substring of the hostile target's error that refuses
	// a name the image wrote; the error must also name the file and the
	// offset of the name (": offset "). A case with one fails closed.
	refused string
	// incomplete: the hostile target could not be read completely, so the
	// gate fails closed (complete false, exit code at least 2 even with
	// --fail-on none). Without it the run must be complete.
	incomplete bool
	// decoded is the least the hostile target's views must have decoded
	// (views[].decoding.decoded_bytes): a case that bounds the decoders
	// must not pass by decoding nothing.
	decoded int64
}

const outsideRoots = "outside the allowed roots: not followed (see --backing-root)"

// expectations lists, for every case of hostile.Cases, what its report
// must say. A case without an entry fails: new cases must say what they
// expect.
var expectations = map[string]expect{
	"backing-absolute":          {refused: `backing file "/`, note: outsideRoots, incomplete: true},
	"backing-dotdot":            {refused: `backing file "../host/shadow": ` + outsideRoots, incomplete: true},
	"backing-symlink":           {refused: `backing file "link.raw": resolves to `, note: "/host/shadow, " + outsideRoots, incomplete: true},
	"data-file-absolute":        {refused: `external data file "/`, note: "/host/data.raw\": " + outsideRoots, incomplete: true},
	"data-file-dotdot":          {refused: `external data file "../host/data.raw": ` + outsideRoots, incomplete: true},
	"data-file-symlink":         {refused: `external data file "data-link.raw": resolves to `, note: "/host/data.raw, " + outsideRoots, incomplete: true},
	"vmdk-parent-absolute":      {refused: `parent "/`, note: "/host/parent.vmdk\": " + outsideRoots, incomplete: true},
	"qed-backing-absolute":      {refused: `qed: backing file "/`, note: outsideRoots, incomplete: true},
	"parallels-parent-absolute": {refused: `parallels: parent "/`, note: "/host/parent.hds\" of disk.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds: " + outsideRoots, incomplete: true},
	"parallels-alias":           {note: "aliased tables", truncated: true},
	"layer-backing-host":        {refused: `disk.qcow2: offset 528 (0x210): backing file "/`, note: "the image lies inside a container layer or archive, whose names are not resolved on this host: not followed", incomplete: true},
	"backing-fifo":              {refused: `backing file "fifo": `, note: "is a named pipe (FIFO), not a regular file: not opened", incomplete: true},
	"backing-dev-zero":          {refused: `backing file "/dev/zero": /dev/zero is a character device, not a regular file: not opened`, incomplete: true},
	"backing-proc":              {refused: `backing file "/proc/self/environ": /proc/`, note: "is a kernel pseudo file (/proc, /sys), not a regular file: not opened", incomplete: true},
	"qcow2-alias-current":       {note: "aliased tables", truncated: true},
	"qcow2-alias-vmstate":       {note: "saved VM state cut at its offset 131072", incomplete: true},
	"elf-aliased-segments":      {note: "aliased tables", truncated: true},
	"kdump-aliased-pages":       {note: "aliased tables", truncated: true},
	"elf-truncated":             {note: "truncated dump", incomplete: true},
	"lime-truncated":            {note: "truncated capture", incomplete: true},
	"qemu-fill-pages":           {note: "16777216 same-byte pages read as their byte but not scanned"},
	"ova-gzip-bomb":             {note: "cut after 8589934592 decompressed bytes, at the OVA's inflate bound", incomplete: true},
	"akia-repeated":             {truncated: true},
	"one-hit-repeated":          {truncated: true},
	"distinct-hits":             {truncated: true},
	"repeated-line":             {truncated: true},
	"fat-cross-linked":          {note: "vfat: cross-linked cluster chains"},
	"ext4-shared-index":         {note: "ext4: index blocks shared between inodes"},
	"xfs-shared-btree":          {note: "xfs: extent B+tree blocks shared between inodes"},
	"squashfs-id-bomb":          {note: "squashfs: file paths not attributed"},
	// Nothing is cut: each stream decodes whole, one big dictionary at a
	// time (decode.MemoryGate), within the memory bound.
	"xz-dictionaries":        {decoded: 16 * 150_400_000},
	"layers-xz-dictionaries": {decoded: 16 * 150_400_000},
	// The rule's findings are capped, and its hits past the cap are not
	// validated, in what decodes as in raw bytes.
	"gzip-distinct-hits": {truncated: true, decoded: 4 * 32 << 20},
	// The image's judging holds its records unpacked within a cap, and
	// says where it stopped reading them.
	"layers-records": {note: "package provenance: the image's package records pass 64 MiB at layer 1"},
	// Each layer packs its records as it reads them, beside the other's
	// dictionaries; the two layers' 126 MiB of records pass the image's
	// cap at its second layer.
	"layers-records-dictionaries": {decoded: 16 * 150_400_000, note: "package provenance: the image's package records pass 64 MiB at layer 1"},
}

// TestHostileInputs scans each crafted input beside a good target, each in
// a child process (this test binary, re-run), so that its memory peak,
// temporary disk and time are its own and a runaway case is killed
// instead of taking the suite down. It checks: the child did not panic or
// fail; peak RSS, temporary disk and time stayed within budget; the good
// target still reports its planted secret; the report names what the case
// made it cut or refuse, with the file and offset; no name an image wrote
// was opened outside its allowed roots, nor any file that is not regular
// (the paths the readers asked the opener for, from scanner.Options.Names);
// the planted host credential is never reported; and an incomplete target
// makes the gate fail closed.
func TestHostileInputs(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child process")
	}
	root := t.TempDir()
	ctx := context.Background()
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	good, err := hostile.Good(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			want, ok := expectations[c.Name]
			if !ok {
				t.Fatalf("case %s has no expectation in this suite", c.Name)
			}
			testutil.RequireTool(t, c.Tools...)
			dir := filepath.Join(root, c.Name)
			tmp := filepath.Join(dir, "tmp")
			if err := os.MkdirAll(tmp, 0o755); err != nil {
				t.Fatal(err)
			}
			target, err := c.Make(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			before := digest(t, target)
			planted := treeDigests(t, hostile.HostDir(dir))
			out := filepath.Join(dir, "report.json")
			res := runChild(t, target, good, out, tmp, c.Roots)
			t.Logf("%s: %.1f s, peak RSS %d MiB, peak temp %d KiB", c.Name, res.wall.Seconds(), res.rss>>20, res.temp>>10)
			if res.err != nil {
				t.Fatalf("child: %v\n%s", res.err, res.output)
			}
			if res.rss > maxRSS {
				t.Errorf("peak RSS %d MiB, over the %d MiB budget", res.rss>>20, maxRSS>>20)
			}
			if res.temp > maxTempDir {
				t.Errorf("temporary files reached %d MiB, over the %d MiB budget", res.temp>>20, maxTempDir>>20)
			}
			if after := digest(t, target); after != before {
				t.Errorf("%s changed during the scan", target)
			}
			if after := treeDigests(t, hostile.HostDir(dir)); !maps.Equal(after, planted) {
				t.Errorf("the planted host files changed during the scan")
			}
			rep := readReport(t, out)
			checkReport(t, rep, target, want)
			checkNames(t, readNames(t, out), target, hostile.HostDir(dir), append([]string{filepath.Dir(target)}, c.Roots...))
		})
	}
}

// checkNames fails when the opener allowed or opened, for a name an image
// wrote, a file outside that image's allowed roots (its target's directory
// and the case's roots; the good target's directory is the suite's, which
// holds every case), a file under the case's host directory, or a file
// that is not regular.
func checkNames(t *testing.T, uses []nameUse, target, host string, roots []string) {
	t.Helper()
	realRoots := make([]string, len(roots))
	for i, r := range roots {
		realRoots[i] = realPath(r)
	}
	host = realPath(host)
	for _, u := range uses {
		if u.Err != "" {
			continue // refused: nothing was opened
		}
		what := fmt.Sprintf("%s named %q, and %s was allowed", u.From, u.Name, u.Real)
		if within(host, u.Real) {
			t.Errorf("%s: a planted host file", what)
		}
		if !strings.HasPrefix(u.From, filepath.Dir(target)) {
			continue // the good target, or a spooled layer disk
		}
		if !slices.ContainsFunc(realRoots, func(r string) bool { return within(r, u.Real) }) {
			t.Errorf("%s: outside the roots %q", what, roots)
		}
		if st, err := os.Stat(u.Real); err == nil && !st.Mode().IsRegular() {
			t.Errorf("%s: not a regular file (%v)", what, st.Mode())
		}
	}
}

func within(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// treeDigests hashes the regular files under dir (none when it does not
// exist).
func treeDigests(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out[p] = digest(t, p)
		}
		return nil
	})
	return out
}

// nameUse is a model.NameUse as the child writes it.
type nameUse struct {
	From, Name, Path, Real string
	Opened                 bool
	Err                    string
}

func readNames(t *testing.T, out string) []nameUse {
	t.Helper()
	b, err := os.ReadFile(out + ".names")
	if err != nil {
		t.Fatal(err)
	}
	var uses []nameUse
	if err := json.Unmarshal(b, &uses); err != nil {
		t.Fatal(err)
	}
	return uses
}

func checkReport(t *testing.T, rep *report.Report, target string, want expect) {
	t.Helper()
	goodFP := hostile.GoodSecret().Fingerprint()
	found := false
	for _, f := range rep.Findings {
		if f.Fingerprint == goodFP {
			found = true
		}
	}
	if !found {
		t.Errorf("the good target's secret is missing from the report")
	}
	hostFP := hostile.HostSecret().Fingerprint()
	for _, f := range rep.Findings {
		if f.Fingerprint == hostFP {
			t.Errorf("the planted host credential was reported: %+v", f.Locations)
		}
	}
	var errs []string
	for _, tg := range rep.Targets {
		if strings.HasPrefix(tg.Path, target) {
			errs = append(errs, tg.Errors...)
		} else if len(tg.Errors) > 0 {
			t.Errorf("%s, beside the hostile target, has errors %q", tg.Path, tg.Errors)
		}
	}
	if want.refused != "" && !slices.ContainsFunc(errs, func(e string) bool {
		return strings.Contains(e, want.refused) && strings.Contains(e, want.note) && strings.Contains(e, ": offset ")
	}) {
		t.Errorf("no error of %s names the file and offset and says %q ... %q; errors:\n%s", target, want.refused, want.note, strings.Join(errs, "\n"))
	}
	verdict, err := report.Gate(rep, report.FailOnNone)
	if err != nil {
		t.Fatal(err)
	}
	if want.incomplete {
		if rep.Complete || verdict.Exit < 2 {
			t.Errorf("complete=%v, exit %d with --fail-on none: the gate must fail closed on an incomplete target", rep.Complete, verdict.Exit)
		}
		for _, x := range rep.IncompleteReasons {
			if !strings.HasPrefix(x.Target, target) {
				t.Errorf("incomplete reason %+v is not about %s", x, target)
			}
		}
	} else if !rep.Complete || verdict.Exit != 0 {
		t.Errorf("complete=%v (%q), exit %d with --fail-on none: want a complete run", rep.Complete, rep.IncompleteReasons, verdict.Exit)
	}
	if want.decoded > 0 {
		var n int64
		for _, tg := range rep.Targets {
			for _, v := range tg.Views {
				if strings.HasPrefix(tg.Path, target) && v.Decoding != nil {
					n += v.Decoding.DecodedBytes
				}
			}
		}
		if n < want.decoded {
			t.Errorf("the hostile target's views decoded %d bytes, want at least %d", n, want.decoded)
		}
	}
	if want.truncated && rep.Summary.Truncated == nil {
		t.Errorf("summary.truncated is absent, want the cut counted")
	}
	if want.note != "" {
		var said []string
		for _, tg := range rep.Targets {
			if !strings.HasPrefix(tg.Path, target) {
				continue // a disk of a layer is "TARGET!/path"
			}
			said = append(said, tg.Errors...)
			said = append(said, tg.Notes...)
			for _, p := range tg.Partitions {
				said = append(said, p.Note)
			}
			for _, v := range tg.Views {
				said = append(said, v.Notes...)
				if v.Error != "" {
					said = append(said, v.Error)
				}
			}
		}
		if !strings.Contains(strings.Join(said, "\n"), want.note) {
			t.Errorf("the report of %s does not say %q; it says:\n%s", target, want.note, strings.Join(said, "\n"))
		}
	}
}

func readReport(t *testing.T, path string) *report.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rep report.Report
	if err := json.NewDecoder(f).Decode(&rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &rep
}

const (
	childEnv    = "IMGAUDIT_HOSTILE_CHILD"
	childTarget = "IMGAUDIT_HOSTILE_TARGET"
	childGood   = "IMGAUDIT_HOSTILE_GOOD"
	childOut    = "IMGAUDIT_HOSTILE_OUT"
	childRoots  = "IMGAUDIT_HOSTILE_ROOTS"
)

type childResult struct {
	wall      time.Duration
	rss, temp int64
	err       error
	output    string
}

// runChild runs TestHostileChild in a new process with TMPDIR at tmp,
// sampling the size of the files it holds open under tmp (its spools are
// unlinked at once, so the directory itself looks empty), and returns its
// peak RSS from the kernel's accounting.
func runChild(t *testing.T, target, good, out, tmp string, roots []string) childResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxTime)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostileChild$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1", childTarget+"="+target, childGood+"="+good, childOut+"="+out, "TMPDIR="+tmp,
		childRoots+"="+strings.Join(roots, string(filepath.ListSeparator)))
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	peakTemp := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, openBytesUnder(cmd.Process.Pid, tmp))
			select {
			case <-done:
				peakTemp <- peak
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	res := childResult{wall: time.Since(start), temp: <-peakTemp, output: buf.String()}
	if ctx.Err() != nil {
		err = fmt.Errorf("killed after %v: %w", maxTime, ctx.Err())
	}
	res.err = err
	// The child's own high-water mark, which it writes as it ends (the
	// rusage of a child counts the parent's memory at the fork).
	if b, rerr := os.ReadFile(out + ".rss"); rerr == nil {
		res.rss, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	} else if res.err == nil {
		res.err = fmt.Errorf("the child wrote no peak RSS: %w", rerr)
	}
	return res
}

// digest is a file's SHA-256, to prove the scan left it as it was without
// holding 256 MiB of it.
func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
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

// openBytesUnder sums the allocated size of the files process pid holds
// open below dir, deleted ones included.
func openBytesUnder(pid int, dir string) int64 {
	fds := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(fds)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(fds, e.Name()))
		if err != nil || !strings.HasPrefix(link, dir+"/") {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join(fds, e.Name()), &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// TestHostileChild is the child side of TestHostileInputs: it scans the
// hostile target and the good one as the CLI does (a container image with
// the registry scanner, whose disks in layers are sealed; anything else
// with the disk scanner, given the case's backing roots), and writes the
// JSON report and every name the images asked the opener for. It does
// nothing unless run as a child.
func TestHostileChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestHostileInputs")
	}
	// The collector as the CLI sets it up, so that the peak RSS is the
	// one the README's memory bound is about.
	gctune.Tune()
	e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	names := &hostfile.Log{}
	var roots []string
	if r := os.Getenv(childRoots); r != "" {
		roots = filepath.SplitList(r)
	}
	opts := scanner.Options{Engine: e, Version: "test", Names: names, BackingRoots: roots}
	target, good := os.Getenv(childTarget), os.Getenv(childGood)
	var rep *report.Report
	if registry.IsContainerSource(target) {
		layers := opts
		layers.SealedTargets, layers.BackingRoots = true, nil
		rs, err := registry.New(registry.Options{Engine: e, Version: "test",
			DiskScanner: func(ctx context.Context, disk scanner.Reader) (*report.Report, error) {
				return scanner.New(layers).ScanReaders(ctx, []scanner.Reader{disk})
			}})
		if err != nil {
			t.Fatal(err)
		}
		crep, err := rs.ScanLocal(ctx, []string{target})
		if err != nil {
			t.Fatal(err)
		}
		drep, err := scanner.New(opts).Scan(ctx, []string{good})
		if err != nil {
			t.Fatal(err)
		}
		rep = report.Merge(crep, drep)
	} else if rep, err = scanner.New(opts).Scan(ctx, []string{target, good}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(os.Getenv(childOut))
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteJSON(f, rep); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var uses []nameUse
	for _, u := range names.Uses() {
		nu := nameUse{From: u.From, Name: u.Name, Path: u.Path, Real: u.Real, Opened: u.Opened}
		if u.Err != nil {
			nu.Err = u.Err.Error()
		}
		uses = append(uses, nu)
	}
	b, err := json.Marshal(uses)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(childOut)+".names", b, 0o644); err != nil {
		t.Fatal(err)
	}
	rss, err := testutil.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(childOut)+".rss", []byte(strconv.FormatInt(rss, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
}
