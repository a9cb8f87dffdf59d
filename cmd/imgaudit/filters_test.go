package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// buildDemo runs the demo generator (testdata/demo/make-demo.sh) into a
// temporary directory and returns the overlay's path.
func buildDemo(t *testing.T) string {
	t.Helper()
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "sfdisk", "ssh-keygen")
	dir := t.TempDir()
	testutil.Run(t, "bash", repoFile(t, "testdata/demo/make-demo.sh"), dir)
	return filepath.Join(dir, "web01.qcow2")
}

func scanJSON(t *testing.T, args ...string) (int, *report.Report, string) {
	t.Helper()
	code, out, errs := runCLI(t, append([]string{"scan", "--no-progress", "--format", "json"}, args...)...)
	if code == exitUsage {
		return code, nil, errs
	}
	r, err := report.ReadJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("scan %q: exit %d, %v\n%s", args, code, err, errs)
	}
	return code, r, errs
}

func rulesOf(r *report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Rule)
	}
	return out
}

func findingByRule(r *report.Report, rule string) *report.Finding {
	for i := range r.Findings {
		if r.Findings[i].Rule == rule {
			return &r.Findings[i]
		}
	}
	return nil
}

// TestFilters runs the filters on the demo: --severity, the ignore file,
// rules-file allowlists and --disable-rule of a rollback rule.
func TestFilters(t *testing.T) {
	img := buildDemo(t)
	t.Chdir(t.TempDir()) // no .imgauditignore unless a case writes one
	code, all, _ := scanJSON(t, img)
	if code != exitFindings || findingByRule(all, "gitlab-pat") == nil || findingByRule(all, "rollback-host-key") == nil {
		t.Fatalf("baseline scan: exit %d, rules %q", code, rulesOf(all))
	}
	stripe := findingByRule(all, "stripe-secret-key")

	t.Run("severity shows only what it lists; the gate judges everything", func(t *testing.T) {
		code, r, _ := scanJSON(t, "--severity", "HIGH,medium", img)
		for _, f := range r.Findings {
			if f.Severity != "high" && f.Severity != "medium" {
				t.Errorf("%s (%s) shown", f.Rule, f.Severity)
			}
		}
		if len(r.Findings) == 0 || r.Summary.HiddenBySeverity != len(all.Findings)-len(r.Findings) || code != exitFindings {
			t.Errorf("exit %d, %d shown, %d hidden of %d", code, len(r.Findings), r.Summary.HiddenBySeverity, len(all.Findings))
		}
		// Nothing low in the demo: nothing shown, but critical findings
		// still fail the gate.
		if code, r, _ := scanJSON(t, "--severity", "low", "--fail-on", "critical", img); code != exitFindings || len(r.Findings) != 0 {
			t.Errorf("--severity low --fail-on critical: exit %d, %d findings shown", code, len(r.Findings))
		}
		if code, _, errs := scanJSON(t, "--severity", "urgent", img); code != exitUsage || !strings.Contains(errs, "urgent") {
			t.Errorf("--severity urgent: exit %d, %s", code, errs)
		}
	})

	t.Run("ignore file", func(t *testing.T) {
		line := stripe.Fingerprint + " # test key of the demo, accepted\n"
		if err := os.WriteFile(report.DefaultIgnoreFile, []byte("# accepted\n\n"+line), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(report.DefaultIgnoreFile)
		_, r, _ := scanJSON(t, img)
		if findingByRule(r, "stripe-secret-key") != nil || r.Summary.Ignored != 1 || len(r.Findings) != len(all.Findings)-1 {
			t.Errorf("./.imgauditignore: rules %q, ignored %d", rulesOf(r), r.Summary.Ignored)
		}
		// --ignore replaces the default file.
		empty := filepath.Join(t.TempDir(), "none")
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, r, _ := scanJSON(t, "--ignore", empty, img); findingByRule(r, "stripe-secret-key") == nil || r.Summary.Ignored != 0 {
			t.Errorf("--ignore FILE did not replace the default: ignored %d", r.Summary.Ignored)
		}
		// A line without a reason is refused, naming the line.
		if err := os.WriteFile(report.DefaultIgnoreFile, []byte("# accepted\n"+stripe.Fingerprint+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _, errs := scanJSON(t, img); code != exitUsage || !strings.Contains(errs, "line 2") || !strings.Contains(errs, "no comment") {
			t.Errorf("ignore line without a comment: exit %d, %s", code, errs)
		}
	})

	t.Run("allowlists", func(t *testing.T) {
		rules := filepath.Join(t.TempDir(), "rules.toml")
		write := func(s string) {
			if err := os.WriteFile(rules, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// A path allowlist drops the gitlab token (every copy is the file
		// /etc/gitlab-runner/token) but only the snapshot copy of alice's
		// 2023 key: its free blocks and clusters have no path.
		write("[[allowlists]]\npaths = ['^/etc/gitlab-runner/', '^/home/alice/\\.ssh/']\n\n" +
			"[[allowlists]]\ntargetRules = [\"stripe-secret-key\"]\nregexes = ['^sk_live_']\n")
		_, r, errs := scanJSON(t, "--rules", rules, img)
		if r == nil {
			t.Fatalf("allowlist refused: %s", errs)
		}
		if findingByRule(r, "gitlab-pat") != nil || findingByRule(r, "stripe-secret-key") != nil {
			t.Errorf("allowlisted findings reported: %q", rulesOf(r))
		}
		var key2023 *report.Finding
		for i, f := range all.Findings {
			if slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Path == "/home/alice/.ssh/id_ecdsa_2023" }) {
				key2023 = &all.Findings[i]
			}
		}
		if key2023 == nil {
			t.Fatal("no finding at /home/alice/.ssh/id_ecdsa_2023 in the demo")
		}
		var kept *report.Finding
		for i := range r.Findings {
			if r.Findings[i].Fingerprint == key2023.Fingerprint && report.IsSecret(&r.Findings[i]) {
				kept = &r.Findings[i]
			}
		}
		if kept == nil || slices.Contains(kept.Exposure, report.ExposureSnapshot) || !slices.Contains(kept.Exposure, report.ExposureDeleted) {
			t.Errorf("2023 key: want its deleted copy kept and its snapshot file allowlisted, got %+v", kept)
		}
		// Refused: a key imgaudit cannot honour is an error naming it.
		write("[allowlist]\ncommits = [\"0123abc\"]\n")
		if code, _, errs := scanJSON(t, "--rules", rules, img); code != exitUsage || !strings.Contains(errs, "commits") {
			t.Errorf("commits: exit %d, %s", code, errs)
		}
		write("[[rules]]\nid = \"x\"\nregex = 'x{20}'\nkeywords = [\"xxxx\"]\n[rules.allowlist]\nregex = ['x']\n")
		if code, _, errs := scanJSON(t, "--rules", rules, img); code != exitUsage || !strings.Contains(errs, "rules.allowlist.regex") {
			t.Errorf("unknown allowlist key: exit %d, %s", code, errs)
		}
	})

	t.Run("rollback rules are rules", func(t *testing.T) {
		code, out, errs := runCLI(t, "rules", "--format", "json")
		var listed []report.RuleInfo
		if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil {
			t.Fatalf("rules: exit %d %v %s", code, err, errs)
		}
		for _, id := range []string{"rollback-host-key", "rollback-tls-key", "cloned-identity"} {
			if !slices.ContainsFunc(listed, func(r report.RuleInfo) bool { return r.ID == id }) {
				t.Errorf("imgaudit rules does not list %s", id)
			}
		}
		_, r, errs := scanJSON(t, "--disable-rule", "rollback-host-key,cloned-identity", img)
		if r == nil {
			t.Fatalf("--disable-rule rollback-host-key refused: %s", errs)
		}
		if findingByRule(r, "rollback-host-key") != nil || findingByRule(r, "rollback-tls-key") == nil {
			t.Errorf("rules after disabling rollback-host-key: %q", rulesOf(r))
		}
		if code, _, errs := scanJSON(t, "--disable-rule", "rollback-no-such", img); code != exitUsage || !strings.Contains(errs, "no rule") {
			t.Errorf("unknown rule: exit %d %s", code, errs)
		}
	})

	t.Run("enable-rule runs only the rules it names", func(t *testing.T) {
		code, r, errs := scanJSON(t, "--enable-rule", "gitlab-pat", "--enable-rule", "stripe-secret-key,rollback-host-key", img)
		if r == nil {
			t.Fatalf("--enable-rule refused: exit %d %s", code, errs)
		}
		got := rulesOf(r)
		slices.Sort(got)
		got = slices.Compact(got)
		if want := []string{"gitlab-pat", "rollback-host-key", "stripe-secret-key"}; !slices.Equal(got, want) {
			t.Errorf("rules found with --enable-rule: %q, want %q", got, want)
		}
		if code != exitFindings {
			t.Errorf("exit %d, want %d: the enabled rules' findings still fail the gate", code, exitFindings)
		}
		// --disable-rule wins over --enable-rule.
		_, r, errs = scanJSON(t, "--enable-rule", "gitlab-pat,stripe-secret-key", "--disable-rule", "stripe-secret-key", img)
		if r == nil {
			t.Fatalf("--enable-rule with --disable-rule refused: %s", errs)
		}
		if got := rulesOf(r); len(got) == 0 || slices.ContainsFunc(got, func(id string) bool { return id != "gitlab-pat" }) {
			t.Errorf("rules found: %q, want gitlab-pat alone", got)
		}
		// A rule that finds nothing here: a clean report and exit 0.
		if code, r, errs := scanJSON(t, "--enable-rule", "cloned-identity", img); r == nil || code != exitOK || len(r.Findings) != 0 {
			t.Errorf("--enable-rule cloned-identity: exit %d, %d findings, %s", code, len(r.Findings), errs)
		}
	})
}
