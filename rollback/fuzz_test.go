package rollback

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors/structural"
)

// Fuzz targets for every parser of guest files. Seeds are in
// testdata/fuzz/FuzzXxx.

func FuzzShadow(f *testing.F) {
	f.Add([]byte("root:*:19000:0:99999:7:::\nalice:!$6$s$h:1::::::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		seen := map[string]bool{}
		for _, e := range ParseShadow(b) {
			if seen[e.Name] || !validAccountName([]byte(e.Name)) || strings.Contains(e.Hash, "\n") {
				t.Fatalf("bad entry %q", e.Name)
			}
			seen[e.Name] = true
			ClassifyHash(e.Hash)
			if p := hashPreview(e.Hash); len(e.Hash) >= 16 && strings.Contains(p, e.Hash[len(e.Hash)-12:]) {
				t.Fatalf("preview %q shows the hash", p)
			}
		}
		ParsePasswd(b)
		ParseGroup(b)
	})
}

func FuzzDebVersion(f *testing.F) {
	f.Add("1:2.0~rc1-3", "2.0-1")
	f.Fuzz(func(t *testing.T, a, b string) {
		c, err := CompareDebVersions(a, b)
		if err != nil {
			return
		}
		if r, err := CompareDebVersions(b, a); err != nil || r != -c {
			t.Fatalf("not antisymmetric: %q %q: %d, %d", a, b, c, r)
		}
		va, _ := ParseDebVersion(a)
		if r, err := CompareDebVersions(va.String(), a); err != nil || r != 0 {
			t.Fatalf("String() of %q is %q, compares %d, %v", a, va.String(), r, err)
		}
	})
}

func FuzzAuthorizedKeys(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9rZXk= c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, k := range ParseAuthorizedKeys(b) {
			if k.Fingerprint != structural.SSHFingerprint(k.Blob) || !isSSHKeyType(k.Type) ||
				!bytes.HasPrefix(k.Blob[4:], []byte(k.Type)) {
				t.Fatalf("inconsistent key %+v", k)
			}
		}
	})
}

func FuzzSudoers(f *testing.F) {
	f.Add([]byte("root ALL=(ALL) ALL\n@includedir /etc/sudoers.d\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rules, _ := ParseSudoers(b)
		for _, r := range rules {
			if r.Text == "" || strings.HasPrefix(r.Principal, "Defaults") {
				t.Fatalf("bad rule %+v", r)
			}
		}
		var k sshdKeyFiles
		k.parse(b, false, func(string, bool) {})
		k.patterns()
	})
}
