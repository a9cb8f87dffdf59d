package browser

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestBrowserLoadsEvaluatesAndRecords drives a real Chromium through a
// local page: the load event, evaluation, the request log (one file
// request, and the image the page asks for) and a screenshot.
func TestBrowserLoadsEvaluatesAndRecords(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	page := filepath.Join(dir, "p.html")
	img := "file://" + filepath.Join(dir, "missing.png")
	html := `<!doctype html><body style="background:#123456"><h1 id=h>hello</h1><img src="` + img + `"><script>document.getElementById('h').textContent += ' world'</script>`
	if err := os.WriteFile(page, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Launch(ctx, Options{Width: 400, Height: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop, err := p.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, "file://"+page); err != nil {
		t.Fatal(err)
	}
	var text string
	if err := p.Eval(ctx, `document.getElementById('h').textContent`, &text); err != nil {
		t.Fatal(err)
	}
	if text != "hello world" {
		t.Errorf("text = %q, want the script's change", text)
	}
	urls := stop()
	if len(urls) != 2 || urls[0] != "file://"+page || urls[1] != img {
		t.Errorf("requests = %q, want the page and its image", urls)
	}
	if err := p.Eval(ctx, `nosuchfunction()`, nil); err == nil {
		t.Error("a thrown exception is no error")
	}
	shot, err := p.Screenshot(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	im, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if w := im.Bounds().Dx(); w != 400 {
		t.Errorf("screenshot width %d, want the window's 400", w)
	}
	r, g, bl, _ := im.At(390, 290).RGBA()
	if r>>8 != 0x12 || g>>8 != 0x34 || bl>>8 != 0x56 {
		t.Errorf("background pixel = %02x%02x%02x, want 123456", r>>8, g>>8, bl>>8)
	}
}

// TestScriptsDisabled: with scripts off, the page's script does not run.
func TestScriptsDisabled(t *testing.T) {
	requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	page := filepath.Join(t.TempDir(), "p.html")
	if err := os.WriteFile(page, []byte(`<!doctype html><p id=p>static</p><noscript><p id=n>no script</p></noscript><script>document.getElementById('p').textContent='scripted'</script>`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Launch(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DisableScripts(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, "file://"+page); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := p.Eval(ctx, `[document.getElementById('p').textContent, (document.getElementById('n')||{}).textContent||'']`, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "static" || got[1] != "no script" {
		t.Errorf("got %q, want the static text and the noscript element", got)
	}
}

func requireChromium(t *testing.T) {
	t.Helper()
	if os.Getenv("IMGAUDIT_CHROMIUM") == "" {
		testutil.RequireTool(t, "chromium")
	}
}
