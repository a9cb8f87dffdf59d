package hostile

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
)

// writeRepeated writes size bytes made of unit repeated (the last copy
// cut), to path.
func writeRepeated(path string, size int64, unit func(i int64) []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	var n int64
	for i := int64(0); n < size; i++ {
		u := unit(i)
		if rem := size - n; int64(len(u)) > rem {
			u = u[:rem]
		}
		if _, err := bw.Write(u); err != nil {
			return err
		}
		n += int64(len(u))
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// AKIARepeated writes 64 MiB of "AKIA" repeated: every position is a
// keyword hit of the AWS rules, and no key ever follows.
func AKIARepeated(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "akia-repeated.raw")
	unit := []byte("AKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIAAKIA")
	return path, writeRepeated(path, 64<<20, func(int64) []byte { return unit })
}

// OneHitRepeated writes 64 MiB of one AWS key ID, one per line: one
// secret at three million places.
func OneHitRepeated(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "one-hit-repeated.raw")
	line := []byte(HostileSecret().KeyID + "\n")
	return path, writeRepeated(path, 64<<20, func(int64) []byte { return line })
}

// DistinctHits writes 32 MiB of distinct AWS key IDs, one per line: 1.6
// million different secrets.
func DistinctHits(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "distinct-hits.raw")
	return path, WriteDistinctHits(path, 32<<20)
}

// WriteDistinctHits writes size bytes of distinct AWS key IDs, one per
// line, to path: an input that is cheap to write and slow to scan (each
// line is a match to validate), for tests that need a scan to last.
func WriteDistinctHits(path string, size int64) error {
	line := []byte("AKIA0000000000000000\n")
	return writeRepeated(path, size, func(i int64) []byte {
		for k := 19; k >= 4; k-- { // i in base 32 over the 16 ID characters
			line[k] = upperDigits[i&31]
			i >>= 5
		}
		return line
	})
}

// RepeatedLine writes 256 MiB of one AWS credentials file repeated: the
// key pair, key ID and secret key rules match every copy.
func RepeatedLine(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "repeated-line.raw")
	unit := []byte(HostileSecret().Credentials())
	return path, writeRepeated(path, 256<<20, func(int64) []byte { return unit })
}
