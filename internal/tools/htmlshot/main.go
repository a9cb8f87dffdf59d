// Command htmlshot makes the screenshot of the HTML report in docs/: it
// scans the demo image, writes the HTML report and photographs its top
// (summary, filters, lifetime matrix) in headless Chromium.
//
//	go generate ./report   (runs: go run ../internal/tools/htmlshot -o ../docs/html-report.png -C .. testdata/demo/web01.qcow2)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/browser"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func main() {
	out := flag.String("o", "html-report.png", "write the PNG to `FILE`")
	width := flag.Int("width", 1280, "viewport width in CSS pixels")
	height := flag.Int("height", 1000, "viewport height in CSS pixels")
	chdir := flag.String("C", "", "change to `DIR` first (image paths, as the report shows them, are relative to it)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: htmlshot [-o FILE] IMAGE...")
		os.Exit(2)
	}
	if o, err := filepath.Abs(*out); err == nil {
		*out = o
	}
	if *chdir != "" {
		if err := os.Chdir(*chdir); err != nil {
			fmt.Fprintln(os.Stderr, "htmlshot:", err)
			os.Exit(1)
		}
	}
	if err := run(*out, *width, *height, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "htmlshot:", err)
		os.Exit(1)
	}
}

func run(out string, width, height int, images []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	engine, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		return err
	}
	rep, err := scanner.New(scanner.Options{Engine: engine, FailOn: report.SeverityLow, Version: "demo"}).Scan(ctx, images)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "htmlshot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		return err
	}
	if err := report.WriteHTML(f, rep); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	b, err := browser.Launch(ctx, browser.Options{Width: width, Height: height})
	if err != nil {
		return err
	}
	defer b.Close()
	p, err := b.NewPage(ctx)
	if err != nil {
		return err
	}
	if err := p.Navigate(ctx, "file://"+page); err != nil {
		return err
	}
	if err := p.WaitFor(ctx, `document.documentElement.hasAttribute('data-rendered')`); err != nil {
		return err
	}
	// Open one secret's row, to show what a row holds.
	if err := p.Eval(ctx, `(() => { const td = document.querySelector('#lifetime tr.secret-row td.secret'); if (td) td.click(); return true; })()`, nil); err != nil {
		return err
	}
	png, err := p.Screenshot(ctx, false)
	if err != nil {
		return err
	}
	return os.WriteFile(out, png, 0o644)
}
