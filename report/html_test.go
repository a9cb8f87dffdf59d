package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// htmlScript returns the text of the page's <script> element with the
// given id.
func htmlScript(page, id string) (string, bool) {
	start := `<script type="application/json" id="` + id + `">`
	_, rest, ok := strings.Cut(page, start)
	if !ok {
		return "", false
	}
	body, _, ok := strings.Cut(rest, "</script>")
	return body, ok
}

func writeHTMLString(t *testing.T, r *Report) string {
	t.Helper()
	var out bytes.Buffer
	if err := WriteHTML(&out, r); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestWriteHTMLEmbedsTheJSONForm: the page holds WriteJSON's document
// itself, escaped only so that it cannot end its <script> element.
func TestWriteHTMLEmbedsTheJSONForm(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *Report
	}{{"sample", sampleReport()}, {"empty", emptyReport()}, {"interrupted", interruptedReport()}, {"hostile", hostileReport()}} {
		t.Run(tc.name, func(t *testing.T) {
			page := writeHTMLString(t, tc.r)
			data, ok := htmlScript(page, htmlDataID)
			if !ok {
				t.Fatal("no embedded report")
			}
			var js bytes.Buffer
			if err := WriteJSON(&js, tc.r); err != nil {
				t.Fatal(err)
			}
			if data != string(scriptSafeJSON(js.Bytes())) {
				t.Errorf("embedded JSON differs from WriteJSON's (escaped)")
			}
			if strings.ContainsAny(data, "<>&") {
				t.Errorf("embedded JSON holds <, > or &")
			}
			// It is the same JSON value, and ReadJSON reads it back.
			var a, b any
			if err := json.Unmarshal([]byte(data), &a); err != nil {
				t.Fatalf("embedded JSON does not parse: %v", err)
			}
			if err := json.Unmarshal(js.Bytes(), &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Errorf("embedded JSON is another value than WriteJSON's")
			}
			if _, err := ReadJSON(strings.NewReader(data)); err != nil {
				t.Errorf("ReadJSON of the embedded report: %v", err)
			}
		})
	}
}

