package vmdk

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

const benchSize = 64 << 20

// benchFixture is built once per test binary: a ~64 MiB guest with
// half-compressible content, as raw and as streamOptimized (generator).
var benchDir atomic.Value // string: set once the fixture exists

var benchFixture = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "imgaudit-vmdk-bench-")
	benchDir.Store(dir)
	if err != nil {
		return "", err
	}
	b := make([]byte, benchSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(b); i += 8 {
		if (i/4096)%2 == 0 {
			v := r.Uint64()
			for k := 0; k < 8; k++ {
				b[i+k] = byte(v >> (8 * k))
			}
		} else {
			copy(b[i:i+8], "log line")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "d.raw"), b, 0o644); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "d.vmdk"), synthStream(b, true, nil), 0o644)
})

// readParallel reads the disk in 1 MiB blocks from GOMAXPROCS goroutines,
// each taking the next block, as a scanner does.
func readParallel(b *testing.B, d model.Disk) {
	const block = 1 << 20
	var next atomic.Int64
	b.SetBytes(block)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, block)
		for pb.Next() {
			off := (next.Add(1) - 1) * block % d.Size()
			if _, err := d.ReadAt(buf, off); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkStreamOptimizedParallel(b *testing.B) {
	dir, err := benchFixture()
	if err != nil {
		b.Fatal(err)
	}
	im, err := Open(context.Background(), filepath.Join(dir, "d.vmdk"), model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	v, _ := im.Current()
	readParallel(b, v.Disk)
}

func BenchmarkRawBaseline(b *testing.B) {
	dir, err := benchFixture()
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "d.raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	d, err := raw.NewDisk(f, f.Name())
	if err != nil {
		b.Fatal(err)
	}
	readParallel(b, d)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, ok := benchDir.Load().(string); ok && dir != "" {
		os.RemoveAll(dir) // only what the benchmark made
	}
	os.Exit(code)
}
