package scanner_test

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestRandomGeneratorStates: a Python process that drew random bytes
// through OpenSSL (ssl.RAND_bytes), its core written by gdb's gcore,
// holds the AES-256 keys of OpenSSL's CTR-DRBGs, each schedule twice 464
// bytes apart: those findings say likely=openssl-ctr-drbg and keep their
// severity. The key of `openssl enc` in its own process's core, kept
// once, says nothing of the kind.
func TestRandomGeneratorStates(t *testing.T) {
	testutil.RequireTool(t, "python3", "gcore")
	dir := t.TempDir()
	cmd := exec.Command("python3", "-c", "import ssl, sys; ssl.RAND_bytes(32); print('ready', flush=True); sys.stdin.read()")
	core := gcoreWhenReady(t, filepath.Join(dir, "py"), cmd, func(_ io.Writer, out io.Reader) error {
		ready := make([]byte, 6)
		if _, err := io.ReadFull(out, ready); err != nil || string(ready) != "ready\n" {
			return fmt.Errorf("printed %q: %v", ready, err)
		}
		return nil
	})
	rep := scanFile(t, scanner.Options{}, core)
	labelled := 0
	for _, f := range rep.Findings {
		if f.Rule != "aes-key-schedule" {
			continue
		}
		var offs []string
		for _, l := range f.Locations {
			offs = append(offs, fmt.Sprint(l.Offset))
		}
		// One copy: a key; two 464 bytes apart: a DRBG's (more copies,
		// in processes forked alike, are not judged here).
		if n := len(f.Locations); n <= 2 {
			want := n == 2 && f.Locations[1].Offset-f.Locations[0].Offset == 464
			if got := f.Metadata[report.MetadataLikely] == report.LikelyDRBG; got != want {
				t.Errorf("key at %s: likely %q", strings.Join(offs, " "), f.Metadata[report.MetadataLikely])
			}
		}
		if f.Metadata[report.MetadataLikely] != "" {
			labelled++
			if f.Severity != report.SeverityHigh {
				t.Errorf("a random generator's key is %s, want its rule's high", f.Severity)
			}
		}
	}
	if labelled == 0 {
		t.Errorf("no key labelled a random generator's state among %d findings", len(rep.Findings))
	}

	core, key := opensslCore(t, dir)
	var got []string
	for _, f := range scanFile(t, scanner.Options{}, core).Findings {
		if f.Rule == "aes-key-schedule" && strings.Contains(f.Preview, "AES-128") {
			got = append(got, f.Metadata[report.MetadataLikely])
		}
	}
	if len(got) != 1 || got[0] != "" {
		t.Errorf("openssl enc's own key (%x): likely %q", key[:2], got)
	}
}
