package scanner_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// Tests of the policy for the files an image names, end to end: what the
// scan opens, what it reports, and that nothing blocks.

// rawWith writes a 1 MiB raw file holding data at offset 0.
func rawWith(t *testing.T, path string, data []byte) {
	t.Helper()
	b := make([]byte, 1<<20)
	copy(b, data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// scanWithin scans targets and fails the test if the scan blocks.
func scanWithin(t *testing.T, opts scanner.Options, targets ...string) *report.Report {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = newEngine(t)
	}
	var rep *report.Report
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep, err = scanner.New(opts).Scan(context.Background(), targets)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("scan blocked")
	}
	if rep == nil {
		t.Fatalf("no report: %v", err)
	}
	return rep
}

func targetErrors(rep *report.Report, path string) string {
	for _, tg := range rep.Targets {
		if tg.Path == path {
			return strings.Join(tg.Errors, "\n")
		}
	}
	return ""
}

// checkLog fails if the policy allowed or opened anything outside roots.
func checkLog(t *testing.T, log *hostfile.Log, roots ...string) {
	t.Helper()
	uses := log.Uses()
	if len(uses) == 0 {
		t.Error("no name was asked for")
	}
	for _, u := range uses {
		if u.Err != nil && !u.Opened {
			continue
		}
		if !slices.ContainsFunc(roots, func(r string) bool { return strings.HasPrefix(u.Real, r+string(filepath.Separator)) }) {
			t.Errorf("%s named %q: %q was allowed, outside %v", u.From, u.Name, u.Real, roots)
		}
	}
}

// TestScanRefusesNamesOutsideRoots scans, in one run, qcow2 overlays whose
// backing names (written by qemu-img create -u -b) reach a planted host
// credential by absolute path, by ../ and through a symlink, or name a FIFO
// or a device, next to a good overlay. The planted credential is never
// reported, each hostile target says why with its file and offset, nothing
// blocks, and the good target still reports its own secret. Given the
// credential's directory as a backing root, the same image reports it.
func TestScanRefusesNamesOutsideRoots(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfifo")
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "images"), filepath.Join(dir, "host")
	hostCreds, planted := awsCredentials(t)
	goodCreds, good := awsCredentials(t)
	secret := filepath.Join(outside, "credentials.raw")
	rawWith(t, secret, hostCreds)
	rawWith(t, filepath.Join(root, "inside.raw"), goodCreds)
	if err := os.Symlink("../host/credentials.raw", filepath.Join(root, "link.raw")); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "mkfifo", filepath.Join(root, "fifo"))
	names := map[string]struct{ written, want string }{
		"absolute": {secret, "outside the allowed roots: not followed (see --backing-root)"},
		"dotdot":   {"../host/credentials.raw", "outside the allowed roots"},
		"symlink":  {"link.raw", "resolves to " + secret},
		"fifo":     {"fifo", "named pipe (FIFO), not a regular file: not opened"},
		"dev":      {"/dev/zero", "outside the allowed roots"},
		"good":     {"inside.raw", ""},
	}
	var targets []string
	for name, c := range names {
		img := filepath.Join(root, name+".qcow2")
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", c.written, "-F", "raw", img, "1M")
		targets = append(targets, img)
	}
	slices.Sort(targets)
	before := treeSums(t, dir)
	log := &hostfile.Log{}
	rep := scanWithin(t, scanner.Options{Names: log}, targets...)
	if findingByFP(rep, fp([]byte(planted))) != nil {
		t.Error("the planted host credential was reported as the images' own")
	}
	if f := findingByFP(rep, fp([]byte(good))); !inBacking(f) {
		t.Errorf("the good target's backing secret: %+v", f)
	}
	for name, c := range names {
		img := filepath.Join(root, name+".qcow2")
		errs := targetErrors(rep, img)
		if c.want == "" {
			if errs != "" {
				t.Errorf("%s: errors %s", name, errs)
			}
			continue
		}
		for _, w := range []string{img + ": offset ", `backing file "` + c.written + `"`, c.want} {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: errors %q lack %q", name, errs, w)
			}
		}
	}
	real, _ := filepath.EvalSymlinks(root)
	checkLog(t, log, real)
	if after := treeSums(t, dir); !mapsEqual(before, after) {
		t.Error("files changed by the scan")
	}

	t.Run("backing-root given", func(t *testing.T) {
		rep := scanWithin(t, scanner.Options{BackingRoots: []string{outside}}, filepath.Join(root, "absolute.qcow2"))
		if f := findingByFP(rep, fp([]byte(planted))); !inBacking(f) {
			t.Errorf("with --backing-root the backing file's secret is reported: %+v", f)
		}
	})
}

// inBacking reports whether a finding was found in a backing view.
func inBacking(f *report.Finding) bool {
	return f != nil && slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.ViewKind == "backing" })
}

func mapsEqual(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestScanFIFOTargets: a FIFO given as a target, or met in a scanned
// directory, never blocks the scan, and the image beside it reports.
func TestScanFIFOTargets(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfifo")
	dir := t.TempDir()
	creds, secret := awsCredentials(t)
	rawWith(t, filepath.Join(dir, "good.img"), creds)
	fifo := filepath.Join(dir, "pipe.qcow2")
	testutil.Run(t, "mkfifo", fifo)
	rep := scanWithin(t, scanner.Options{}, fifo, dir)
	if errs := targetErrors(rep, fifo); !strings.Contains(errs, "named pipe") {
		t.Errorf("FIFO target errors %q", errs)
	}
	if findingByFP(rep, fp([]byte(secret))) == nil {
		t.Error("the good image beside the FIFO did not report")
	}
}

// TestLibvirtAbsoluteBackingNames lays out a libvirt store whose overlay
// names its base in another directory by absolute path, as libvirt does:
// followed when the store is scanned (the scanned directory is a root) or
// when the base's directory is a backing root; refused for the overlay
// alone.
func TestLibvirtAbsoluteBackingNames(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	store := filepath.Join(t.TempDir(), "var/lib/libvirt")
	images, templates := filepath.Join(store, "images"), filepath.Join(store, "templates")
	creds, secret := awsCredentials(t)
	baseRaw := filepath.Join(t.TempDir(), "base.raw")
	rawWith(t, baseRaw, creds)
	mkdirs(t, store, "images", "templates", "qemu")
	base := filepath.Join(templates, "base.qcow2")
	testutil.Run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", baseRaw, base)
	overlay := filepath.Join(images, "web01.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay)
	writeTree(t, store, map[string][]byte{"qemu/web01.xml": []byte(libvirtDomain("web01", uuidWeb01, overlay, base))})

	for _, c := range []struct {
		name   string
		target string
		roots  []string
		follow bool
	}{
		{"store scanned", store, nil, true},
		{"overlay alone", overlay, nil, false},
		{"overlay with --backing-root", overlay, []string{templates}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := scanWithin(t, scanner.Options{BackingRoots: c.roots}, c.target)
			f := findingByFP(rep, fp([]byte(secret)))
			errs := targetErrors(rep, overlay)
			if c.follow {
				if !inBacking(f) || errs != "" {
					t.Errorf("base not followed: finding %+v, errors %q", f, errs)
				}
				return
			}
			if f != nil || !strings.Contains(errs, `backing file "`+base+`": outside the allowed roots`) {
				t.Errorf("base followed: finding %+v, errors %q", f, errs)
			}
		})
	}
}
