package testutil

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// hostFileCap bounds the bytes taken from one file, so that one large
// library does not make up most of the RAM contents.
const hostFileCap = 4 << 20

// HostBytes returns size bytes of this machine's files as a guest's page
// cache holds them: the regular files under dirs, taken in turn from each
// directory in lexical order, each starting on a 4 KiB page with its last
// page padded with zeros, at most 4 MiB of each. Benchmarks use it for RAM
// contents that are real executables, libraries and text rather than random
// bytes, whose statistics flatter every filter. It fails tb when the
// directories hold fewer than size bytes.
func HostBytes(tb testing.TB, size int, dirs ...string) []byte {
	tb.Helper()
	// Each directory lists files until its share (with room for unreadable
	// ones) is covered; then the lists are interleaved.
	lists := make([][]string, len(dirs))
	for i, d := range dirs {
		var listed int64
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				lists[i] = append(lists[i], p)
				listed += min(fi.Size(), hostFileCap)
			}
			if listed > 2*int64(size) {
				return filepath.SkipAll
			}
			return nil
		})
	}
	out := make([]byte, 0, size)
	for k := 0; len(out) < size; k++ {
		more := false
		for _, l := range lists {
			if k < len(l) && len(out) < size {
				out = appendFilePages(out, l[k], size)
				more = true
			}
		}
		if !more {
			tb.Fatalf("host files under %v hold %d bytes, want %d", dirs, len(out), size)
		}
	}
	return out
}

// appendFilePages appends up to hostFileCap bytes of the file at p, padded
// to a whole page, without growing out past size; unreadable files are
// skipped.
func appendFilePages(out []byte, p string, size int) []byte {
	f, err := os.Open(p)
	if err != nil {
		return out
	}
	defer f.Close()
	start := len(out)
	out = out[:start+min(hostFileCap, size-start)]
	got, _ := io.ReadFull(f, out[start:])
	if got == 0 {
		return out[:start]
	}
	end := min(start+(got+4095)&^4095, len(out))
	clear(out[start+got : end])
	return out[:end]
}
