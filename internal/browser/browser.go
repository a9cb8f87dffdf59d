// Package browser drives a headless Chromium over the DevTools protocol, for
// the tests (and the docs screenshot) of the HTML report.
//
// It talks to Chromium over --remote-debugging-pipe: the protocol's JSON
// messages, each ended by a NUL byte, on two pipes (Chromium reads file
// descriptor 3 and writes 4). That needs neither a network port nor a
// websocket client, so it adds no module to the project: a few commands
// (navigate, evaluate, screenshot) and one event stream (network requests)
// are all the tests use.
package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Flags are the Chromium flags every launch uses. Besides headless mode,
// they turn off whatever would reach out to the network by itself (the
// tests assert that a page makes no request), and the sandbox, which needs
// user namespaces that containers often lack.
var Flags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--disable-extensions",
	"--disable-default-apps",
	"--disable-domain-reliability",
	"--disable-breakpad",
	"--metrics-recording-only",
	"--mute-audio",
	"--hide-scrollbars",
	"--remote-debugging-pipe",
}

// Command returns the Chromium executable: $IMGAUDIT_CHROMIUM, else
// chromium (Debian's package), chromium-browser or google-chrome on PATH.
func Command() (string, error) {
	if c := os.Getenv("IMGAUDIT_CHROMIUM"); c != "" {
		return c, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("browser: no chromium on PATH (apt-get install chromium)")
}

// Options tune a launch.
type Options struct {
	// Width and Height are the viewport of every page in CSS pixels
	// (default 1280x900).
	Width, Height int
}

// Browser is one running headless Chromium with a fresh, empty profile.
type Browser struct {
	cmd     *exec.Cmd
	toChr   *os.File
	profile string
	stderr  *lockedBuffer
	width   int
	height  int

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan message
	subs    map[int64]func(message)
	nextSub int64
	readErr error
	done    chan struct{}
}

// message is one protocol message: a reply (ID set) or an event (Method set).
type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// Launch starts Chromium with Flags, a new empty --user-data-dir (removed
// by Close) and about:blank.
func Launch(ctx context.Context, opts Options) (*Browser, error) {
	exe, err := Command()
	if err != nil {
		return nil, err
	}
	if opts.Width == 0 {
		opts.Width, opts.Height = 1280, 900
	}
	profile, err := os.MkdirTemp("", "imgaudit-chromium-")
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	// Chromium reads commands from fd 3 and writes replies to fd 4.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		os.RemoveAll(profile)
		return nil, fmt.Errorf("browser: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		cmdR.Close()
		cmdW.Close()
		os.RemoveAll(profile)
		return nil, fmt.Errorf("browser: %w", err)
	}
	args := append([]string{}, Flags...)
	args = append(args,
		"--user-data-dir="+profile,
		fmt.Sprintf("--window-size=%d,%d", opts.Width, opts.Height),
		"about:blank")
	cmd := exec.Command(exe, args...)
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	cmd.Env = append(os.Environ(), "HOME="+profile)
	if err := cmd.Start(); err != nil {
		cmdR.Close()
		cmdW.Close()
		outR.Close()
		outW.Close()
		os.RemoveAll(profile)
		return nil, fmt.Errorf("browser: starting %s: %w", exe, err)
	}
	// The child holds its own copies of these ends.
	cmdR.Close()
	outW.Close()
	b := &Browser{
		cmd: cmd, toChr: cmdW, profile: profile, stderr: stderr, width: opts.Width, height: opts.Height,
		pending: map[int64]chan message{}, subs: map[int64]func(message){}, done: make(chan struct{}),
	}
	go b.read(outR)
	// The first command proves the pipe works.
	var v struct {
		Product string `json:"product"`
	}
	if err := b.Call(ctx, "", "Browser.getVersion", nil, &v); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// read delivers replies to their callers and events to subscribers until
// Chromium closes its end.
func (b *Browser) read(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var raw []byte
		raw, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m message
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.pending[m.ID]; ok {
				delete(b.pending, m.ID)
				ch <- m
			}
			b.mu.Unlock()
			continue
		}
		subs := make([]func(message), 0, len(b.subs))
		for _, f := range b.subs {
			subs = append(subs, f)
		}
		b.mu.Unlock()
		for _, f := range subs {
			f(m)
		}
	}
	b.mu.Lock()
	b.readErr = fmt.Errorf("browser: connection closed: %w; chromium said: %s", err, b.stderr.tail())
	for id, ch := range b.pending {
		delete(b.pending, id)
		close(ch)
	}
	b.mu.Unlock()
	close(b.done)
}

