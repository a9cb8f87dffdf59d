package scanner_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// Progress moves within a view (the detectors report each chunk), names
// the view, and its rate counts bytes actually read: a snapshot that
// shares its clusters with the current state moves the bar when it is
// done, but does not make the rate absurd.
func TestProgress(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	img := filepath.Join(dir, "web.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "256M")
	testutil.Run(t, "qemu-io", "-c", "write -q -P 0x61 0 96M", img)
	testutil.Run(t, "qemu-img", "snapshot", "-c", "golden", img)
	before := testutil.FileSnapshot(t, img)

	line := regexp.MustCompile(`^imgaudit scan: (\d+)%, ([0-9.]+ [KMGT]?i?B) of ([0-9.]+ [KMGT]?i?B) allocated(, ([0-9.]+) ([KMGT]?i?B)/s)?(, scanning (\S+))?$`)
	tests := []struct {
		name  string
		plain bool
	}{
		{"plain lines", true},
		{"terminal bar", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			engine := newEngine(t)
			sc := scanner.New(scanner.Options{Engine: engine, Progress: &buf,
				ProgressStyle: scanner.ProgressOptions{Plain: tc.plain, Every: time.Nanosecond}})
			if _, err := sc.Scan(context.Background(), []string{img}); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if !tc.plain {
				if !strings.Contains(out, "web.qcow2#current") || !strings.HasSuffix(out, "\r\x1b[2K") {
					t.Fatalf("bar output does not name the view or is not cleared: %q", out[max(0, len(out)-300):])
				}
				return
			}
			lastPct, inCurrent := -1, map[int]bool{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				m := line.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("progress line %q", l)
				}
				pct, _ := strconv.Atoi(m[1])
				if pct < lastPct {
					t.Errorf("progress went back: %q", l)
				}
				lastPct = pct
				if m[8] == "web.qcow2#current" {
					inCurrent[pct] = true
				}
				if m[5] != "" {
					rate, _ := strconv.ParseFloat(m[5], 64)
					if m[6] == "TiB" || m[6] == "PiB" || m[6] == "GiB" && rate > 64 {
						t.Errorf("impossible rate: %q", l)
					}
				}
			}
			if lastPct != 100 || len(inCurrent) < 3 {
				t.Errorf("last %d%%; %d distinct figures while scanning the current view, want >= 3:\n%s", lastPct, len(inCurrent), out)
			}
		})
	}
	if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
		t.Fatal("image changed")
	}
}
