//go:build unix

package detectors

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"
)

// mappedFile lends the bytes of a read-only mapping, as a memory-mapped raw
// image does (model.FileDisk.Slice), and counts the bytes released.
type mappedFile struct {
	*bytes.Reader
	m        []byte
	mu       *sync.Mutex
	released *[]Range
}

func (f mappedFile) Release(b []byte) {
	off := int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(f.m))))
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.released = append(*f.released, Range{off, off + int64(len(b))})
}

func (f mappedFile) Slice(off int64, n int) ([]byte, bool) {
	if off < 0 || n < 0 || off > int64(len(f.m))-int64(n) {
		return nil, false
	}
	return f.m[off : off+int64(n)], true
}

// mapFile writes b to a file and maps it PROT_READ, as raw.Open does.
func mapFile(t *testing.T, b []byte) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lent.bin")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(b), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(m) })
	return path, m
}

// lentCorpus holds every rule case, in ASCII and UTF-16LE, and the
// boundary fixture: matches of every rule and check.
func lentCorpus() []byte {
	var b bytes.Buffer
	for i, mk := range ruleCases() {
		c := mk(newGen(strings.Repeat("l", i+1)))
		w, _ := wrap(newGen(c.rule), []byte(c.text))
		b.Write(w)
		w, _ = wrap(newGen(c.rule+"16"), toUTF16(c.text))
		b.Write(w)
	}
	b.Write(boundaryFixture(newGen("lent")))
	return b.Bytes()
}

// TestScanLentBytes: scanning lent, read-only mapped bytes finds exactly
// what scanning copies finds. The mapping is PROT_READ, so a write to a lent
// buffer anywhere in the engine would fault and fail the scan.
func TestScanLentBytes(t *testing.T) {
	corpus := lentCorpus()
	_, m := mapFile(t, corpus)
	for _, chunk := range []int{0, 1 << 16, 4093} {
		t.Run(fmt.Sprintf("chunk=%d", chunk), func(t *testing.T) {
			e := testEngine(t, EngineOptions{ChunkSize: chunk})
			scan := func(r interface {
				ReadAt([]byte, int64) (int, error)
			}) []Match {
				var out []Match
				n, err := e.Scan(context.Background(), r, int64(len(corpus)), []Range{{0, int64(len(corpus))}}, ScanOptions{Memory: true}, func(m Match) { out = append(out, m) })
				if err != nil {
					t.Fatal(err)
				}
				if n < int64(len(corpus)) {
					t.Fatalf("scanned %d of %d bytes", n, len(corpus))
				}
				sortMatches(out)
				return out
			}
			copied := scan(bytes.NewReader(corpus))
			var released []Range
			lent := scan(mappedFile{bytes.NewReader(corpus), m, &sync.Mutex{}, &released})
			// Each owned range is released once, after its scan.
			if got := normalizeRanges(released, int64(len(corpus))); len(got) != 1 || got[0] != (Range{0, int64(len(corpus))}) {
				t.Errorf("released %v, want the whole corpus once", got)
			}
			var sum int64
			for _, r := range released {
				sum += r.End - r.Start
			}
			if sum != int64(len(corpus)) {
				t.Errorf("released %d bytes in all, want %d", sum, len(corpus))
			}
			if len(copied) < len(ruleCases()) {
				t.Fatalf("only %d matches in the corpus", len(copied))
			}
			if fmt.Sprint(keysOf(copied)) != fmt.Sprint(keysOf(lent)) {
				t.Fatalf("lent bytes: %d matches, copies: %d", len(lent), len(copied))
			}
		})
	}
}

// TestScanLentFault: a mapped file truncated under the scan makes the
// mapping fault; Scan must return an error naming the offset, not crash.
func TestScanLentFault(t *testing.T) {
	data := bytes.Repeat([]byte("password = hunter2-but-longer\n"), 1<<16)
	path, m := mapFile(t, data)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	e := testEngine(t, EngineOptions{})
	var released []Range
	_, err := e.Scan(context.Background(), mappedFile{bytes.NewReader(data), m, &sync.Mutex{}, &released}, int64(len(data)), []Range{{0, int64(len(data))}}, ScanOptions{}, func(Match) {})
	if err == nil || !strings.Contains(err.Error(), "memory fault") || !strings.Contains(err.Error(), "offset") {
		t.Fatalf("scan of a truncated mapping: %v, want a memory-fault error", err)
	}
}

// runsFile lends only ranges that lie inside one of its runs, as a
// lendingDisk lends each RAM segment of an ELF core, and counts the bytes
// read with ReadAt.
type runsFile struct {
	mappedFile
	runs []Range
	read *atomic.Int64
}

