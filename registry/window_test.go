package registry

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/report"
)

// TestLargeFileWindowsMatchWholeBuffer scans a file larger than the
// detector window, with secrets straddling every window boundary, and
// checks that the windowed scan reports exactly what the engine finds in
// the whole file at once, at the same offsets.
func TestLargeFileWindowsMatchWholeBuffer(t *testing.T) {
	s := newScanner(t, Options{})
	margin := s.opts.Engine.Margin()
	size := 2*scanWindow + 3*margin + 12345
	data := bytes.Repeat([]byte("a line of ordinary configuration text\n"), size/38+1)[:size]
	var offsets []int
	// Around where each window's owned range ends and the next begins.
	for _, w := range []int{scanWindow + 2*margin - margin, 2*scanWindow + 2*margin - margin - margin} {
		for _, d := range []int{-60, -30, -1, 0, 1, 25} {
			offsets = append(offsets, w+d)
		}
	}
	offsets = append(offsets, 5, size-50)
	slices.Sort(offsets)
	last := -100
	for _, off := range offsets {
		if off < last+50 { // keep tokens apart
			off = last + 50
		}
		tok := fmt.Sprintf("\n_authToken=%s\n", npmToken(t))
		copy(data[off:], tok)
		last = off + len(tok)
	}
	want := map[string]bool{}
	for _, m := range s.opts.Engine.FindAll(data, s.scanOpts()) {
		want[fmt.Sprintf("%s@%d", m.Fingerprint, m.Start)] = true
	}
	if len(want) < len(offsets) {
		t.Fatalf("reference found %d matches for %d tokens", len(want), len(offsets))
	}
	img := imageOf(t, layer(t, "", entry{name: "var/big.log", body: data}))
	rep := report.Merge(s.scanImage(context.Background(), testImage(t, "big", img)))
	got := map[string]bool{}
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			got[fmt.Sprintf("%s@%d", f.Fingerprint, l.Offset)] = true
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("windowed scan missed %s", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("windowed scan reported %s, which the whole-buffer scan does not", k)
		}
	}
	if v := rep.Targets[0].Views[0]; v.ScannedBytes != int64(size) {
		t.Errorf("scanned %d bytes, want %d (each byte once)", v.ScannedBytes, size)
	}
}
