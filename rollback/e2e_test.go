package rollback

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// hardening is the acceptance scenario of issue 9: a system before and
// after hardening, with the secrets and expected findings.
type hardening struct {
	before, after tree
	secrets       []string // values that must never appear in any output
	want          []wantRisk
}

// wantRisk is one expected finding, identified by rule and fingerprint.
type wantRisk struct {
	rule, fp, keyFP, path string
	meta                  map[string]string
}

func newHardening(t *testing.T) hardening {
	t.Helper()
	alice := cryptHash(t, "alicesalt", "alice-pw")
	bobOld := cryptHash(t, "bobsalt1", "bob-old-pw")
	bobNew := cryptHash(t, "bobsalt2", "bob-new-pw")
	carol := cryptHash(t, "carolsal", "carol-pw")
	dave := cryptHash(t, "davesalt", "dave-pw")
	keep := newSSHKey(t, "ed25519", "admin@laptop")
	removed := newSSHKey(t, "ed25519", "contractor@old")
	daveKey := newSSHKey(t, "ed25519", "dave@ci")
	hostOld := newSSHKey(t, "ed25519", "root@web01-old")
	hostNew := newSSHKey(t, "ed25519", "root@web01")
	hostECDSA := newSSHKey(t, "ecdsa", "root@web01")
	tls := newSSHKey(t, "ecdsa", "app")

	shadow := func(aliceField, bobField string) string {
		return "root:*:19000:0:99999:7:::\n" +
			"daemon:*:19000:0:99999:7:::\n" +
			"alice:" + aliceField + ":19000:0:99999:7:::\n" +
			"bob:" + bobField + ":19000:0:99999:7:::\n" +
			"carol:" + carol + ":19000:0:99999:7:::\n" +
			"dave:" + dave + ":19000:0:99999:7:::\n"
	}
	status := func(opensslVersion string) string {
		return "Package: bash\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nVersion: 5.2.15-2+b2\nDescription: GNU Bourne Again SHell\n Bash is an sh-compatible command language interpreter.\n\n" +
			"Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + opensslVersion + "\nDescription: Secure Sockets Layer toolkit\n\n" +
			"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36-9+deb12u4\n\n" +
			"Package: oldtool\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1.0-1\n"
	}
	before := tree{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n" +
			"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
			"alice:x:1000:1000:Alice:/home/alice:/bin/bash\n" +
			"bob:x:1001:1001:Bob:/home/bob:/bin/bash\n" +
			"carol:x:1002:1002:Carol:/home/carol:/bin/bash\n" +
			"dave:x:1003:1003:Dave:/home/dave:/bin/bash\n",
		"/etc/shadow": shadow(alice, bobOld),
		"/etc/group":  "root:x:0:\nsudo:x:27:alice,carol\nalice:x:1000:\nbob:x:1001:\n",
		"/etc/sudoers": "Defaults\tenv_reset\nDefaults\tsecure_path=\"/usr/sbin:/usr/bin\"\n" +
			"root\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
		"/etc/sudoers.d/dave":               "dave ALL=(root) NOPASSWD: /usr/bin/apt-get update\n",
		"/etc/ssh/sshd_config":              "PermitRootLogin prohibit-password\nAuthorizedKeysFile .ssh/authorized_keys /etc/ssh/keys/%u\n",
		"/etc/ssh/keys/dave":                daveKey.pubLine + "\n",
		"/root/.ssh/authorized_keys":        "# admins\n" + keep.pubLine + "\n" + `from="10.0.0.0/8",command="echo \"hi there\"" ` + removed.pubLine + "\n",
		"/home/alice/.ssh/authorized_keys":  keep.pubLine + "\n",
		"/etc/ssh/ssh_host_ed25519_key":     string(hostOld.private),
		"/etc/ssh/ssh_host_ed25519_key.pub": hostOld.pubLine + "\n",
		"/etc/ssh/ssh_host_ecdsa_key":       string(hostECDSA.private),
		"/etc/ssl/private/app.key":          string(tls.private),
		"/var/lib/dpkg/status":              status("3.0.11-1~deb12u1"),
	}
	after := before.clone()
	after["/etc/shadow"] = shadow("!"+alice, bobNew)
	after["/root/.ssh/authorized_keys"] = "# admins\n" + keep.pubLine + "\n"
	after["/etc/ssh/ssh_host_ed25519_key"] = string(hostNew.private)
	after["/etc/ssh/ssh_host_ed25519_key.pub"] = hostNew.pubLine + "\n"
	after["/etc/group"] = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\nbob:x:1001:\n"
	after["/var/lib/dpkg/status"] = status("3.0.11-1~deb12u2")

	return hardening{
		before: before, after: after,
		secrets: []string{alice, bobOld, bobNew, carol, dave, hostOld.body(), hostNew.body(), hostECDSA.body(), tls.body(),
			strings.Fields(removed.pubLine)[1], strings.Fields(keep.pubLine)[1]},
		want: []wantRisk{
			{rule: RuleAccountUnlocked, fp: fingerprint(alice), path: "/etc/shadow", meta: map[string]string{"account": "alice", "hash_scheme": "sha512crypt"}},
			{rule: RulePasswordRestored, fp: fingerprint(bobOld), path: "/etc/shadow", meta: map[string]string{"account": "bob"}},
			{rule: RuleAuthorizedKey, fp: fingerprint(string(removed.blob)), keyFP: removed.fp, path: "/root/.ssh/authorized_keys", meta: map[string]string{"account": "root", "key_type": "ssh-ed25519"}},
			{rule: RuleHostKey, fp: fingerprint(hostOld.block()), keyFP: hostOld.fp, path: "/etc/ssh/ssh_host_ed25519_key", meta: map[string]string{"key_type": "ed25519"}},
			{rule: RulePrivilege, fp: fingerprint("group:sudo:carol"), path: "/etc/group", meta: map[string]string{"account": "carol", "group": "sudo"}},
			{rule: RulePackageDowngrade, fp: fingerprint("openssl=3.0.11-1~deb12u1"), path: "/var/lib/dpkg/status", meta: map[string]string{"package": "openssl", "old_version": "3.0.11-1~deb12u1", "new_version": "3.0.11-1~deb12u2"}},
		},
	}
}

