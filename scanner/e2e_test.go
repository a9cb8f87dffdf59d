package scanner_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func newEngine(t testing.TB) *detectors.Engine {
	t.Helper()
	e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fp(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pemBlock returns the armoured block of a key file without its trailing
// newline: the secret value of the fingerprint contract.
func pemBlock(t testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimRight(b, "\n")
}

func readSecretField(t testing.TB, path, re string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(re).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no match for %s", path, re)
	}
	return string(m[1])
}

func buildDemo(t testing.TB) (dir, secrets string) { return testutil.BuildDemo(t) }

func TestEndToEndLifetime(t *testing.T) {
	dir, sec := buildDemo(t)
	web01 := filepath.Join(dir, "web01.qcow2")
	base := filepath.Join(dir, "base.qcow2")
	before := map[string][]byte{web01: testutil.FileSnapshot(t, web01), base: testutil.FileSnapshot(t, base)}

	awsSecret := readSecretField(t, filepath.Join(sec, "aws_credentials"), `aws_secret_access_key = (\S+)`)
	gitPass := readSecretField(t, filepath.Join(sec, "git-credentials"), `deploy:([^@]+)@`)
	gitlabToken := readSecretField(t, filepath.Join(sec, "gitlab-token"), `(glpat-\S+)`)
	stripeKey := readSecretField(t, filepath.Join(sec, "app.env"), `=(sk_live_\S+)`)
	type loc struct {
		view, path, state, exposure string // path "" = don't check
		partition                   bool
	}
	type want struct {
		name     string
		fp       string
		exposure []string // these classes must be in the finding's exposure
		not      []string // and none of these
		locs     []loc    // each must be among the locations
	}
	const cur, golden, backing, unref = "web01.qcow2#current", "web01.qcow2#snapshot:golden", "web01.qcow2#backing:base.qcow2", "web01.qcow2#unreferenced"
	wants := []want{
		{"current host key", fp(pemBlock(t, filepath.Join(sec, "host_new"))), []string{"live"}, []string{"snapshot", "backing"},
			[]loc{{cur, "/etc/ssh/ssh_host_ed25519_key", "allocated", "live", true}}},
		{"live now and in a snapshot", fp([]byte(awsSecret)), []string{"live", "snapshot"}, []string{"deleted", "backing"},
			[]loc{{cur, "/home/alice/.aws/credentials", "allocated", "live", true}, {golden, "/home/alice/.aws/credentials", "allocated", "snapshot", true}}},
		{"read through from the backing file", fp([]byte(gitlabToken)), []string{"live", "backing"}, []string{"deleted"},
			[]loc{{cur, "/etc/gitlab-runner/token", "allocated", "live", true}, {backing, "/etc/gitlab-runner/token", "allocated", "backing", true}}},
		{"live only", fp([]byte(stripeKey)), []string{"live"}, []string{"snapshot", "backing", "deleted", "unreferenced"},
			[]loc{{cur, "/srv/app/.env", "allocated", "live", true}}},
		{"deleted git credential", fp([]byte(gitPass)), []string{"deleted"}, []string{"live"},
			[]loc{{cur, "", "free", "deleted", true}}},
		{"a file in a snapshot, residue now", fp(pemBlock(t, filepath.Join(sec, "alice_2023"))), []string{"deleted", "snapshot"}, []string{"live"},
			[]loc{{golden, "/home/alice/.ssh/id_ecdsa_2023", "allocated", "snapshot", true}, {cur, "", "free", "deleted", true}}},
		{"rotated host key", fp(pemBlock(t, filepath.Join(sec, "host_old"))), []string{"snapshot"}, []string{"live", "deleted"},
			[]loc{{golden, "/etc/ssh/ssh_host_ed25519_key", "allocated", "snapshot", true}}},
		{"backing-only app key", fp(pemBlock(t, filepath.Join(sec, "app"))), []string{"backing"}, []string{"live", "deleted", "snapshot"},
			[]loc{{backing, "/etc/ssl/private/app.key", "allocated", "backing", true}}},
		{"key freed with snapshot", fp(pemBlock(t, filepath.Join(sec, "id_ecdsa"))), []string{"unreferenced"}, []string{"live", "deleted", "snapshot", "backing"},
			[]loc{{unref, "", "unknown", "unreferenced", false}}},
	}

	rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{web01})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete {
		t.Fatalf("report incomplete: %s", rep.IncompleteReason)
	}
	for _, w := range wants {
		t.Run(w.name, func(t *testing.T) {
			f := secretFinding(rep, w.fp)
			if f == nil {
				t.Fatalf("not found (fingerprint %s); findings: %s", w.fp, summary(rep))
			}
			for _, e := range w.exposure {
				if !slices.Contains(f.Exposure, e) {
					t.Errorf("exposure = %v, want it to include %s; locations %+v", f.Exposure, e, f.Locations)
				}
			}
			for _, bad := range w.not {
				if slices.Contains(f.Exposure, bad) {
					t.Errorf("exposure = %v, must not include %s; locations %+v", f.Exposure, bad, f.Locations)
				}
			}
			for _, wl := range w.locs {
				if !slices.ContainsFunc(f.Locations, func(l report.Location) bool {
					return l.View == wl.view && (wl.path == "" || l.Path == wl.path) && l.State == wl.state && l.Exposure == wl.exposure && (!wl.partition || l.Partition != "")
				}) {
					t.Errorf("no location %+v among %+v", wl, f.Locations)
				}
			}
			if outside := !slices.Equal(f.Exposure, []string{"live"}); f.OutsideGuestControl != outside {
				t.Errorf("outside_guest_control = %v for exposure %v", f.OutsideGuestControl, f.Exposure)
			}
		})
	}
	// One credential is one finding: the AWS key ID belongs to the pair.
	for _, f := range rep.Findings {
		if f.Rule == "aws-access-key-id" {
			t.Errorf("the AWS key ID next to its secret is a finding of its own: %+v", f)
		}
	}
	checkDemoTimeline(t, rep, map[string]string{
		fp([]byte(awsSecret)):                             ".xx",
		fp([]byte(gitlabToken)):                           "xxx",
		fp([]byte(stripeKey)):                             "..x",
		fp([]byte(gitPass)):                               "..r",
		fp(pemBlock(t, filepath.Join(sec, "alice_2023"))): ".xr",
		fp(pemBlock(t, filepath.Join(sec, "host_old"))):   ".x.",
		fp(pemBlock(t, filepath.Join(sec, "app"))):        "x..",
		fp(pemBlock(t, filepath.Join(sec, "id_ecdsa"))):   "..r",
		fp(pemBlock(t, filepath.Join(sec, "host_new"))):   "..x",
	})
	checkDemoCounts(t, rep)
	checkDemoRemediation(t, rep, base, map[string][]report.Remediation{
		fp(pemBlock(t, filepath.Join(sec, "alice_2023"))): {
			{Class: "snapshot", Command: "qemu-img snapshot -d golden " + web01},
			{Class: "deleted", Command: "virt-sparsify --in-place " + web01},
		},
		fp([]byte(gitlabToken)): {
			{Class: "snapshot", Command: "qemu-img snapshot -d golden " + web01},
			{Class: "backing", Command: "qemu-img rebase -b '' " + web01},
			{Class: "live", Command: "rm -- /etc/gitlab-runner/token   # in the guest"},
		},
		fp(pemBlock(t, filepath.Join(sec, "id_ecdsa"))): {
			{Class: "unreferenced", Command: "qemu-img convert -O qcow2 " + web01 + " " + web01 + ".new && mv " + web01 + ".new " + web01},
		},
		fp([]byte(gitPass)): {
			{Class: "deleted", Command: "virt-sparsify --in-place " + web01},
		},
	}, fp([]byte(stripeKey)))
	// Rolling back to "golden" brings the rotated host key back; booting the
	// base brings back the app key.
	risks := map[string]string{}
	for _, f := range rep.Findings {
		if f.Category == report.CategoryRollbackRisk && len(f.Locations) > 0 {
			risks[f.Rule] = f.Locations[0].View
		}
	}
	if risks["rollback-host-key"] != "web01.qcow2#snapshot:golden" || risks["rollback-tls-key"] != "web01.qcow2#backing:base.qcow2" {
		t.Errorf("rollback risks = %v", risks)
	}
	for p, b := range before {
		if !bytes.Equal(b, testutil.FileSnapshot(t, p)) {
			t.Errorf("%s changed during the scan", p)
		}
	}

	// No secret value in any rendering.
	secrets := []string{awsSecret, gitPass}
	for _, k := range []string{"host_new", "host_old", "app", "id_ecdsa"} {
		for _, line := range strings.Split(string(pemBlock(t, filepath.Join(sec, k))), "\n") {
			if !strings.HasPrefix(line, "-----") && len(line) >= 16 {
				secrets = append(secrets, line)
			}
		}
	}
	var outs []bytes.Buffer
	outs = make([]bytes.Buffer, 4)
	if err := report.WriteJSON(&outs[0], rep); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteSARIF(&outs[1], rep); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteTable(&outs[2], rep, report.TableOptions{MaxLocations: 100}); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteHTML(&outs[3], rep); err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		for _, s := range secrets {
			if bytes.Contains(o.Bytes(), []byte(s)) {
				t.Errorf("output %d leaks a secret value (%d chars)", i, len(s))
			}
		}
	}
}

