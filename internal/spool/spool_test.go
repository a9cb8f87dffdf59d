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

// TestSparse checks that zero blocks become holes: they reach no disk, and
// the file still reads back as the stream.
func TestSparse(t *testing.T) {
	tests := []struct {
		name        string
		in          []byte
		wantWritten int64
	}{
		{"all zeros", make([]byte, 4*holeBlock), 0},
		{"data between zeros", append(append(make([]byte, holeBlock), bytes.Repeat([]byte("x"), holeBlock)...), make([]byte, 2*holeBlock+7)...), holeBlock},
		{"trailing partial data block", append(make([]byte, holeBlock), 'y'), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, st, err := Sparse(context.Background(), t.TempDir(), "x-*", bytes.NewReader(tt.in), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if st.Size != int64(len(tt.in)) || st.Written != tt.wantWritten {
				t.Fatalf("size %d written %d, want %d and %d", st.Size, st.Written, len(tt.in), tt.wantWritten)
			}
			got, err := io.ReadAll(io.NewSectionReader(f, 0, st.Size+1))
			if err != nil || !bytes.Equal(got, tt.in) {
				t.Fatalf("read back %d bytes (%v), not the stream", len(got), err)
			}
		})
	}
}
