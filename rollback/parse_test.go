package rollback

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestParseShadow(t *testing.T) {
	in := "root:*:19000:0:99999:7:::\n" +
		"alice:!$6$salt$abc:19000:0:99999:7:::\r\n" +
		"# comment\n" +
		"+nisuser::::::::\n" +
		"bad line without colon\n" +
		"bob:$y$j9T$salt$hash:1::::::\n" +
		"bob:$6$dup$dup:1::::::\n" +
		"nopw::1::::::\n" +
		"short:$1$x$yyyyyyyyyyyyyyyyyyyyyy"
	want := []ShadowEntry{
		{"root", "*", 1}, {"alice", "!$6$salt$abc", 2}, {"bob", "$y$j9T$salt$hash", 6},
		{"nopw", "", 8}, {"short", "$1$x$yyyyyyyyyyyyyyyyyyyyyy", 9},
	}
	if got := ParseShadow([]byte(in)); !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestClassifyHash(t *testing.T) {
	cases := []struct {
		hash   string
		state  HashState
		scheme string
	}{
		{"$6$salt$abcdef", HashUsable, "sha512crypt"},
		{"$y$j9T$salt$hash", HashUsable, "yescrypt"},
		{"$2b$10$abcdefghijklmnopqrstuv", HashUsable, "bcrypt"},
		{"$1$salt$hash", HashUsable, "md5crypt"},
		{"abcdefghijklm", HashUsable, "descrypt"},
		{"!$6$salt$abcdef", HashLocked, ""},
		{"!!", HashLocked, ""},
		{"!", HashLocked, ""},
		{"*", HashDisabled, ""},
		{"*LK*", HashDisabled, ""},
		{"x", HashDisabled, ""},
		{"$9$unknown$scheme", HashDisabled, ""},
		{"$6$", HashDisabled, ""},
		{"", HashEmpty, ""},
	}
	for _, c := range cases {
		if got := ClassifyHash(c.hash); got != c.state {
			t.Errorf("ClassifyHash(%q) = %v, want %v", c.hash, got, c.state)
		}
		if got := hashScheme(c.hash); got != c.scheme {
			t.Errorf("hashScheme(%q) = %q, want %q", c.hash, got, c.scheme)
		}
	}
	if p := hashPreview("$6$salt$" + strings.Repeat("a", 86)); p != "$6$…(94 chars)" {
		t.Errorf("preview %q", p)
	}
}

func TestParsePasswdAndGroup(t *testing.T) {
	pw := ParsePasswd([]byte("root:x:0:0:root:/root:/bin/bash\nbad:x:1\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"))
	if len(pw) != 2 || pw[1].Name != "daemon" || pw[1].Home != "/usr/sbin" || !nonLoginShell(pw[1].Shell) || nonLoginShell(pw[0].Shell) {
		t.Errorf("passwd: %+v", pw)
	}
	gr := ParseGroup([]byte("sudo:x:27:alice, carol,,bad name\nwheel:x:10:\nbroken:x\n"))
	if len(gr) != 2 || !slices.Equal(gr[0].Members, []string{"alice", "carol"}) || len(gr[1].Members) != 0 {
		t.Errorf("group: %+v", gr)
	}
}

// debVersionCases are compared by CompareDebVersions and, when dpkg is
// installed, by `dpkg --compare-versions` itself.
var debVersionCases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0},
	{"1.0", "1.1", -1},
	{"1.10", "1.9", 1},
	{"1.0~rc1", "1.0", -1},
	{"1.0~~", "1.0~", -1},
	{"1.0~", "1.0", -1},
	{"1.0", "1.0+b1", -1},
	{"1.0a", "1.0", 1},
	{"1.0a", "1.0+", -1},
	{"1:0.1", "2.0", 1},
	{"0:1.0", "1.0", 0},
	{"00001:1.0", "1:1.0", 0},
	{"1.0-1", "1.0-2", -1},
	{"1.0-1", "1.0", 1},
	{"1.0-0", "1.0", 0},
	{"3.0.11-1~deb12u1", "3.0.11-1~deb12u2", -1},
	{"2.36-9+deb12u3", "2.36-9+deb12u10", -1},
	{"1.2.3-4ubuntu0.1", "1.2.3-4", 1},
	{"1.001", "1.1", 0},
	{"1.0-1-2", "1.0-1-10", -1},
	{"7.9p1-10+deb10u2", "7.9p1-10+deb10u11", -1},
	{"99999999999999999999:1", "99999999999999999998:2", 1},
}

func TestCompareDebVersions(t *testing.T) {
	for _, c := range debVersionCases {
		got, err := CompareDebVersions(c.a, c.b)
		if err != nil || got != c.want {
			t.Errorf("Compare(%q, %q) = %d, %v; want %d", c.a, c.b, got, err, c.want)
		}
		if r, _ := CompareDebVersions(c.b, c.a); r != -c.want {
			t.Errorf("Compare(%q, %q) not antisymmetric", c.b, c.a)
		}
	}
	for _, bad := range []string{"", ":1.0", "a:1.0", "1.0-", "abc", "1.0 2", strings.Repeat("1", 300)} {
		if _, err := ParseDebVersion(bad); err == nil {
			t.Errorf("ParseDebVersion(%q) accepted", bad)
		}
	}
}

