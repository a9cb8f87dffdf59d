package detectors

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// valueAcrossNUL is config-password's regexp as it was before values
// stopped at control bytes: the tests below check that their inputs would
// have been findings then, so that they test the NUL rule.
var valueAcrossNUL = regexp.MustCompile(`(?i)(?:^|[^0-9A-Za-z])(?:[a-z0-9]+[_.-])?(?:password|passwd)["']?[ \t]*(?:=|:|:=|=>)[ \t]*["']?([^\s"'<>;,&]{6,128})`)

// genericRuleIDs are the rules whose values passwordQuality judges.
func genericRuleIDs() map[string]bool {
	ids := map[string]bool{}
	for _, r := range Builtin() {
		if r.Check == "password" || r.Check == "password-lax" {
			ids[r.ID] = true
		}
	}
	return ids
}

// TestGettextCatalog: a gettext catalog made by msgfmt is a table of
// NUL-terminated strings, where "Password: " is followed by the next
// msgid; none of it is a password.
func TestGettextCatalog(t *testing.T) {
	testutil.RequireTool(t, "msgfmt")
	dir := t.TempDir()
	po := filepath.Join(dir, "de.po")
	if err := os.WriteFile(po, []byte(`msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: de\n"

msgid "Password: "
msgstr "Passwort: "

msgid "Linux-PAM"
msgstr "Linux-PAM"

msgid "Database dump:"
msgstr "Datenbankabzug:"

msgid "Enter new password: "
msgstr "Neues Passwort eingeben: "

msgid "passwd: password updated successfully\n"
msgstr "passwd: Passwort erfolgreich geändert\n"

msgid "Retype new password:"
msgstr "Neues Passwort wiederholen:"

msgid "password:"
msgstr "Kennwort:"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	mo := filepath.Join(dir, "de.mo")
	testutil.Run(t, "msgfmt", "-o", mo, po)
	catalog, err := os.ReadFile(mo)
	if err != nil {
		t.Fatal(err)
	}
	if !valueAcrossNUL.Match(catalog) {
		t.Fatalf("catalog has no value across a NUL: the test tests nothing\n%q", catalog)
	}
	e := testEngine(t, EngineOptions{})
	generic := genericRuleIDs()
	for _, m := range e.FindAll(catalog, ScanOptions{}) {
		if generic[m.RuleID] || m.RuleID == "config-password" {
			t.Errorf("finding in a gettext catalog: %s [%d,%d) %s", m.RuleID, m.Start, m.End, m.Preview)
		}
	}
}

// TestELFStringTable: an executable built by gcc keeps its string
// literals NUL-terminated side by side in .rodata. A prompt such as
// "Password: " is not a password; "password=..." inside one literal is.
func TestELFStringTable(t *testing.T) {
	testutil.RequireTool(t, "gcc")
	const prompts = `"Password: ", "Linux-PAM", "Database dump:", "password:", "Enter new password: ",
	"%s@%s's password: ", "New Password: ", "Re-enter new password: ", "passwd: %s\n", "auth_token:"`
	const secret = "Xk8#pq2!vL"
	for _, c := range []struct {
		name, extra string
		want        bool
	}{
		{"prompts", "", false},
		{"embedded", `, "password=` + secret + `", "Database dump:"`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "prompts.c")
			prog := `#include <stdio.h>
const char *strings[] = {` + prompts + c.extra + `};
int main(int argc, char **argv) {
	for (int i = 0; i < argc && i < (int)(sizeof strings / sizeof *strings); i++)
		puts(strings[i]);
	return 0;
}
`
			if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(dir, "prompts")
			testutil.Run(t, "gcc", "-O0", "-o", bin, src)
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			if !valueAcrossNUL.Match(b) {
				t.Fatal(".rodata has no value across a NUL: the test tests nothing")
			}
			e := testEngine(t, EngineOptions{})
			generic := genericRuleIDs()
			found := false
			for _, m := range e.FindAll(b, ScanOptions{}) {
				switch {
				case m.RuleID == "config-password" && m.Fingerprint == fp(secret):
					found = true
				case generic[m.RuleID]:
					t.Errorf("finding in a string table: %s [%d,%d) %s", m.RuleID, m.Start, m.End, m.Preview)
				}
			}
			if found != c.want {
				t.Errorf("password=%s found: %v, want %v", secret, found, c.want)
			}
		})
	}
}
