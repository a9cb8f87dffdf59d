package report_test

// Tests of the HTML report in a real browser: Debian's chromium, headless,
// driven over the DevTools protocol (internal/browser).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/browser"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func requireChromium(t *testing.T) {
	t.Helper()
	if os.Getenv("IMGAUDIT_CHROMIUM") == "" {
		testutil.RequireTool(t, "chromium")
	}
}

func launch(t *testing.T, ctx context.Context) *browser.Browser {
	t.Helper()
	requireChromium(t)
	b, err := browser.Launch(ctx, browser.Options{Width: 1280, Height: 900})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// openedPage is a report loaded in a fresh tab, with everything it asked
// the network for and every error it raised.
type openedPage struct {
	*browser.Page
	url              string
	requests, errors func() []string
}

// open loads the HTML file path in a new tab, with or without scripts,
// and waits for the script's first render.
func open(t *testing.T, ctx context.Context, b *browser.Browser, path string, scripts bool) *openedPage {
	t.Helper()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op := &openedPage{Page: p, url: "file://" + path}
	if op.errors, err = p.Errors(ctx); err != nil {
		t.Fatal(err)
	}
	if op.requests, err = p.Requests(ctx); err != nil {
		t.Fatal(err)
	}
	if !scripts {
		if err := p.DisableScripts(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Navigate(ctx, op.url); err != nil {
		t.Fatal(err)
	}
	if scripts {
		if err := p.WaitFor(ctx, `document.documentElement.hasAttribute('data-rendered')`); err != nil {
			t.Fatal(err)
		}
	}
	return op
}

// eval evaluates expr and decodes its value, failing the test on error.
func (p *openedPage) eval(t *testing.T, ctx context.Context, expr string, v any) {
	t.Helper()
	if err := p.Eval(ctx, expr, v); err != nil {
		t.Fatal(err)
	}
}

// checkQuiet fails when the page asked for anything but its own file, or
// raised an error.
func (p *openedPage) checkQuiet(t *testing.T) {
	t.Helper()
	if reqs := p.requests(); len(reqs) != 1 || reqs[0] != p.url {
		t.Errorf("the page made requests %q, want only its own file", reqs)
	}
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page raised errors: %q", errs)
	}
}

func writeHTMLFile(t *testing.T, r *report.Report) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.WriteHTML(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// matrixJS reads every lifetime matrix of the page: its VM, column views
// and, per secret row, the class of each cell.
const matrixJS = `Array.from(document.querySelectorAll('#lifetime .matrix-group')).map(g => ({
  vm: g.getAttribute('data-vm'),
  cols: Array.from(g.querySelectorAll('thead th.col')).map(th => th.getAttribute('data-view')),
  rows: Array.from(g.querySelectorAll('tbody tr.secret-row')).map(tr => ({
    fp: tr.getAttribute('data-fingerprint'), severity: tr.getAttribute('data-severity'), rule: tr.getAttribute('data-rule'),
    cells: Array.from(tr.querySelectorAll('td.cell')).map(td => td.getAttribute('data-class'))}))}))`

type matrixGroup struct {
	VM   string   `json:"vm"`
	Cols []string `json:"cols"`
	Rows []struct {
		FP       string   `json:"fp"`
		Severity string   `json:"severity"`
		Rule     string   `json:"rule"`
		Cells    []string `json:"cells"`
	} `json:"rows"`
}

// cell returns the class of a secret's cell in a view, "" when the
// matrix has no such row or column.
func (g matrixGroup) cell(fp, view string) string {
	c := slices.Index(g.Cols, view)
	for _, r := range g.Rows {
		if r.FP == fp && c >= 0 && c < len(r.Cells) {
			return r.Cells[c]
		}
	}
	return ""
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHTMLReportOfTheDemo builds the demo images, scans them, writes the
// HTML report and reads it in Chromium, with and without JavaScript.
func TestHTMLReportOfTheDemo(t *testing.T) {
	images, sec := testutil.BuildDemo(t)
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	engine, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := scanner.New(scanner.Options{Engine: engine, FailOn: "low"}).Scan(ctx, []string{filepath.Join(images, "web01.qcow2")})
	if err != nil {
		t.Fatal(err)
	}
	path := writeHTMLFile(t, rep)
	b := launch(t, ctx)

	pem := func(name string) string { return sha(bytes.TrimRight(readFile(t, filepath.Join(sec, name)), "\n")) }
	field := func(name, re string) string {
		m := regexp.MustCompile(re).FindSubmatch(readFile(t, filepath.Join(sec, name)))
		if m == nil {
			t.Fatalf("%s: no match for %s", name, re)
		}
		return sha(m[1])
	}
	const (
		now    = "web01.qcow2#current"
		golden = "web01.qcow2#snapshot:golden"
		base   = "web01.qcow2#backing:base.qcow2"
		unref  = "web01.qcow2#unreferenced"
	)
	// Where the demo's secrets persist (README, "The demo"), as cells.
	wantCells := []struct {
		secret, fp  string
		view, class string
	}{
		{"current host key", pem("host_new"), now, "file"},
		{"AWS key pair", field("aws_credentials", `aws_secret_access_key = (\S+)`), now, "file"},
		{"AWS key pair", field("aws_credentials", `aws_secret_access_key = (\S+)`), golden, "file"},
		{"deleted git credential", field("git-credentials", `deploy:([^@]+)@`), now, "residue"},
		{"rotated host key", pem("host_old"), golden, "file"},
		{"rotated host key", pem("host_old"), now, "absent"},
		{"backing-only TLS key", pem("app"), base, "file"},
		{"backing-only TLS key", pem("app"), now, "absent"},
		{"key freed with its snapshot", pem("id_ecdsa"), unref, "residue"},
		{"key freed with its snapshot", pem("id_ecdsa"), now, "absent"},
	}

	t.Run("matrix", func(t *testing.T) {
		p := open(t, ctx, b, path, true)
		var groups []matrixGroup
		p.eval(t, ctx, matrixJS, &groups)
		if len(groups) != 1 || groups[0].VM != "VM web01" {
			t.Fatalf("matrices = %+v, want one, of VM web01", groups)
		}
		g := groups[0]
		// The columns are the timeline's points, oldest first, then the
		// unreferenced bytes of the image and of its backing file.
		var want []string
		for _, pt := range rep.Timelines[0].Points {
			want = append(want, pt.View)
		}
		for _, v := range rep.Targets[0].Views {
			if v.Kind == "unreferenced" {
				want = append(want, v.ID)
			}
		}
		if !slices.Equal(g.Cols, want) {
			t.Errorf("columns = %q, want %q", g.Cols, want)
		}
		if len(g.Cols) < 4 || g.Cols[0] != base || g.Cols[1] != golden || g.Cols[2] != now {
			t.Errorf("columns = %q, want base, golden, now first", g.Cols)
		}
		for _, w := range wantCells {
			if got := g.cell(w.fp, w.view); got != w.class {
				t.Errorf("%s in %s: cell %q, want %q", w.secret, w.view, got, w.class)
			}
		}
		// Every secret that has a location in the VM is a row.
		rows := 0
		for _, f := range rep.Findings {
			if f.Category != report.CategoryRollbackRisk && f.Category != report.CategoryClonedIdentity {
				rows++
			}
		}
		if len(g.Rows) != rows {
			t.Errorf("%d matrix rows, want one per secret (%d)", len(g.Rows), rows)
		}

		// A row opens to its locations (view, offset, partition, path,
		// state).
		var opened []string
		p.eval(t, ctx, `(() => {
		  const tr = Array.from(document.querySelectorAll('#lifetime tr.secret-row')).find(r => r.getAttribute('data-fingerprint') === `+"`"+pem("host_old")+"`"+`);
		  tr.querySelector('td.secret').click();
		  return Array.from(tr.nextElementSibling.querySelectorAll('tr.loc')).map(l => l.innerText.replace(/\s+/g, ' ').trim());
		})()`, &opened)
		found := false
		for _, l := range opened {
			if strings.HasPrefix(l, golden+" 0x") && strings.HasSuffix(l, " p1 /etc/ssh/ssh_host_ed25519_key allocated snapshot") {
				found = true
			}
		}
		if !found {
			t.Errorf("the rotated host key's row opens to %q, want its location in %s", opened, golden)
		}
		p.checkQuiet(t)
	})

	t.Run("filters hide rows", func(t *testing.T) {
		p := open(t, ctx, b, path, true)
		type state struct {
			Rows     int      `json:"rows"`
			Severity []string `json:"severity"`
			Rules    []string `json:"rules"`
			Cards    int      `json:"cards"`
			Shown    string   `json:"shown"`
		}
		const read = `({rows: document.querySelectorAll('#lifetime tr.secret-row').length,
		  severity: Array.from(document.querySelectorAll('#lifetime tr.secret-row')).map(r => r.getAttribute('data-severity')),
		  rules: Array.from(document.querySelectorAll('#lifetime tr.secret-row')).map(r => r.getAttribute('data-rule')),
		  cards: document.querySelectorAll('#findings details.finding-card').length,
		  shown: document.getElementById('shown-count').textContent})`
		var before, after, byRule state
		p.eval(t, ctx, read, &before)
		if !slices.Contains(before.Severity, "critical") {
			t.Fatalf("no critical row to filter out: %+v", before)
		}
		p.eval(t, ctx, `document.querySelector('#filter-severity input[value="critical"]').click(); true`, nil)
		p.eval(t, ctx, read, &after)
		if after.Rows >= before.Rows || slices.Contains(after.Severity, "critical") || after.Cards >= before.Cards || after.Shown == before.Shown {
			t.Errorf("unticking critical: before %+v, after %+v", before, after)
		}
		p.eval(t, ctx, `document.getElementById('filter-reset').click();
		  const s = document.getElementById('filter-rule'); s.value = 'url-credentials'; s.dispatchEvent(new Event('change')); true`, nil)
		p.eval(t, ctx, read, &byRule)
		if byRule.Rows != 1 || byRule.Rules[0] != "url-credentials" || byRule.Cards != 1 {
			t.Errorf("rule url-credentials: %+v, want its one row and card", byRule)
		}
		p.checkQuiet(t)
	})

	t.Run("screenshot is not blank", func(t *testing.T) {
		p := open(t, ctx, b, path, true)
		shot, err := p.Screenshot(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(shot))
		if err != nil {
			t.Fatal(err)
		}
		colours, nonWhite, fileRed := screenshotStats(img)
		total := img.Bounds().Dx() * img.Bounds().Dy()
		t.Logf("screenshot %dx%d: %d colours, %.1f%% not white, %d pixels of live-file red",
			img.Bounds().Dx(), img.Bounds().Dy(), colours, 100*float64(nonWhite)/float64(total), fileRed)
		if colours < 50 || nonWhite < total/20 || fileRed < 500 {
			t.Errorf("the screenshot looks blank: %d colours, %d of %d pixels not white, %d of the matrix's red", colours, nonWhite, total, fileRed)
		}
		p.checkQuiet(t)
	})

	t.Run("without JavaScript every finding is listed", func(t *testing.T) {
		p := open(t, ctx, b, path, false)
		var got struct {
			FPs       []string `json:"fps"`
			AppHidden bool     `json:"appHidden"`
			Scripted  bool     `json:"scripted"`
		}
		p.eval(t, ctx, `({fps: Array.from(document.querySelectorAll('#static-findings tr.finding')).map(r => r.getAttribute('data-fingerprint')),
		  appHidden: getComputedStyle(document.getElementById('app')).display === 'none',
		  scripted: document.documentElement.hasAttribute('data-rendered')})`, &got)
		var want []string
		for _, f := range rep.Findings {
			want = append(want, f.Fingerprint)
		}
		slices.Sort(want)
		slices.Sort(got.FPs)
		if !slices.Equal(got.FPs, want) {
			t.Errorf("without JavaScript the page lists %d findings, want all %d", len(got.FPs), len(want))
		}
		if !got.AppHidden || got.Scripted {
			t.Errorf("scripts off: app hidden %v, script ran %v", got.AppHidden, got.Scripted)
		}
		p.checkQuiet(t)
	})
}

// screenshotStats counts a picture's distinct colours, its pixels that
// are not white, and those of the matrix's live-file colour (#c92a2a).
func screenshotStats(img image.Image) (colours, nonWhite, fileRed int) {
	seen := map[[3]uint32]bool{}
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			c := [3]uint32{r >> 8, g >> 8, b >> 8}
			seen[c] = true
			if c != [3]uint32{255, 255, 255} {
				nonWhite++
			}
			if c == [3]uint32{0xc9, 0x2a, 0x2a} {
				fileRed++
			}
		}
	}
	return len(seen), nonWhite, fileRed
}

// TestHTMLReportHostileNames: file names, views, previews and target
// paths with markup show as text, and none of their scripts or images
// runs or loads, with JavaScript on (everything the script renders,
// opened) and off.
func TestHTMLReportHostileNames(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const (
		scriptName = "/etc/</script><script>window.pwned=1</script>/id_rsa"
		imgName    = `/home/<img src=x onerror="window.pwned=2">.pem`
		target     = "/srv/<script>window.pwned=3</script>.qcow2"
		comment    = "/etc/<!--/x.key"
		noscript   = "/etc/</noscript><img src=z onerror=window.pwned=7>.key"
		member     = `etc/<img src=m onerror="window.pwned=8">/key`
		linkName   = `/srv/<img src=l onerror="window.pwned=9">/key`
	)
	view := target + "#current"
	snap := target + `#snapshot:<img src=y onerror="window.pwned=4">`
	r := &report.Report{
		SchemaVersion: report.SchemaVersion, Tool: report.Tool{Name: "imgaudit", Version: "test"}, Command: "scan", Complete: true, FailOn: "low",
		Targets: []report.Target{{Path: target, Format: "qcow2", Views: []report.View{
			{ID: view, Kind: "current", Name: "current"},
			{ID: snap, Kind: "snapshot", Name: `<img src=y onerror="window.pwned=4">`},
		}, Errors: []string{"bad <b>table</b> at offset 0x30"}}},
		Findings: []report.Finding{{
			Rule: "private-key-rsa", Category: "private-key", Severity: "critical", Fingerprint: sha([]byte("k")),
			Preview: "-----BEGIN <svg onload=window.pwned=5>", Exposure: []string{"snapshot", "live"}, OutsideGuestControl: true,
			Metadata: map[string]string{"user": "<script>window.pwned=6</script>"},
			Locations: []report.Location{
				{Target: target, View: view, ViewKind: "current", Offset: 0x1000, Path: scriptName, Partition: "<i>p1</i>", State: "allocated", Exposure: "live"},
				{Target: target, View: snap, ViewKind: "snapshot", Offset: 0x2000, Path: imgName, State: "allocated", Exposure: "snapshot"},
				{Target: target, View: snap, ViewKind: "snapshot", Offset: 0x3000, Path: comment, State: "free", Exposure: "snapshot"},
				{Target: target, View: view, ViewKind: "current", Offset: 0x4000, Path: noscript, Links: []string{linkName}, LinksOmitted: 2, State: "allocated", Exposure: "live"},
				{Target: target, View: view, ViewKind: "current", Offset: 0x5000, Path: "/var/log/auth.log.2.gz", State: "allocated", Exposure: "live",
					Decoded: []report.DecodedStep{{Codec: "gzip"}, {Codec: "tar", Member: member, Offset: 512}}},
			},
		}},
		Summary: report.Summary{Targets: 1, TargetsFailed: 1, Findings: 1},
	}
	path := writeHTMLFile(t, r)
	b := launch(t, ctx)
	for _, scripts := range []bool{true, false} {
		t.Run(fmt.Sprintf("scripts %v", scripts), func(t *testing.T) {
			p := open(t, ctx, b, path, scripts)
			if scripts {
				// Open every card and matrix row, so that the script
				// renders every name.
				p.eval(t, ctx, `document.querySelectorAll('details').forEach(d => d.open = true);
				  document.querySelectorAll('#lifetime td.secret').forEach(td => td.click()); true`, nil)
				if err := p.WaitFor(ctx, `document.querySelectorAll('#findings tr.loc').length === 5`); err != nil {
					t.Fatal(err)
				}
			}
			var got struct {
				Pwned any    `json:"pwned"`
				Text  string `json:"text"`
				Imgs  int    `json:"imgs"`
				Svgs  int    `json:"svgs"`
			}
			p.eval(t, ctx, `({pwned: window.pwned === undefined ? null : window.pwned, text: document.body.innerText,
			  imgs: document.querySelectorAll('img').length, svgs: document.querySelectorAll('svg').length})`, &got)
			if got.Pwned != nil || got.Imgs != 0 || got.Svgs != 0 {
				t.Errorf("hostile markup became elements: pwned=%v, %d img, %d svg", got.Pwned, got.Imgs, got.Svgs)
			}
			for _, name := range []string{scriptName, imgName, target, comment, noscript, "bad <b>table</b> at offset 0x30", "in: gzip > tar member " + member, "also: " + linkName + " and 2 more"} {
				if !strings.Contains(got.Text, name) {
					t.Errorf("the page does not show %q as text", name)
				}
			}
			p.checkQuiet(t)
		})
	}
}

// TestHTMLReportRendersLaterFields: the script shows the fields other
// versions add to the JSON form when they are there: remediation,
// provenance, reasons, known-public findings (folded), residue marks,
// truncated counts, skipped files and incomplete reasons.
func TestHTMLReportRendersLaterFields(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, js := report.LaterFieldsReport(t)
	path := filepath.Join(t.TempDir(), "later.html")
	var out bytes.Buffer
	if err := report.WriteHTMLWithJSON(&out, r, js); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	b := launch(t, ctx)
	p := open(t, ctx, b, path, true)
	var got struct {
		Card      string   `json:"card"`
		Detail    string   `json:"detail"`
		PublicOn  bool     `json:"publicOpen"`
		Public    int      `json:"public"`
		Cells     []string `json:"cells"`
		Skipped   string   `json:"skipped"`
		Reasons   string   `json:"reasons"`
		Summary   string   `json:"summary"`
		Remedies  int      `json:"remedies"`
		PublicRow string   `json:"publicRow"`
	}
	p.eval(t, ctx, `(async () => {
	  const card = document.querySelector('#findings details.finding-card[data-rule="ssh-rsa-private-key"]');
	  card.open = true;
	  // A card builds its body on its (asynchronous) toggle event.
	  await new Promise(done => card.addEventListener('toggle', () => setTimeout(done, 0), {once: true}));
	  const row = document.querySelector('#lifetime tr.secret-row[data-rule="ssh-rsa-private-key"]');
	  row.querySelector('td.secret').click();
	  const fold = document.getElementById('group-public-fold');
	  return {card: card.innerText, detail: row.nextElementSibling.innerText,
	    publicOpen: fold.open, public: fold.querySelectorAll('details.finding-card').length,
	    cells: Array.from(row.querySelectorAll('td.cell')).map(c => c.textContent),
	    publicRow: Array.from(document.querySelector('#lifetime tr.secret-row[data-severity="info"]').querySelectorAll('td.cell')).map(c => c.textContent).join(''),
	    skipped: document.getElementById('skipped').innerText,
	    reasons: document.getElementById('incomplete-reasons').innerText,
	    summary: document.getElementById('summary').innerText,
	    remedies: row.nextElementSibling.querySelectorAll('li.fix').length};
	})()`, &got)
	for _, want := range []string{
		"snapshot: delete snapshot golden qemu-img snapshot -d golden web01.qcow2",
		"dpkg openssh-server 1:9.2p1-2 /etc/ssh/ssh_host_rsa_key (unmodified)",
		"shipped unmodified by openssh-server (high → info)",
		"mentioned as a plain string",
		"locations: 1200",
	} {
		if !strings.Contains(got.Card, want) {
			t.Errorf("the finding's card lacks %q:\n%s", want, got.Card)
		}
	}
	if got.Remedies != 2 || !strings.Contains(got.Detail, "qemu-img snapshot -d golden web01.qcow2") {
		t.Errorf("the matrix row opens to %d remediation steps:\n%s", got.Remedies, got.Detail)
	}
	wantPublic := 0
	for _, f := range r.Findings {
		if f.Severity == report.SeverityInfo {
			wantPublic++
		}
	}
	if got.PublicOn || got.Public != wantPublic || wantPublic == 0 {
		t.Errorf("known public: folded %v, %d findings; want folded, %d", !got.PublicOn, got.Public, wantPublic)
	}
	if !strings.Contains(got.PublicRow, "p") {
		t.Errorf("the known public row's cells are %q, want p", got.PublicRow)
	}
	// The timeline's residue list makes the snapshot's cell residue,
	// although a file holds the key there.
	if len(got.Cells) < 2 || got.Cells[0] != "r" || got.Cells[1] != "x" {
		t.Errorf("ssh-rsa-private-key cells = %q, want r in the snapshot (its residue), x now", got.Cells)
	}
	if !strings.Contains(got.Skipped, "/srv/images/README") || !strings.Contains(got.Skipped, "not an image: text") {
		t.Errorf("skipped files: %q", got.Skipped)
	}
	if !strings.Contains(got.Reasons, "permission denied") {
		t.Errorf("incomplete reasons: %q", got.Reasons)
	}
	if !strings.Contains(got.Summary, "ignored\n3") {
		t.Errorf("summary: %q", got.Summary)
	}
	p.checkQuiet(t)
}

// TestHTMLReportTenThousandFindings: a report of 10,000 findings opens
// with one page of each list rendered, pages on, and lists every finding
// without script. It logs the file's size and the time to first render
// (quoted in the README).
func TestHTMLReportTenThousandFindings(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const n = 10000
	r := manyFindings(n)
	path := writeHTMLFile(t, r)
	page := readFile(t, path)
	var js bytes.Buffer
	if err := report.WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	start, end := bytes.Index(page, []byte("<noscript>")), bytes.Index(page, []byte("</noscript>"))
	t.Logf("%d findings: HTML %.1f MiB (embedded JSON %.1f MiB, no-script list %.1f MiB)",
		n, float64(len(page))/(1<<20), float64(js.Len())/(1<<20), float64(end-start)/(1<<20))

	b := launch(t, ctx)
	p := open(t, ctx, b, path, true)
	var got struct {
		Start    float64 `json:"start"`
		Rendered float64 `json:"rendered"`
		Load     float64 `json:"load"`
		Cards    int     `json:"cards"`
		Rows     int     `json:"rows"`
		Pager    string  `json:"pager"`
		Shown    string  `json:"shown"`
	}
	const read = `(() => { const nav = performance.getEntriesByType('navigation')[0];
	  return {start: performance.getEntriesByName('imgaudit-start')[0].startTime,
	  rendered: performance.getEntriesByName('imgaudit-rendered')[0].startTime, load: nav.loadEventEnd,
	  cards: document.querySelectorAll('details.finding-card').length,
	  rows: document.querySelectorAll('#lifetime tr.secret-row').length,
	  pager: document.querySelector('#findings .pager span').textContent,
	  shown: document.getElementById('shown-count').textContent}; })()`
	p.eval(t, ctx, read, &got)
	t.Logf("%d findings: first render %.0f ms after navigation start (page parsed at %.0f ms, script %.0f ms), load event %.0f ms",
		n, got.Rendered, got.Start, got.Rendered-got.Start, got.Load)
	if got.Shown != fmt.Sprintf("showing %d of %d findings", n, n) {
		t.Errorf("shown = %q", got.Shown)
	}
	if got.Cards > 200 || got.Rows > 100 || !strings.HasPrefix(got.Pager, "1–25 of ") {
		t.Errorf("not paginated: %d cards, %d matrix rows, pager %q", got.Cards, got.Rows, got.Pager)
	}
	var next string
	p.eval(t, ctx, `document.querySelector('#findings .pager .next').click(); document.querySelector('#findings .pager span').textContent`, &next)
	if !strings.HasPrefix(next, "26–50 of ") {
		t.Errorf("next page: pager %q", next)
	}
	p.checkQuiet(t)

	q := open(t, ctx, b, path, false)
	var static struct {
		Rows int     `json:"rows"`
		Load float64 `json:"load"`
	}
	q.eval(t, ctx, `({rows: document.querySelectorAll('#static-findings tr.finding').length,
	  load: performance.getEntriesByType('navigation')[0].loadEventEnd})`, &static)
	t.Logf("%d findings without JavaScript: load event %.0f ms (all rows laid out)", n, static.Load)
	if static.Rows != n {
		t.Errorf("without JavaScript %d findings listed, want %d", static.Rows, n)
	}
	q.checkQuiet(t)
}

// manyFindings is a report of n findings in one VM with a backing file,
// three snapshots, the current state and unreferenced bytes.
func manyFindings(n int) *report.Report {
	const img = "/srv/images/big.qcow2"
	views := []report.View{
		{ID: "big.qcow2#backing:base.qcow2", Kind: "backing", Name: "base.qcow2"},
		{ID: "big.qcow2#snapshot:s1", Kind: "snapshot", Name: "s1"},
		{ID: "big.qcow2#snapshot:s2", Kind: "snapshot", Name: "s2"},
		{ID: "big.qcow2#snapshot:s3", Kind: "snapshot", Name: "s3"},
		{ID: "big.qcow2#current", Kind: "current", Name: "current"},
		{ID: "big.qcow2#unreferenced", Kind: "unreferenced", Name: "unreferenced"},
	}
	exposure := []string{"backing", "snapshot", "snapshot", "snapshot", "live", "unreferenced"}
	sev := []string{"critical", "high", "medium", "low"}
	r := &report.Report{SchemaVersion: report.SchemaVersion, Tool: report.Tool{Name: "imgaudit", Version: "test"}, Command: "scan", Complete: true, FailOn: "low",
		Targets: []report.Target{{Path: img, Format: "qcow2", Views: views, Errors: []string{}}}}
	tl := report.Timeline{VM: "big", Targets: []string{img}}
	for _, v := range views[:5] {
		tl.Points = append(tl.Points, report.TimelinePoint{View: v.ID, Target: img, Kind: v.Kind, Name: v.Name, Label: v.Name})
	}
	for i := range n {
		f := report.Finding{
			Rule: fmt.Sprintf("rule-%02d", i%40), Description: "a synthetic secret", Category: "token", Severity: sev[i%4],
			Fingerprint: sha([]byte(fmt.Sprint("secret", i))), Preview: fmt.Sprintf("tok_%04x…(40 chars)", i&0xffff),
		}
		for k := range 1 + i%3 {
			v := (i + k*2) % len(views)
			state := "allocated"
			if v == 5 || (i+k)%5 == 0 {
				state = "free"
			}
			f.Locations = append(f.Locations, report.Location{Target: img, View: views[v].ID, ViewKind: views[v].Kind,
				Offset: int64(i)*4096 + int64(k), Length: 40, Partition: "p1", Path: fmt.Sprintf("/home/user%d/.config/app/token-%d", i%50, i), State: state, Exposure: exposure[v]})
		}
		report.RecomputeExposure(&f)
		r.Findings = append(r.Findings, f)
	}
	report.Summarize(r)
	r.Timelines = []report.Timeline{tl}
	return r
}

// TestHTMLReportManyImages: a store of many images draws the first
// matrices, folds the others until they are opened, and counts the images
// without secrets instead of drawing them.
func TestHTMLReportManyImages(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const images, clean = 30, 12
	r := &report.Report{SchemaVersion: report.SchemaVersion, Tool: report.Tool{Name: "imgaudit", Version: "test"}, Command: "registry", Complete: true, FailOn: "low"}
	for i := range images {
		img := fmt.Sprintf("registry.example/app%02d:latest", i)
		var views []report.View
		for l := range 3 {
			views = append(views, report.View{ID: fmt.Sprintf("%s#layer:%d", img, l), Kind: "layer", Name: fmt.Sprintf("layer %d", l)})
		}
		r.Targets = append(r.Targets, report.Target{Path: img, Format: "oci", Views: views, Errors: []string{}})
		if i >= images-clean {
			continue
		}
		for k := range 2 {
			v := views[k]
			f := report.Finding{Rule: "generic-api-key", Category: "token", Severity: "high", Fingerprint: sha([]byte(fmt.Sprint(i, k))), Preview: "key_…(32 chars)",
				Locations: []report.Location{{Target: img, View: v.ID, ViewKind: v.Kind, Path: "/app/.env", State: "allocated", Exposure: "layer"}}}
			report.RecomputeExposure(&f)
			r.Findings = append(r.Findings, f)
		}
	}
	report.Summarize(r)
	b := launch(t, ctx)
	p := open(t, ctx, b, writeHTMLFile(t, r), true)
	var got struct {
		Drawn, Folded int
		Clean         string
		Opened        int
	}
	p.eval(t, ctx, `(async () => {
	  const drawn = document.querySelectorAll('#lifetime > .matrix-group').length;
	  const folds = document.querySelectorAll('#lifetime details.matrix-fold');
	  const clean = Array.from(document.querySelectorAll('#lifetime > p.dim')).pop().textContent;
	  folds[0].open = true;
	  await new Promise(done => folds[0].addEventListener('toggle', () => setTimeout(done, 0), {once: true}));
	  return {Drawn: drawn, Folded: folds.length, Clean: clean, Opened: folds[0].querySelectorAll('tr.secret-row').length};
	})()`, &got)
	if got.Drawn != 8 || got.Folded != images-clean-8 || got.Clean != fmt.Sprintf("%d VMs or images without secrets", clean) || got.Opened != 2 {
		t.Errorf("got %+v, want 8 drawn, %d folded, %d without secrets, 2 rows in an opened fold", got, images-clean-8, clean)
	}
	p.checkQuiet(t)
}
