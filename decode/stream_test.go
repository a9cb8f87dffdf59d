package decode

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestNewStreamReader: each compressed stream the tools write decodes to
// its input, concatenated members and streams included; an xz -9
// dictionary (64 MiB) over the memory cap is an error, not an
// allocation; an archive or a cancelled context is refused.
func TestNewStreamReader(t *testing.T) {
	testutil.RequireTool(t, "gzip", "xz", "zstd", "bzip2", "lz4")
	dir := t.TempDir()
	var text strings.Builder
	for i := 0; text.Len() < 300<<10; i++ {
		text.WriteString("Dec  6 10:00:00 web01 sshd[1]: Accepted publickey for deploy\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "in"), []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, `
gzip -c in > in.gz && gzip -c in >> in.gz
xz -c in > in.xz && xz -c in >> in.xz
zstd -q -c in > in.zst
bzip2 -c in > in.bz2
lz4 -q -c in > in.lz4
xz -9 -c in > in.9.xz
`)
	for _, c := range []struct {
		file, codec string
		copies      int
	}{
		{"in.gz", Gzip, 2}, {"in.xz", Xz, 2}, {"in.zst", Zstd, 1}, {"in.bz2", Bzip2, 1}, {"in.lz4", LZ4, 1},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewStreamReader(context.Background(), c.codec, bytes.NewReader(b), 0)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		got, err := io.ReadAll(d)
		d.Close()
		if err != nil || string(got) != strings.Repeat(text.String(), c.copies) {
			t.Errorf("%s: %d bytes, %v", c.file, len(got), err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "in.9.xz"))
	if d, err := NewStreamReader(context.Background(), Xz, bytes.NewReader(b), 8<<20); err == nil {
		if _, err := io.ReadAll(d); err == nil || !strings.Contains(err.Error(), "decoder memory cap") {
			t.Errorf("xz -9 under an 8 MiB cap: %v", err)
		}
	} else if !strings.Contains(err.Error(), "decoder memory cap") {
		t.Errorf("xz -9 under an 8 MiB cap: %v", err)
	}
	if _, err := NewStreamReader(context.Background(), Tar, bytes.NewReader(b), 0); err == nil {
		t.Errorf("tar taken for a stream")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, _ = os.ReadFile(filepath.Join(dir, "in.zst"))
	if d, err := NewStreamReader(ctx, Zstd, bytes.NewReader(b), 0); err == nil {
		if _, err := io.ReadAll(d); err != context.Canceled {
			t.Errorf("cancelled: %v", err)
		}
	}
}
