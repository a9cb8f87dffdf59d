package spool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestFile(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		in      string
		limit   int64
		wantN   int64
		wantErr error
	}{
		{"fits", context.Background(), "hello world", 11, 11, nil},
		{"over the limit", context.Background(), "hello world", 10, 11, ErrLimit},
		{"cancelled", cancelled, "hello", 10, 0, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f, n, err := File(tt.ctx, dir, "x-*", strings.NewReader(tt.in), tt.limit)
			if f == nil {
				t.Fatal("no file")
			}
			defer f.Close()
			if !errors.Is(err, tt.wantErr) || n != tt.wantN {
				t.Fatalf("n=%d err=%v, want %d %v", n, err, tt.wantN, tt.wantErr)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("spool file left in %s: %v", dir, ents)
			}
			if err == nil {
				got, _ := io.ReadAll(io.NewSectionReader(f, 0, n))
				if !bytes.Equal(got, []byte(tt.in)) {
					t.Fatalf("spooled %q", got)
				}
			}
		})
	}
}
