package scanner

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/imgaudit/imgaudit/report"
)

// progress shows how far a scan is: bytes accounted for of the bytes
// allocated in all views, moving within a view as the detectors finish
// each chunk, with the current view and the rate at which bytes are
// actually read (bytes shared with an earlier view count toward the bar
// when their view is done, but not toward the rate, which is why the rate
// can no longer claim 35 TB/s). On a terminal it is a bar, cleared when
// the scan ends or is interrupted; otherwise plain lines, one every
// interval.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	bar      *progressbar.ProgressBar // nil: plain lines
	every    time.Duration
	total    int64 // allocated bytes of all views
	done     int64 // accounted for: scanned, or shared with a scanned view
	read     int64 // actually scanned
	view     string
	viewDone int64 // bytes of the current view accounted for so far
	start    time.Time
	last     time.Time // last plain line or bar update
	drawn    bool
}

// ProgressOptions say how Options.Progress is written.
type ProgressOptions struct {
	// Plain writes a line every Every instead of a terminal bar.
	Plain bool
	// Every is the interval of plain lines; 0 means 5 seconds.
	Every time.Duration
}

func newProgress(w io.Writer, total int64, o ProgressOptions) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, total: total, every: o.Every, start: time.Now()}
	if p.every <= 0 {
		p.every = 5 * time.Second
	}
	if !o.Plain {
		p.every = 200 * time.Millisecond
		p.bar = progressbar.NewOptions64(max(total, 1),
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionUseANSICodes(true), // clearing erases the whole line, a ^C echo included
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// beginView starts the view with this ID.
func (p *progress) beginView(id string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.view, p.viewDone = id, 0
	p.show(true)
}

// scanned counts n bytes read by the detectors in the current view.
func (p *progress) scanned(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.read += n
	p.done += n
	p.viewDone += n
	p.show(false)
}

// endView accounts for the rest of a view of alloc bytes: the bytes it
// shares with views already scanned, or could not read.
func (p *progress) endView(alloc int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if rest := alloc - p.viewDone; rest > 0 {
		p.done += rest
	}
	p.viewDone = alloc
}

// close clears the bar (on a terminal, the whole line) or prints the last
// plain line.
func (p *progress) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Exit()
		if p.drawn {
			io.WriteString(p.w, "\r\x1b[2K")
		}
		return
	}
	p.view = ""
	p.show(true)
}

func (p *progress) show(force bool) {
	now := time.Now()
	if !force && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	done := min(p.done, p.total)
	rate := ""
	if s := now.Sub(p.start).Seconds(); s >= 0.5 {
		rate = ", " + report.HumanBytes(int64(float64(p.read)/s)) + "/s"
	}
	if p.bar != nil {
		// Set64 may draw with the old text; Describe then draws the line
		// as it is now.
		p.bar.Set64(done)
		p.bar.Describe(fmt.Sprintf("%s of %s%s  %s", report.HumanBytes(done), report.HumanBytes(p.total), rate, shorten(p.view, 40)))
		p.drawn = true
		return
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	line := fmt.Sprintf("imgaudit scan: %.0f%%, %s of %s allocated%s", pct, report.HumanBytes(done), report.HumanBytes(p.total), rate)
	if p.view != "" {
		line += ", scanning " + p.view
	}
	fmt.Fprintln(p.w, line)
}

// shorten keeps the end of a long view ID, which names the view.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
