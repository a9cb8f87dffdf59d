package rollback

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// openRaw opens a raw filesystem image and returns its disk view, renamed
// to the given kind and name.
func openRaw(t *testing.T, p string, kind model.Kind, name string) model.View {
	t.Helper()
	im, err := raw.Open(context.Background(), p, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	v := im.Views[0]
	v.Kind, v.Name, v.ID = kind, name, model.ViewID("img", kind, name)
	return v
}

// TestRollbackCases: one change each, made between two real ext4
// filesystems (mkfs.ext4 -d), compared as current (after) and snapshot
// (before).
func TestRollbackCases(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "openssl", "ssh-keygen")
	pw := cryptHash(t, "salt1234", "pw")
	pw2 := cryptHash(t, "salt5678", "pw2")
	k1 := newSSHKey(t, "ed25519", "k1")
	k2 := newSSHKey(t, "ed25519", "k2")
	tlsOld := newSSHKey(t, "ecdsa", "tls-old")
	tlsNew := newSSHKey(t, "ecdsa", "tls-new")
	base := tree{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nerin:x:1000:1000::/home/erin:/bin/bash\n" +
			"frank:" + pw2 + ":1001:1001::/srv/frank:/bin/sh\n",
		"/etc/shadow":                     "root:*:1::::::\nerin:" + pw + ":1::::::\n",
		"/etc/group":                      "wheel:x:10:erin\nadmin:x:11:\n",
		"/etc/sudoers":                    "Defaults env_reset\n#includedir /etc/sudoers.d\n",
		"/etc/sudoers.d/erin":             "erin ALL=(ALL) \\\n   NOPASSWD: ALL # temporary\n",
		"/etc/sudoers.d/ignored.bak":      "frank ALL=(ALL) ALL\n",
		"/etc/ssh/sshd_config":            "Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysFile .ssh/authorized_keys\n",
		"/etc/ssh/sshd_config.d/a.conf":   "AuthorizedKeysFile %h/.ssh/authorized_keys /etc/ssh/keys/%u\n",
		"/etc/ssh/keys/erin":              k1.pubLine + "\n",
		"/home/erin/.ssh/authorized_keys": "restrict " + k2.pubLine + "\n",
		"/etc/pki/tls/private/web.pem":    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" + string(tlsOld.private),
		"/var/lib/dpkg/status":            "Package: sudo\nStatus: install ok installed\nVersion: 1:1.9.13p3-1\n\nPackage: gone\nStatus: install ok installed\nVersion: 2.0\n",
	}
	type want struct{ rule, meta string } // meta: "key=value"
	cases := []struct {
		name   string
		change func(tree)
		want   []want
	}{
		{"nothing changed", func(tree) {}, nil},
		{"shell set to nologin", func(tr tree) {
			tr["/etc/passwd"] = strings.Replace(tr["/etc/passwd"], "/home/erin:/bin/bash", "/home/erin:/usr/sbin/nologin", 1)
		}, []want{{RuleAccountUnlocked, "account=erin"}}},
		{"account deleted", func(tr tree) {
			tr["/etc/shadow"] = "root:*:1::::::\n"
			tr["/etc/passwd"] = "root:x:0:0:root:/root:/bin/bash\nfrank:" + pw2 + ":1001:1001::/srv/frank:/bin/sh\n"
		}, []want{{RuleAccountUnlocked, "account=erin"}}},
		{"disabled with star", func(tr tree) {
			tr["/etc/shadow"] = "root:*:1::::::\nerin:*:1::::::\n"
		}, []want{{RuleAccountUnlocked, "account=erin"}}},
		{"hash in passwd changed", func(tr tree) {
			tr["/etc/passwd"] = strings.Replace(tr["/etc/passwd"], pw2, pw, 1)
		}, []want{{RulePasswordRestored, "account=frank"}}},
		{"sudoers.d rule removed", func(tr tree) { delete(tr, "/etc/sudoers.d/erin") },
			[]want{{RulePrivilege, "principal=erin"}}},
		{"includedir removed", func(tr tree) { tr["/etc/sudoers"] = "Defaults env_reset\n" },
			[]want{{RulePrivilege, "principal=erin"}}},
		{"ignored sudoers.d file removed", func(tr tree) { delete(tr, "/etc/sudoers.d/ignored.bak") }, nil},
		{"sudoers rule reformatted", func(tr tree) {
			tr["/etc/sudoers.d/erin"] = "erin   ALL = (ALL) NOPASSWD:ALL\n"
		}, nil},
		{"wheel member dropped", func(tr tree) { tr["/etc/group"] = "wheel:x:10:\nadmin:x:11:\n" },
			[]want{{RulePrivilege, "group=wheel"}}},
		{"key removed from AuthorizedKeysFile %u", func(tr tree) { delete(tr, "/etc/ssh/keys/erin") },
			[]want{{RuleAuthorizedKey, "account=erin"}}},
		{"key moved between erin's files", func(tr tree) {
			tr["/etc/ssh/keys/erin"] = k1.pubLine + "\n" + k2.pubLine + "\n"
			tr["/home/erin/.ssh/authorized_keys"] = ""
		}, nil},
		{"AuthorizedKeysFile changed", func(tr tree) {
			tr["/etc/ssh/sshd_config.d/a.conf"] = "AuthorizedKeysFile /etc/ssh/keys/%u\n"
		}, []want{{RuleAuthorizedKey, "account=erin"}}},
		{"TLS key rotated", func(tr tree) {
			tr["/etc/pki/tls/private/web.pem"] = string(tlsNew.private)
		}, []want{{RuleTLSKey, "key_type=ecdsa"}}},
		{"TLS key removed", func(tr tree) { delete(tr, "/etc/pki/tls/private/web.pem") },
			[]want{{RuleTLSKey, "key_type=ecdsa"}}},
		{"package upgraded across epoch", func(tr tree) {
			tr["/var/lib/dpkg/status"] = strings.Replace(tr["/var/lib/dpkg/status"], "1:1.9.13p3-1", "2:1.0-1", 1)
		}, []want{{RulePackageDowngrade, "old_version=1:1.9.13p3-1"}}},
		{"package downgraded now, removed now", func(tr tree) {
			tr["/var/lib/dpkg/status"] = "Package: sudo\nStatus: install ok installed\nVersion: 1:1.9.13p3-1~bpo1\n"
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := base.clone()
			tc.change(after)
			dir := t.TempDir()
			mkfs(t, base, filepath.Join(dir, "before.img"), 8)
			mkfs(t, after, filepath.Join(dir, "after.img"), 8)
			cur := openRaw(t, filepath.Join(dir, "after.img"), model.KindCurrent, "")
			snap := openRaw(t, filepath.Join(dir, "before.img"), model.KindSnapshot, "s1")
			findings, notes, err := analyzeViews(context.Background(), "img", cur, []model.View{snap})
			if err != nil {
				t.Fatal(err)
			}
			if len(notes) > 0 {
				t.Errorf("notes: %q", notes)
			}
			var got []want
			for _, f := range findings {
				t.Logf("%s [%s] %s", f.Rule, f.Severity, f.Description)
				w := want{rule: f.Rule}
				for _, e := range tc.want {
					k, v, _ := strings.Cut(e.meta, "=")
					if e.rule == f.Rule && f.Metadata[k] == v {
						w.meta = e.meta
					}
				}
				got = append(got, w)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRollbackSkipsUnreadable: a view without a readable filesystem gets
// one note naming it; an unreadable current view skips everything.
func TestRollbackSkipsUnreadable(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	mkfs(t, tree{"/etc/passwd": "root:x:0:0::/root:/bin/bash\n"}, good, 8)
	junk := filepath.Join(dir, "junk.img")
	if err := writeFile(junk, []byte(strings.Repeat("not a filesystem ", 1<<16))); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		cur       string
		others    []string
		wantNotes []string
	}{
		{"junk snapshot", good, []string{junk, good}, []string{"rollback analysis skipped for snapshot s0 (img#snapshot:s0): no filesystem readable by path"}},
		{"junk current", junk, []string{good, good}, []string{"rollback analysis skipped for 2 views: the current view img#current cannot be read: no filesystem readable by path"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := openRaw(t, tc.cur, model.KindCurrent, "")
			var others []model.View
			for i, p := range tc.others {
				others = append(others, openRaw(t, p, model.KindSnapshot, "s"+itoa(i)))
			}
			// Memory views are not rollback targets: ignored, no note.
			others = append(others, model.View{ID: "img#memory:s0", Kind: model.KindMemory})
			findings, notes, err := analyzeViews(context.Background(), "img", cur, others)
			if err != nil {
				t.Fatal(err)
			}
			if len(findings) != 0 {
				t.Errorf("findings: %v", findings)
			}
			if len(notes) != len(tc.wantNotes) {
				t.Fatalf("notes %q, want %q", notes, tc.wantNotes)
			}
			for i, n := range notes {
				if !strings.HasPrefix(n, tc.wantNotes[i]) {
					t.Errorf("note %q, want prefix %q", n, tc.wantNotes[i])
				}
			}
		})
	}
	_ = report.SeverityHigh
}

// TestRollbackContextCancelled: a cancelled context stops the analysis
// with its error.
func TestRollbackContextCancelled(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	p := filepath.Join(t.TempDir(), "fs.img")
	mkfs(t, tree{"/etc/passwd": "root:x:0:0::/root:/bin/bash\n"}, p, 8)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cur := openRaw(t, p, model.KindCurrent, "")
	snap := openRaw(t, p, model.KindSnapshot, "s")
	if _, _, err := analyzeViews(ctx, "img", cur, []model.View{snap}); err == nil {
		t.Fatal("no error with a cancelled context")
	}
}