func summary(r *report.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		b.WriteString("\n  " + f.Rule + " " + f.Preview + " " + f.Fingerprint + " " + strings.Join(f.Exposure, ","))
	}
	return b.String()
}

// TestSharedSnapshotsScannedOnce: ten snapshots that share ~95% of their
// data with the current state cost about 1.08x the bytes of the same image
// without snapshots, and scanning every view in full about 11x: the
// figures the README quotes. Bytes, not time, so the bounds are tight.
func TestSharedSnapshotsScannedOnce(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	img := filepath.Join(dir, "snaps.qcow2")
	const size = 32 << 20
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "32M")
	// Fill the disk with non-zero data in a few big writes.
	var fill []string
	for off := 0; off < size; off += 4 << 20 {
		fill = append(fill, "-c", "write -q -P 0x"+hex.EncodeToString([]byte{byte(0x41 + off>>22)})+" "+itoa(off)+" 4M")
	}
	testutil.Run(t, "qemu-io", append([]string{"-f", "qcow2"}, append(fill, img)...)...)
	// Each snapshot is followed by rewriting 0.5% of the disk elsewhere.
	for i := 0; i < 10; i++ {
		testutil.Run(t, "qemu-img", "snapshot", "-c", "s"+itoa(i), img)
		testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x"+hex.EncodeToString([]byte{byte(0x61 + i)})+" "+itoa(i*(3<<20))+" 160k", img)
	}
	flat := filepath.Join(dir, "flat.qcow2")
	testutil.Run(t, "qemu-img", "convert", "-O", "qcow2", img, flat)

	scanned := func(path string, noDedupe bool) int64 {
		rep, err := scanner.New(scanner.Options{Engine: newEngine(t), NoDedupe: noDedupe}).Scan(context.Background(), []string{path})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Targets) != 1 || len(rep.Targets[0].Errors) > 0 {
			t.Fatalf("targets: %+v", rep.Targets)
		}
		return rep.Summary.ScannedBytes
	}
	withSnaps, without, naive := scanned(img, false), scanned(flat, false), scanned(img, true)
	t.Logf("bytes scanned: 10 snapshots %d, no snapshots %d (ratio %.3f), every view in full %d", withSnaps, without, float64(withSnaps)/float64(without), naive)
	if without < size {
		t.Fatalf("flat image scanned %d bytes, want at least %d", without, size)
	}
	if r := float64(withSnaps) / float64(without); r > 1.09 {
		t.Errorf("snapshots cost %.3fx the flat image, the README says about 1.08x", r)
	}
	if r := float64(naive) / float64(without); r < 10.5 {
		t.Errorf("scanning every view in full read %.1fx the flat image, the README says 11x; the test image does not exercise sharing", r)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
