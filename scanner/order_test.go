package scanner_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestFindingOrderIsStable: findings of one severity and rule come in
// fingerprint order, whatever order the workers found them in, so that two
// scans of one image write the same report.
func TestFindingOrderIsStable(t *testing.T) {
	// 40 AWS key IDs (one rule, one severity), one per 64 KiB, over four
	// 1 MiB chunks that two workers scan in no fixed order.
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	img := make([]byte, 4<<20)
	for i := range 40 {
		id := []byte("AKIA")
		for range 16 {
			id = append(id, alphabet[rng.IntN(len(alphabet))])
		}
		copy(img[i*(64<<10):], fmt.Sprintf("\naws_access_key_id = %s\n", id))
	}
	path := filepath.Join(t.TempDir(), "keys.raw")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	var first []string
	for run := range 3 {
		e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{Workers: 2, ChunkSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := scanner.New(scanner.Options{Engine: e}).Scan(context.Background(), []string{path})
		if err != nil {
			t.Fatal(err)
		}
		var fps []string
		var prev *report.Finding
		for i := range rep.Findings {
			f := &rep.Findings[i]
			if f.Rule == "aws-access-key-id" {
				fps = append(fps, f.Fingerprint)
			}
			if prev != nil && prev.Severity == f.Severity && prev.OutsideGuestControl == f.OutsideGuestControl && prev.Rule == f.Rule && prev.Fingerprint >= f.Fingerprint {
				t.Fatalf("run %d: %s %s before %s", run, f.Rule, prev.Fingerprint, f.Fingerprint)
			}
			prev = f
		}
		if len(fps) != 40 {
			t.Fatalf("run %d: %d aws-access-key-id findings, want 40", run, len(fps))
		}
		if first == nil {
			first = fps
		} else if fmt.Sprint(fps) != fmt.Sprint(first) {
			t.Fatalf("run %d: order differs from run 0", run)
		}
	}
}