func TestScriptSafeJSON(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":"</script><!--x-->"}`, `{"a":"\u003c/script\u003e\u003c!--x--\u003e"}`},
		{`{"a":"R&D"}`, `{"a":"R\u0026D"}`},
		{"{\"a\":\"line\u2028para\u2029\"}", `{"a":"line\u2028para\u2029"}`},
		{`{"a":"é ü €"}`, `{"a":"é ü €"}`},
		{`{"a":"\u003c"}`, `{"a":"\u003c"}`},
	} {
		got := string(scriptSafeJSON([]byte(tc.in)))
		if got != tc.want {
			t.Errorf("scriptSafeJSON(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var a, b any
		if json.Unmarshal([]byte(tc.in), &a) != nil || json.Unmarshal([]byte(got), &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("scriptSafeJSON(%q) changed the value", tc.in)
		}
	}
}

var staticRow = regexp.MustCompile(`<tr class="finding" data-fingerprint="([^"]*)">`)

// TestWriteHTMLListsEveryFindingWithoutScript: the <noscript> fallback
// lists every finding once, in its section.
func TestWriteHTMLListsEveryFindingWithoutScript(t *testing.T) {
	r := sectionsReport()
	page := writeHTMLString(t, r)
	_, static, ok := strings.Cut(page, "<noscript>")
	static, _, ok2 := strings.Cut(static, "</noscript>")
	if !ok || !ok2 {
		t.Fatal("no <noscript> fallback")
	}
	got := map[string]int{}
	for _, m := range staticRow.FindAllStringSubmatch(static, -1) {
		got[m[1]]++
	}
	for _, f := range r.Findings {
		if got[f.Fingerprint] != 1 {
			t.Errorf("%s (%s) listed %d times without script, want once", f.Rule, f.Category, got[f.Fingerprint])
		}
	}
	if len(got) != len(r.Findings) {
		t.Errorf("%d findings listed, want %d", len(got), len(r.Findings))
	}
	// Each finding in the section the script also puts it in.
	for _, tc := range []struct{ section, rule string }{
		{htmlSectionOutside, "ssh-rsa-private-key"},
		{htmlSectionLive, "password-hash-sha512crypt"},
		{htmlSectionPublic, "public-test-key"},
		{htmlSectionRisk, "rollback-host-key"},
		{htmlSectionCloned, "cloned-ssh-host-key"},
	} {
		head := `<h3 id="static-` + tc.section + `">`
		i := strings.Index(static, head)
		if i < 0 {
			t.Errorf("no %s section", tc.section)
			continue
		}
		body := static[i:]
		if j := strings.Index(body[len(head):], `<h3 id="static-`); j >= 0 {
			body = body[:len(head)+j]
		}
		if !strings.Contains(body, "<td>"+tc.rule) {
			t.Errorf("%s is not in section %s", tc.rule, tc.section)
		}
	}
	// At most MaxLocations locations each, and the rest counted.
	if !strings.Contains(static, "… and 2 more locations") {
		t.Errorf("the 7 locations of ssh-rsa-private-key are not capped at %d", DefaultMaxLocations)
	}
}

// TestWriteHTMLEscapesHostileStrings: markup in a file name, a view, a
// preview or a target path is text on the page, in the markup and in the
// embedded JSON alike; the only scripts are the page's own three.
func TestWriteHTMLEscapesHostileStrings(t *testing.T) {
	page := writeHTMLString(t, hostileReport())
	lower := strings.ToLower(page)
	if n := strings.Count(lower, "<script"); n != 3 {
		t.Errorf("%d <script elements, want the page's 3", n)
	}
	if n := strings.Count(lower, "</script"); n != 3 {
		t.Errorf("%d </script, want the page's 3", n)
	}
	for _, bad := range []string{"<img", "<!--", "<iframe", "\x1b"} {
		if strings.Contains(lower, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	// The names are shown, escaped.
	for _, want := range []string{
		"&lt;/script&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;",
		"&lt;img src=x onerror=&#34;window.pwned=2&#34;&gt;",
		`\x1b]0;pwn\a`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped name %q", want)
		}
	}
}

// TestWriteHTMLContentSecurityPolicy: the policy allows exactly the
// page's own script and style, and no fetch at all.
func TestWriteHTMLContentSecurityPolicy(t *testing.T) {
	page := writeHTMLString(t, sampleReport())
	m := regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no Content-Security-Policy")
	}
	csp := html.UnescapeString(m[1])
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	script := page[strings.LastIndex(page, "<script>")+len("<script>"):]
	script = script[:strings.Index(script, "</script>")]
	style := page[strings.Index(page, "<style>")+len("<style>"):]
	style = style[:strings.Index(style, "</style>")]
	for _, want := range []string{"default-src 'none'", "script-src " + hash(script), "style-src " + hash(style)} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q allows inline code or a host", csp)
	}
}

