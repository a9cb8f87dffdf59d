package rollback

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// dpkgStatusSample is a status file of n packages, the size of a desktop's.
func dpkgStatusSample(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Package: pkg%d\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: %d\n"+
			"Maintainer: Someone <someone@example.org>\nArchitecture: amd64\nVersion: %d.%d-%d~deb12u%d\nDepends: libc6 (>= 2.34)\n"+
			"Description: package number %d\n A longer description of the package,\n spanning two lines.\n\n", i, i*7, i%9, i%13, i%5, i%3, i)
	}
	return []byte(b.String())
}

// BenchmarkParseDpkgStatus against a baseline that only splits the same
// bytes into lines (the least any parser must do).
func BenchmarkParseDpkgStatus(b *testing.B) {
	data := dpkgStatusSample(5000)
	b.Run("baseline-split-lines", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			n := 0
			for line := range bytes.Lines(data) {
				n += len(line)
			}
			_ = n
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if len(ParseDpkgStatus(data)) != 5000 {
				b.Fatal("wrong count")
			}
		}
	})
}

// BenchmarkCompareDebVersions compares typical versions pairwise.
func BenchmarkCompareDebVersions(b *testing.B) {
	b.SetBytes(int64(len("3.0.11-1~deb12u1") + len("3.0.11-1~deb12u2")))
	for b.Loop() {
		if c, _ := CompareDebVersions("3.0.11-1~deb12u1", "3.0.11-1~deb12u2"); c != -1 {
			b.Fatal("wrong order")
		}
	}
}