// buildFS writes before.img and after.img (the same filesystem, changed
// with debugfs) into dir.
func (h hardening) buildFS(t *testing.T, dir string) (before, after string) {
	t.Helper()
	before, after = filepath.Join(dir, "before.img"), filepath.Join(dir, "after.img")
	mkfs(t, h.before, before, 16)
	copyFile(t, before, after)
	debugfsApply(t, after, h.before, h.after)
	return before, after
}

// checkRisks asserts that the findings located in view are exactly want.
func checkRisks(t *testing.T, findings []report.Finding, target, view string, kind model.Kind, want []wantRisk) {
	t.Helper()
	var got []report.Finding
	for _, f := range findings {
		if slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.View == view }) {
			got = append(got, f)
		}
	}
	exp := exposureOf(kind)
	for _, w := range want {
		i := slices.IndexFunc(got, func(f report.Finding) bool { return f.Rule == w.rule && f.Fingerprint == w.fp })
		if i < 0 {
			t.Errorf("%s: missing %s %s", view, w.rule, w.meta)
			continue
		}
		f := got[i]
		got = slices.Delete(got, i, i+1)
		if f.Category != Category || f.KeyFingerprint != w.keyFP || !slices.Equal(f.Exposure, []string{exp}) || !f.OutsideGuestControl {
			t.Errorf("%s: %s: category %q key fingerprint %q (want %q) exposure %v", view, w.rule, f.Category, f.KeyFingerprint, w.keyFP, f.Exposure)
		}
		for k, v := range w.meta {
			if f.Metadata[k] != v {
				t.Errorf("%s: %s: metadata %s = %q, want %q", view, w.rule, k, f.Metadata[k], v)
			}
		}
		if f.Description == "" || f.Preview == "" || SeverityOK(f.Severity) == false {
			t.Errorf("%s: %s: empty description/preview or bad severity %q", view, w.rule, f.Severity)
		}
		li := slices.IndexFunc(f.Locations, func(l report.Location) bool { return l.View == view })
		l := f.Locations[li]
		if l.Target != target || l.ViewKind != string(kind) || l.Path != w.path || l.State != report.StateAllocated || l.Exposure != exp {
			t.Errorf("%s: %s: location %+v", view, w.rule, l)
		}
		t.Logf("%s [%s] %s", f.Rule, f.Severity, f.Description)
	}
	for _, f := range got {
		t.Errorf("%s: unexpected finding %s: %s", view, f.Rule, f.Description)
	}
}

// SeverityOK reports a known severity.
func SeverityOK(s string) bool { return report.SeverityRank(s) < 4 }