func (f runsFile) Slice(off int64, n int) ([]byte, bool) {
	for _, r := range f.runs {
		if off >= r.Start && off+int64(n) <= r.End {
			return f.mappedFile.Slice(off, n)
		}
	}
	return nil, false
}

func (f runsFile) ReadAt(p []byte, off int64) (int, error) {
	f.read.Add(int64(len(p)))
	return f.mappedFile.ReadAt(p, off)
}

// TestScanSplitsForLending: where a chunk's context reaches past the run
// its bytes lie in (the last chunk of a RAM segment, the first of the
// next), the chunk is lent but for two edges of a few margins, read with
// ReadAt; the scan finds exactly what scanning copies finds.
func TestScanSplitsForLending(t *testing.T) {
	corpus := lentCorpus()
	data := bytes.Repeat(corpus, (10<<20)/len(corpus)+1)
	_, m := mapFile(t, data)
	// Three segments with gaps wider than two margins between them, so
	// that no job spans two (packJobs), ends not chunk-aligned.
	size := int64(len(data))
	runs := []Range{{0, 3<<20 + 12345}, {3<<20 + 400<<10, 7<<20 + 999}, {7<<20 + 300<<10, size}}
	e := testEngine(t, EngineOptions{ChunkSize: 1 << 20, Workers: 2})
	if 8*2*int64(e.Margin()) > 1<<20 {
		t.Fatalf("margin %d: 1 MiB chunks are too small to split", e.Margin())
	}
	scan := func(r interface {
		ReadAt([]byte, int64) (int, error)
	}) []Match {
		var out []Match
		if _, err := e.Scan(context.Background(), r, size, runs, ScanOptions{Memory: true}, func(m Match) { out = append(out, m) }); err != nil {
			t.Fatal(err)
		}
		sortMatches(out)
		return out
	}
	copied := scan(bytes.NewReader(data))
	var read atomic.Int64
	var released []Range
	lent := scan(runsFile{mappedFile{bytes.NewReader(data), m, &sync.Mutex{}, &released}, runs, &read})
	if len(copied) < 3*len(ruleCases()) {
		t.Fatalf("only %d matches in the segments", len(copied))
	}
	if fmt.Sprint(keysOf(copied)) != fmt.Sprint(keysOf(lent)) {
		t.Fatalf("split and lent: %d matches, copies: %d", len(lent), len(copied))
	}
	// Four chunks reach past a segment's end or start, the first and
	// last of the segments in between: each reads two edges of at most
	// four margins. Read whole, each would read more than a chunk.
	if got, most := read.Load(), int64(4*2*4*e.Margin()); got == 0 || got > most {
		t.Errorf("read %d bytes with ReadAt, want some and at most %d", got, most)
	}
}

func TestLentChunkSize(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		total   int64
		workers int
		want    int64
	}{
		{0, 2, defaultChunkSize},
		{10 * mib, 2, defaultChunkSize},
		{64 * mib, 2, 8 * mib},
		{100 * mib, 2, 12 * mib}, // 12.5 MiB, rounded down to whole MiB
		{256 * mib, 2, 16 * mib},
		{1 << 40, 2, 16 * mib},
		{1 << 30, 16, 16 * mib},
		{256 * mib, 16, defaultChunkSize},
		{64 * mib, 0, 16 * mib}, // workers 0 counts as 1
	} {
		if got := lentChunkSize(c.total, c.workers); got != c.want {
			t.Errorf("lentChunkSize(%d MiB, %d) = %d MiB, want %d MiB", c.total/mib, c.workers, got/mib, c.want/mib)
		}
	}
}

// TestScanLentChunks: lent bytes are scanned in lentChunkSize chunks unless
// ChunkSize is set; each chunk releases its pages once.
func TestScanLentChunks(t *testing.T) {
	data := make([]byte, 40<<20)
	_, m := mapFile(t, data)
	for _, c := range []struct {
		chunk int
		want  int
	}{{0, 4}, {8 << 20, 5}} { // lentChunkSize(40 MiB, 1 worker) = 10 MiB
		e := testEngine(t, EngineOptions{Workers: 1, ChunkSize: c.chunk})
		var released []Range
		if _, err := e.Scan(context.Background(), mappedFile{bytes.NewReader(data), m, &sync.Mutex{}, &released}, int64(len(data)), []Range{{0, int64(len(data))}}, ScanOptions{}, func(Match) {}); err != nil {
			t.Fatal(err)
		}
		if len(released) != c.want {
			t.Errorf("ChunkSize %d: %d chunks released, want %d", c.chunk, len(released), c.want)
		}
	}
}