// Call sends one command (to the browser when session is "", else to that
// page session) and decodes its result into result (when not nil).
func (b *Browser) Call(ctx context.Context, session, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	p, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("browser: %s: %w", method, err)
	}
	ch := make(chan message, 1)
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return b.readErr
	}
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: p})
	if err != nil {
		return fmt.Errorf("browser: %s: %w", method, err)
	}
	if _, err := b.toChr.Write(append(msg, 0)); err != nil {
		return fmt.Errorf("browser: %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return fmt.Errorf("browser: %s: %w", method, b.readErr)
		}
		if m.Error != nil {
			return fmt.Errorf("browser: %s: %s (code %d)", method, m.Error.Message, m.Error.Code)
		}
		if result != nil && len(m.Result) > 0 {
			if err := json.Unmarshal(m.Result, result); err != nil {
				return fmt.Errorf("browser: %s: decoding result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return fmt.Errorf("browser: %s: %w", method, ctx.Err())
	}
}

// subscribe calls f for every event until the returned function is called.
// f runs on the reading goroutine: it must not call the browser.
func (b *Browser) subscribe(f func(message)) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nextSub++
	id := b.nextSub
	b.subs[id] = f
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}
}

// Close ends Chromium (politely, then by force) and removes its profile.
func (b *Browser) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.Call(ctx, "", "Browser.close", nil, nil)
	b.toChr.Close()
	exited := make(chan error, 1)
	go func() { exited <- b.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-exited
	}
	return os.RemoveAll(b.profile)
}

// Page is one tab, attached in flat session mode.
type Page struct {
	b       *Browser
	session string
	target  string
}

// NewPage opens a blank tab.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	var created struct {
		TargetID string `json:"targetId"`
	}
	if err := b.Call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.Call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: attached.SessionID, target: created.TargetID}
	if err := p.Call(ctx, "Page.enable", nil, nil); err != nil {
		return nil, err
	}
	// A new tab does not take --window-size: set its viewport.
	if err := p.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": b.width, "height": b.height, "deviceScaleFactor": 1, "mobile": false,
	}, nil); err != nil {
		return nil, err
	}
	return p, nil
}

// Call sends a command to the page's session.
func (p *Page) Call(ctx context.Context, method string, params, result any) error {
	return p.b.Call(ctx, p.session, method, params, result)
}

