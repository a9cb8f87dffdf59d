package scanner_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/scanner"
)

// Ctrl-C: a cancelled scan returns a partial report marked incomplete,
// together with the context's error.
func TestCancelledScanIsMarkedIncomplete(t *testing.T) {
	img := filepath.Join(repoRoot(t), "testdata/demo/web01.qcow2")
	tests := []struct {
		name   string
		cancel func(context.CancelFunc) scanner.Options
	}{
		{"before start", func(c context.CancelFunc) scanner.Options { c(); return scanner.Options{} }},
		{"during scan", func(c context.CancelFunc) scanner.Options {
			return scanner.Options{Progress: cancelWriter(c)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := tt.cancel(cancel)
			opts.Engine = newEngine(t)
			rep, err := scanner.New(opts).Scan(ctx, []string{img})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if rep == nil || rep.Complete || rep.IncompleteReason == "" {
				t.Fatalf("report = %+v, want incomplete with a reason", rep)
			}
		})
	}
}

// cancelWriter cancels the scan the first time the progress bar draws.
type cancelWriter context.CancelFunc

func (c cancelWriter) Write(p []byte) (int, error) {
	c()
	return len(p), nil
}