// TestWriteHTMLFallbackShowsExtraFields: fields of the JSON form that
// Report does not have (added by later versions) reach the page without
// script too.
func TestWriteHTMLFallbackShowsExtraFields(t *testing.T) {
	r := sampleReport()
	js := extendedJSON(t, r)
	var out bytes.Buffer
	if err := writeHTML(&out, r, js); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	for _, want := range []string{
		"<b>snapshot</b>: delete snapshot golden <code>qemu-img snapshot -d golden web01.qcow2</code>", // remediation
		"dpkg openssh-server 1:9.2p1-2 /etc/ssh/ssh_host_rsa_key (unmodified)",                         // provenance
		"shipped unmodified by openssh-server (high → info)",                                           // reasons
		"mentioned as a plain string",                                                                  // a reason as a string
		"truncated: locations: 1200",                                                                   // truncated
		"<code>/srv/images/README</code></td><td>not an image: text",                                   // skipped
		"<code>/srv/images/web02.qcow2</code>: stat /srv/images/web02.qcow2: permission denied",        // incomplete_reasons
		"followed symlink web01.qcow2 -&gt; /srv/real/web01.qcow2",                                     // targets[].notes
		"<dt>ignored</dt><dd>3</dd>",                                                                   // summary counts
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// extendedJSON is r's JSON form plus fields of later schema versions:
// remediation, provenance, reasons, truncated, skipped,
// incomplete_reasons, target notes and summary counts.
func extendedJSON(t testing.TB, r *Report) []byte {
	t.Helper()
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	m["skipped"] = []any{map[string]any{"path": "/srv/images/README", "reason": "not an image: text"}}
	m["incomplete_reasons"] = []any{map[string]any{"target": "/srv/images/web02.qcow2", "reason": "stat /srv/images/web02.qcow2: permission denied"}}
	m["summary"].(map[string]any)["ignored"] = 3
	m["targets"].([]any)[0].(map[string]any)["notes"] = []any{"followed symlink web01.qcow2 -> /srv/real/web01.qcow2"}
	for _, f := range m["findings"].([]any) {
		f := f.(map[string]any)
		if f["rule"] != "ssh-rsa-private-key" {
			continue
		}
		f["remediation"] = []any{
			map[string]any{"class": "all", "action": "rotate the credential"},
			map[string]any{"class": "snapshot", "action": "delete snapshot golden", "command": "qemu-img snapshot -d golden web01.qcow2"},
		}
		f["provenance"] = map[string]any{"manager": "dpkg", "package": "openssh-server", "version": "1:9.2p1-2", "path": "/etc/ssh/ssh_host_rsa_key", "modified": false}
		f["reasons"] = []any{
			map[string]any{"code": "package-file-unmodified", "text": "shipped unmodified by openssh-server", "from": "high", "to": "info"},
			"mentioned as a plain string",
		}
		f["truncated"] = map[string]any{"locations": 1200}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sectionsReport has a finding for every section of the page.
func sectionsReport() *Report {
	r := sampleReport()
	web := r.Targets[0].Path
	snap := web + "#snapshot:golden"
	loc := Location{Target: web, View: snap, ViewKind: "snapshot", Offset: 0x1000, Length: 100, Path: "/etc/ssh/ssh_host_ed25519_key", State: StateAllocated, Exposure: ExposureSnapshot}
	r.Findings = append(r.Findings,
		Finding{Rule: "public-test-key", Category: "private-key", Severity: htmlPublicSeverity, Fingerprint: fp("public"), Preview: "-----BEGIN RSA PRIVATE KEY-----",
			Exposure: []string{ExposureLive}, Locations: []Location{{Target: web, View: web + "#current", ViewKind: "current", Path: "/usr/share/doc/x/test.pem", State: StateAllocated, Exposure: ExposureLive}}},
		Finding{Rule: "rollback-host-key", Category: CategoryRollbackRisk, Severity: SeverityMedium, Fingerprint: fp("rollback"), Preview: "SHA256:abc",
			Exposure: []string{ExposureSnapshot}, OutsideGuestControl: true, Locations: []Location{loc}},
		Finding{Rule: "cloned-ssh-host-key", Category: CategoryClonedIdentity, Severity: SeverityHigh, Fingerprint: fp("cloned"), Preview: "SHA256:def",
			Exposure: []string{ExposureLive}, Locations: []Location{loc}},
	)
	return r
}

// hostileReport names files, views and targets with markup and control
// characters, as an image made by a stranger can.
func hostileReport() *Report {
	r := sampleReport()
	web := r.Targets[0].Path
	r.Targets[0].Path = web + "</script><script>window.pwned=1</script>"
	r.Targets[0].Views[1].Name = `<img src=x onerror="window.pwned=2">`
	f := &r.Findings[1]
	f.Locations[0].Path = "/etc/</script><script>window.pwned=1</script>/key"
	f.Locations[1].Path = `/home/<img src=x onerror="window.pwned=2">`
	f.Locations[1].Partition = "<!--"
	f.Preview = "-----BEGIN <iframe src=x>"
	r.Findings[0].Metadata["user"] = "<img src=x onerror=\"window.pwned=2\">\x1b]0;pwn\x07"
	r.SharedIdentity = []SharedIdentity{{Fingerprint: fp("shared"), Kind: "ssh-host-key", Rule: "ssh-ed25519-private-key", Preview: "<script>window.pwned=3</script>", VMs: []string{"web01", "<img src=x>"}}}
	return r
}