// TestCompareDebVersionsMatchesDpkg checks the table against the real
// dpkg (huge epochs excepted: dpkg limits them to INT_MAX).
func TestCompareDebVersionsMatchesDpkg(t *testing.T) {
	testutil.RequireTool(t, "dpkg")
	for _, c := range debVersionCases {
		if strings.HasPrefix(c.a, "9999") {
			continue
		}
		for _, op := range []struct {
			name string
			ok   bool
		}{{"lt", c.want < 0}, {"eq", c.want == 0}, {"gt", c.want > 0}} {
			err := exec.Command("dpkg", "--compare-versions", c.a, op.name, c.b).Run()
			if (err == nil) != op.ok {
				t.Errorf("dpkg --compare-versions %s %s %s: %v, we say %d", c.a, op.name, c.b, err, c.want)
			}
		}
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen")
	k := newSSHKey(t, "ed25519", "user@host")
	e := newSSHKey(t, "ecdsa", "")
	parts := strings.Fields(k.pubLine)
	cases := []struct {
		name    string
		line    string
		ok      bool
		options bool
	}{
		{"plain", k.pubLine, true, false},
		{"no comment", parts[0] + " " + parts[1], true, false},
		{"tabs and leading space", "  \t" + parts[0] + "\t" + parts[1] + "\tc", true, false},
		{"options", "restrict,pty " + k.pubLine, true, true},
		{"quoted options with spaces", `command="echo \"a b\"",from="10.0.0.1" ` + k.pubLine, true, true},
		{"ecdsa", e.pubLine, true, false},
		{"comment line", "# " + k.pubLine, false, false},
		{"blank", "   ", false, false},
		{"bad base64", parts[0] + " !!!notbase64", false, false},
		{"type mismatch", "ssh-rsa " + parts[1], false, false},
		{"unterminated quote", `command="x ` + k.pubLine, false, false},
		{"options only", "restrict", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys := ParseAuthorizedKeys([]byte("\n" + c.line + "\n"))
			if !c.ok {
				if len(keys) != 0 {
					t.Fatalf("parsed %+v", keys)
				}
				return
			}
			if len(keys) != 1 {
				t.Fatalf("%d keys", len(keys))
			}
			want := k
			if c.name == "ecdsa" {
				want = e
			}
			if keys[0].Fingerprint != want.fp || string(keys[0].Blob) != string(want.blob) || keys[0].HasOptions != c.options || keys[0].Line != 2 {
				t.Errorf("got %+v, want fingerprint %s", keys[0], want.fp)
			}
		})
	}
}

func TestParseSudoers(t *testing.T) {
	in := "# comment\n" +
		"Defaults\tenv_reset\n" +
		"Defaults:alice !requiretty\n" +
		"root    ALL = (ALL:ALL) ALL\n" +
		"%sudo ALL=(ALL:ALL) ALL  # admins\n" +
		"#1000 ALL=(ALL) ALL\n" +
		"User_Alias ADMINS = alice, \\\n  bob\n" +
		"ADMINS ALL=NOPASSWD: /usr/bin/apt\n" +
		"@includedir /etc/sudoers.d\n" +
		"#include /etc/sudoers.local\n" +
		"#includedirectory is a comment\n"
	rules, incs := ParseSudoers([]byte(in))
	want := []SudoRule{
		{4, "root", "root ALL=(ALL:ALL) ALL"},
		{5, "%sudo", "%sudo ALL=(ALL:ALL) ALL"},
		{6, "#1000", "#1000 ALL=(ALL) ALL"},
		{7, "User_Alias", "User_Alias ADMINS=alice,bob"},
		{9, "ADMINS", "ADMINS ALL=NOPASSWD:/usr/bin/apt"},
	}
	if !slices.Equal(rules, want) {
		t.Errorf("rules:\n%+v\nwant\n%+v", rules, want)
	}
	if !slices.Equal(incs, []SudoInclude{{"/etc/sudoers.d", true}, {"/etc/sudoers.local", false}}) {
		t.Errorf("includes %+v", incs)
	}
	for name, used := range map[string]bool{"dave": true, "x.bak": false, "dave~": false, "README": true, "": false} {
		if sudoersDirEntryUsed(name) != used {
			t.Errorf("sudoersDirEntryUsed(%q) != %v", name, used)
		}
	}
}

func TestSSHDConfigPatterns(t *testing.T) {
	cases := []struct {
		name, cfg string
		want      []string
	}{
		{"default", "PermitRootLogin no\n", []string{".ssh/authorized_keys", ".ssh/authorized_keys2"}},
		{"first wins", "AuthorizedKeysFile a b\nauthorizedkeysfile c\n", []string{"a", "b"}},
		{"equals and quotes", `AuthorizedKeysFile="/etc/keys/%u" ".ssh/my keys"` + "\n", []string{"/etc/keys/%u", ".ssh/my keys"}},
		{"none", "AuthorizedKeysFile none\n", nil},
		{"match adds", "Match User git\n  AuthorizedKeysFile /srv/git/keys\nMatch all\nAuthorizedKeysFile x\n", []string{"x", "/srv/git/keys"}},
	}
	for _, c := range cases {
		var k sshdKeyFiles
		k.parse([]byte(c.cfg), false, func(string, bool) {})
		if got := k.patterns(); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	for _, c := range []struct{ pat, want string }{
		{".ssh/authorized_keys", "/home/al/.ssh/authorized_keys"},
		{"%h/.ssh/k", "/home/al/.ssh/k"},
		{"/etc/ssh/keys/%u", "/etc/ssh/keys/al"},
		{"/k/%U/100%%", "/k/1000/100%"},
		{"/k/%x", ""},
		{"/k/%", ""},
	} {
		got, ok := expandKeyFile(c.pat, "al", "1000", "/home/al")
		if got != c.want || ok != (c.want != "") {
			t.Errorf("expand %q = %q, %v; want %q", c.pat, got, ok, c.want)
		}
	}
}

func TestSafeText(t *testing.T) {
	if got := safeText("a\x1b[31mb\n", 64); got != "a?[31mb?" {
		t.Errorf("%q", got)
	}
	if got := safeText(strings.Repeat("x", 10), 4); got != "xxxx…" {
		t.Errorf("%q", got)
	}
}
