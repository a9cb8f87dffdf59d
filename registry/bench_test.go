package registry

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// benchLayer writes a gzip layer of about mb MiB of uncompressed files: half
// text (configuration-like lines), half binary (random runs with repeats,
// compressing about 2:1 like executables), in files of 16 KiB to 1 MiB,
// plus a few secrets. It returns the path and the uncompressed tar size.
func benchLayer(b *testing.B, mb int) (string, int64) {
	b.Helper()
	p := filepath.Join(b.TempDir(), "layer.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	cw := &countWriter{w: zw}
	tw := tar.NewWriter(cw)
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"server", "listen", "port", "timeout", "user", "path", "enable", "level", "cache", "worker", "=", "/usr/lib", "true", "false"}
	total := int64(mb) << 20
	var written int64
	buf := make([]byte, 1<<20)
	for i := 0; written < total; i++ {
		n := 16<<10 + rng.IntN(1<<20-16<<10)
		body := buf[:n]
		if i%2 == 0 {
			k := 0
			for k < n {
				line := fmt.Sprintf("%s %s %d\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000))
				k += copy(body[k:], line)
			}
		} else {
			for k := 0; k < n; k += 64 {
				if rng.IntN(2) == 0 && k >= 4096 {
					copy(body[k:min(k+64, n)], body[k-4096:])
				} else {
					for j := k; j < min(k+64, n); j++ {
						body[j] = byte(rng.Uint32())
					}
				}
			}
		}
		if i%50 == 0 {
			copy(body, "_authToken=npm_"+strconv.FormatInt(int64(1e17+i), 36)+"AbCdEfGhIjKlMnOpQrStUvWx\n")
		}
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("usr/lib/f%05d", i), Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
			b.Fatal(err)
		}
		tw.Write(body)
		written += int64(n)
	}
	tw.Close()
	zw.Close()
	f.Close()
	return p, cw.n
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkLayerVsGzip scans a gzip layer (IMGAUDIT_BENCH_MB MiB
// uncompressed, default 32; the figure is for 1024) and, in the
// same iteration, runs `gzip -dc LAYER > /dev/null` on it. It reports
// both throughputs (uncompressed MB/s) and imgaudit's time relative to
// gzip's (ratio: 1.0 means as fast as decompressing alone).
func BenchmarkLayerVsGzip(b *testing.B) {
	if _, err := exec.LookPath("gzip"); err != nil {
		b.Skip("gzip not installed")
	}
	mb := 32
	if v, err := strconv.Atoi(os.Getenv("IMGAUDIT_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	p, size := benchLayer(b, mb)
	s := newScanner(b, Options{})
	bl := blob{Digest: "sha256:bench", Kind: blobTar, open: func(context.Context) (io.ReadCloser, error) { return os.Open(p) }}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	var tScan, tGzip time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res := s.scanBlobOnce(context.Background(), bl)
		tScan += time.Since(start)
		if len(res.Errors) > 0 || len(res.Findings) == 0 {
			b.Fatalf("scan: %v, %d findings", res.Errors, len(res.Findings))
		}
		b.StopTimer()
		start = time.Now()
		cmd := exec.Command("gzip", "-dc", p)
		cmd.Stdout = devnull
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		tGzip += time.Since(start)
		b.StartTimer()
	}
	mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(tScan), "imgaudit-MB/s")
	b.ReportMetric(mbs(tGzip), "gzip-dc-MB/s")
	b.ReportMetric(tScan.Seconds()/tGzip.Seconds(), "time-ratio")
}