// checkNoLeak renders the findings and notes in every format and looks
// for any 16-byte window of a secret.
func checkNoLeak(t *testing.T, findings []report.Finding, notes []string, target string, secrets []string) {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &report.Report{
		SchemaVersion: report.SchemaVersion, Tool: report.Tool{Name: "imgaudit", Version: "test"}, Command: "scan",
		Started: now, Finished: now, Complete: true, FailOn: report.SeverityLow,
		Targets:  []report.Target{{Path: target, Format: "qcow2", Views: []report.View{}, Errors: notes}},
		Findings: findings,
	}
	outs := map[string]*bytes.Buffer{"json": {}, "table": {}, "sarif": {}}
	if err := report.WriteJSON(outs["json"], r); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteTable(outs["table"], r, report.TableOptions{MaxLocations: -1}); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteSARIF(outs["sarif"], r); err != nil {
		t.Fatal(err)
	}
	for name, out := range outs {
		s := out.String()
		for _, f := range findings {
			// The table's rollback section identifies a finding by its
			// sentence; JSON and SARIF carry the fingerprint.
			if id := f.Fingerprint; name == "table" && !strings.Contains(s, f.Description) || name != "table" && !strings.Contains(s, id) {
				t.Errorf("%s does not identify %s", name, f.Rule)
			}
		}
		if name == "json" && !strings.Contains(s, `"category": "rollback-risk"`) && !strings.Contains(s, `"category":"rollback-risk"`) {
			t.Errorf("json lacks category rollback-risk")
		}
		for _, secret := range secrets {
			for i := 0; i+16 <= len(secret); i++ {
				if strings.Contains(s, secret[i:i+16]) {
					t.Fatalf("%s output contains secret fragment %q", name, secret[i:i+16])
				}
			}
		}
	}
}

// openImage opens an image with formats.Open and returns the current view
// and the others.
func openImage(t *testing.T, p string) (*model.Image, model.View, []model.View) {
	t.Helper()
	im, err := formats.Open(context.Background(), p, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	cur, ok := im.Current()
	if !ok {
		t.Fatal("no current view")
	}
	var others []model.View
	for _, v := range im.Views {
		if v.Kind != model.KindCurrent {
			others = append(others, v)
		}
	}
	return im, cur, others
}

// TestRollbackInternalSnapshots: qcow2 with snapshot before-hardening
// (six risks) and after-hardening (none).
func TestRollbackInternalSnapshots(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "openssl", "ssh-keygen")
	h := newHardening(t)
	dir := t.TempDir()
	before, after := h.buildFS(t, dir)
	img := filepath.Join(dir, "web01.qcow2")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", before, img)
	testutil.Run(t, "qemu-img", "snapshot", "-c", "before-hardening", img)
	syncChunks(t, before, after, img)
	testutil.Run(t, "qemu-img", "snapshot", "-c", "after-hardening", img)
	sum := fileSum(t, img)

	_, cur, others := openImage(t, img)
	findings, notes, err := analyzeViews(context.Background(), img, cur, others)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		t.Logf("note: %s", n)
	}
	beforeID := model.ViewID(img, model.KindSnapshot, "before-hardening")
	afterID := model.ViewID(img, model.KindSnapshot, "after-hardening")
	for _, id := range []string{beforeID, afterID} {
		if !slices.ContainsFunc(others, func(v model.View) bool { return v.ID == id }) {
			t.Fatalf("view %s missing", id)
		}
	}
	checkRisks(t, findings, img, beforeID, model.KindSnapshot, h.want)
	checkRisks(t, findings, img, afterID, model.KindSnapshot, nil)
	if len(findings) != len(h.want) {
		t.Errorf("%d findings, want %d", len(findings), len(h.want))
	}
	checkNoLeak(t, findings, notes, img, h.secrets)
	if fileSum(t, img) != sum {
		t.Fatal("image changed during analysis")
	}
}

// TestRollbackBackingFile: the base image holds the state before the
// changes, an overlay the changes: the backing view reports the six risks.
func TestRollbackBackingFile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "openssl", "ssh-keygen")
	h := newHardening(t)
	dir := t.TempDir()
	before, after := h.buildFS(t, dir)
	base := filepath.Join(dir, "base.qcow2")
	overlay := filepath.Join(dir, "overlay.qcow2")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", before, base)
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay)
	syncChunks(t, before, after, overlay)
	sums := [][32]byte{fileSum(t, base), fileSum(t, overlay)}

	_, cur, others := openImage(t, overlay)
	findings, notes, err := analyzeViews(context.Background(), overlay, cur, others)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		t.Logf("note: %s", n)
	}
	backingID := filepath.Base(overlay) + "#backing:base.qcow2"
	checkRisks(t, findings, overlay, backingID, model.KindBacking, h.want)
	if len(findings) != len(h.want) {
		t.Errorf("%d findings, want %d", len(findings), len(h.want))
	}
	checkNoLeak(t, findings, notes, overlay, h.secrets)
	if fileSum(t, base) != sums[0] || fileSum(t, overlay) != sums[1] {
		t.Fatal("an image changed during analysis")
	}
}