// Record collects the parameters of every event of the page named method
// from now on (enable its protocol domain first). The returned function
// stops recording and returns them.
func (p *Page) Record(method string) (stop func() []json.RawMessage) {
	var mu sync.Mutex
	var got []json.RawMessage
	cancel := p.b.subscribe(func(m message) {
		if m.SessionID == p.session && m.Method == method {
			mu.Lock()
			got = append(got, m.Params)
			mu.Unlock()
		}
	})
	return func() []json.RawMessage {
		cancel()
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// Requests records the URL of every request the page sends from now on,
// including those served from memory or refused. The returned function
// stops recording and returns the URLs.
func (p *Page) Requests(ctx context.Context) (stop func() []string, err error) {
	rec := p.Record("Network.requestWillBeSent")
	if err := p.Call(ctx, "Network.enable", nil, nil); err != nil {
		rec()
		return nil, err
	}
	return func() []string {
		var urls []string
		for _, raw := range rec() {
			var ev struct {
				Request struct {
					URL string `json:"url"`
				} `json:"request"`
			}
			if json.Unmarshal(raw, &ev) == nil {
				urls = append(urls, ev.Request.URL)
			}
		}
		return urls
	}, nil
}

// Errors records the page's uncaught exceptions and console errors from
// now on; the returned function stops recording and returns them.
func (p *Page) Errors(ctx context.Context) (stop func() []string, err error) {
	exc := p.Record("Runtime.exceptionThrown")
	cons := p.Record("Runtime.consoleAPICalled")
	logs := p.Record("Log.entryAdded")
	for _, domain := range []string{"Runtime.enable", "Log.enable"} {
		if err := p.Call(ctx, domain, nil, nil); err != nil {
			exc()
			cons()
			logs()
			return nil, err
		}
	}
	return func() []string {
		var out []string
		for _, raw := range exc() {
			var ev struct {
				ExceptionDetails struct {
					Text      string `json:"text"`
					Exception struct {
						Description string `json:"description"`
					} `json:"exception"`
				} `json:"exceptionDetails"`
			}
			if json.Unmarshal(raw, &ev) == nil {
				out = append(out, "exception: "+ev.ExceptionDetails.Text+" "+ev.ExceptionDetails.Exception.Description)
			}
		}
		for _, raw := range cons() {
			var ev struct {
				Type string            `json:"type"`
				Args []json.RawMessage `json:"args"`
			}
			if json.Unmarshal(raw, &ev) == nil && (ev.Type == "error" || ev.Type == "assert") {
				parts := make([]string, len(ev.Args))
				for i, a := range ev.Args {
					parts[i] = string(a)
				}
				out = append(out, "console."+ev.Type+": "+strings.Join(parts, " "))
			}
		}
		for _, raw := range logs() {
			var ev struct {
				Entry struct {
					Level  string `json:"level"`
					Source string `json:"source"`
					Text   string `json:"text"`
					URL    string `json:"url"`
				} `json:"entry"`
			}
			if json.Unmarshal(raw, &ev) == nil && ev.Entry.Level == "error" {
				out = append(out, "log ("+ev.Entry.Source+"): "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
		return out
	}, nil
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(ctx context.Context, url string) error {
	loaded := make(chan struct{}, 1)
	cancel := p.b.subscribe(func(m message) {
		if m.SessionID == p.session && m.Method == "Page.loadEventFired" {
			select {
			case loaded <- struct{}{}:
			default:
			}
		}
	})
	defer cancel()
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.Call(ctx, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return fmt.Errorf("browser: navigating to %s: %s", url, nav.ErrorText)
	}
	select {
	case <-loaded:
		return nil
	case <-p.b.done:
		return errors.New("browser: chromium exited while loading " + url)
	case <-ctx.Done():
		return fmt.Errorf("browser: waiting for %s to load: %w", url, ctx.Err())
	}
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value into result (when not nil). A thrown exception is
// an error.
func (p *Page) Eval(ctx context.Context, expr string, result any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("browser: evaluating %q: %s %s", abbrev(expr), e.Text, e.Exception.Description)
	}
	if result == nil || len(r.Result.Value) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result.Value, result); err != nil {
		return fmt.Errorf("browser: evaluating %q: %w", abbrev(expr), err)
	}
	return nil
}

// WaitFor evaluates expr every 50 ms until it is true.
func (p *Page) WaitFor(ctx context.Context, expr string) error {
	for {
		var ok bool
		if err := p.Eval(ctx, "!!("+expr+")", &ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("browser: waiting for %q: %w", abbrev(expr), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DisableScripts turns JavaScript off for the documents the page loads
// from now on (they then render <noscript> content).
func (p *Page) DisableScripts(ctx context.Context) error {
	return p.Call(ctx, "Emulation.setScriptExecutionDisabled", map[string]any{"value": true}, nil)
}

// Screenshot returns a PNG of the page: the viewport, or the whole page
// when full is set.
func (p *Page) Screenshot(ctx context.Context, full bool) ([]byte, error) {
	params := map[string]any{"format": "png"}
	if full {
		params["captureBeyondViewport"] = true
		var m struct {
			CSSContentSize struct {
				Width  float64 `json:"width"`
				Height float64 `json:"height"`
			} `json:"cssContentSize"`
		}
		if err := p.Call(ctx, "Page.getLayoutMetrics", nil, &m); err != nil {
			return nil, err
		}
		params["clip"] = map[string]any{"x": 0, "y": 0, "width": m.CSSContentSize.Width, "height": m.CSSContentSize.Height, "scale": 1}
	}
	var r struct {
		Data string `json:"data"`
	}
	if err := p.Call(ctx, "Page.captureScreenshot", params, &r); err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		return nil, fmt.Errorf("browser: screenshot: %w", err)
	}
	return b, nil
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// lockedBuffer collects Chromium's output for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(l.buf.String())
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}
