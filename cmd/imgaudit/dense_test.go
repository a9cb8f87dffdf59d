package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/benchdata"
	"github.com/imgaudit/imgaudit/internal/gctune"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// maxScanRSS is the bound the README's Limits section documents for a
// scan's resident memory, whatever the input.
const maxScanRSS = 512 << 20

// denseWorkers is the detector goroutines of the dense-dump scans: those
// of a 16-core machine, whatever this one has, since each holds its chunk.
const denseWorkers = "16"

const (
	denseChildEnv = "IMGAUDIT_DENSE_CHILD" // the target the child scans
	denseOutEnv   = "IMGAUDIT_DENSE_OUT"   // its JSON report
)

// TestDenseDumpMemoryBound scans 32 MiB of nothing but distinct secrets
// (342,000 AWS key IDs and 28,500 tokens of each of twelve other rules,
// internal/benchdata's Dense) as a memory dump and as a raw image, each
// with `imgaudit scan` in a child process, run as main runs it (gctune.Tune)
// with 16 detector workers, and checks that the findings stop at the
// limits, that the report says so, and that the child's peak RSS, which
// it reads itself, stays under maxScanRSS. Before the bound, the scan of
// the dump took 0.9 to 1.07 GB with 16 workers.
func TestDenseDumpMemoryBound(t *testing.T) {
	if os.Getenv(denseChildEnv) != "" {
		t.Skip("child process")
	}
	limits := scanner.DefaultLimits()
	for _, c := range []struct {
		name  string
		write func(path string, size int64, src benchdata.Filler) error
	}{
		{"elf-core", benchdata.WriteELF},
		{"raw", benchdata.WriteRaw},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "dense."+c.name)
			if err := c.write(target, 32<<20, benchdata.NewDense(22)); err != nil {
				t.Fatal(err)
			}
			before := fileSum(t, target)
			out := filepath.Join(dir, "report.json")
			cmd := exec.Command(os.Args[0], "-test.run=^TestDenseDumpChild$", "-test.v")
			cmd.Env = append(os.Environ(), denseChildEnv+"="+target, denseOutEnv+"="+out)
			start := time.Now()
			b, err := cmd.CombinedOutput()
			wall := time.Since(start)
			if err != nil {
				t.Fatalf("child: %v\n%s", err, b)
			}
			rssText, err := os.ReadFile(out + ".rss")
			if err != nil {
				t.Fatalf("the child wrote no peak RSS: %v\n%s", err, b)
			}
			rss, _ := strconv.ParseInt(strings.TrimSpace(string(rssText)), 10, 64)
			cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			t.Logf("%s: %.1f s wall, %.1f s CPU, peak RSS %d MiB (%s workers)", c.name, wall.Seconds(), cpu.Seconds(), rss>>20, denseWorkers)
			if rss <= 0 || rss > maxScanRSS {
				t.Errorf("peak RSS %d MiB, want under %d MiB", rss>>20, maxScanRSS>>20)
			}
			r := readReportFile(t, out)
			perRule := map[string]int{}
			for _, f := range r.Findings {
				perRule[f.Rule]++
			}
			for rule, n := range perRule {
				if n > limits.FindingsPerRulePerView {
					t.Errorf("%s: %d findings, over the limit of %d", rule, n, limits.FindingsPerRulePerView)
				}
			}
			// Thirteen rules with 28,500 or more distinct secrets each:
			// the scan's own limit is what stops them.
			if len(r.Findings) != limits.FindingsPerScan || len(perRule) < 10 {
				t.Errorf("%d findings of %d rules, want %d (the scan's limit) of 10 or more", len(r.Findings), len(perRule), limits.FindingsPerScan)
			}
			tr := r.Summary.Truncated
			if tr == nil || tr.Limits != limits || tr.MatchesDropped+tr.HitsNotValidated == 0 || len(tr.Views) != 1 {
				t.Errorf("summary.truncated = %+v, want the limits %+v and what was cut in one view", tr, limits)
			}
			if v := r.Targets[0].Views[0]; v.Truncated == nil {
				t.Errorf("view %s does not say what was cut", v.ID)
			}
			if fileSum(t, target) != before {
				t.Errorf("%s changed during the scan", target)
			}
		})
	}
}

// TestDenseDumpChild is the child side of TestDenseDumpMemoryBound: it
// runs `imgaudit scan` in this process as main does, then writes the
// process's peak RSS next to the report. It does nothing unless run as a
// child.
func TestDenseDumpChild(t *testing.T) {
	target, out := os.Getenv(denseChildEnv), os.Getenv(denseOutEnv)
	if target == "" {
		t.Skip("run by TestDenseDumpMemoryBound")
	}
	gctune.Tune()
	var stderr strings.Builder
	code := run(context.Background(), []string{"scan", "--no-progress", "--workers", denseWorkers, "--format", "json", "--fail-on", "none", "-o", out, target},
		os.Stdout, &stderr)
	if code != exitOK {
		t.Fatalf("imgaudit scan: exit %d\n%s", code, stderr.String())
	}
	rss, err := testutil.PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".rss", []byte(fmt.Sprint(rss)), 0o644); err != nil {
		t.Fatal(err)
	}
}
