package scanner_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestOpenedBeforeScanning: Options.Opened is called once the targets are
// open, before the detectors read a byte (the progress display has not
// begun), with every host file the scan reads: the target, its backing
// file and its external data file. An error from it ends the run there,
// with no report; without one the report's inputs are what it was given.
func TestOpenedBeforeScanning(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	creds, _ := awsCredentials(t)
	baseRaw := filepath.Join(dir, "base.raw")
	rawWith(t, baseRaw, creds)
	base, data, overlay := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "overlay.data"), filepath.Join(dir, "overlay.qcow2")
	testutil.Run(t, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", baseRaw, base)
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "-o", "data_file="+data, overlay, "1M")
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x61 0 64k", overlay)
	refusal := errors.New("refusing to write: it is a file this run reads")
	tests := []struct {
		name string
		err  error // what Opened returns
	}{
		{"accepted", nil},
		{"refused", refusal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var progress strings.Builder
			var got []string
			calls := 0
			opts := scanner.Options{Engine: newEngine(t), Progress: &progress, ProgressStyle: scanner.ProgressOptions{Plain: true},
				Opened: func(inputs []string) error {
					calls++
					got = slices.Clone(inputs)
					if progress.Len() != 0 {
						t.Errorf("Opened was called after the scan began: progress %q", progress.String())
					}
					return tc.err
				}}
			rep, err := scanner.New(opts).Scan(context.Background(), []string{overlay})
			if calls != 1 {
				t.Fatalf("Opened called %d times, want once", calls)
			}
			for _, want := range []string{overlay, base, data} {
				if !slices.Contains(got, want) {
					t.Errorf("Opened got %q, which lacks %s", got, want)
				}
			}
			if tc.err != nil {
				if rep != nil || !errors.Is(err, tc.err) || progress.Len() != 0 {
					t.Errorf("Scan = %v, %v, progress %q; want no report, Opened's error and no scan", rep != nil, err, progress.String())
				}
				return
			}
			if err != nil || rep == nil || !slices.Equal(rep.Inputs, got) {
				t.Fatalf("Scan = %v, %v; want a report whose inputs are %q", rep, err, got)
			}
		})
	}
}
