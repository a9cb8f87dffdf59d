package rollback

import (
	"testing"
)

// BenchmarkCompareDebVersions compares typical versions pairwise.
func BenchmarkCompareDebVersions(b *testing.B) {
	b.SetBytes(int64(len("3.0.11-1~deb12u1") + len("3.0.11-1~deb12u2")))
	for b.Loop() {
		if c, _ := CompareDebVersions("3.0.11-1~deb12u1", "3.0.11-1~deb12u2"); c != -1 {
			b.Fatal("wrong order")
		}
	}
}
