package blockmap

import (
	"slices"
	"testing"
)

// TestRunBuilder: marked blocks are merged into runs (shared and
// adjacent ones into one), whatever the order they are marked in, through
// the bitmap of a file's units or, for a file too large for one, by
// sorting; blocks in too many runs are refused rather than listed.
func TestRunBuilder(t *testing.T) {
	want := []Range{{Off: 0, Len: 1024}, {Off: 2048, Len: 2048}, {Off: 7168, Len: 1024}, {Off: 9216, Len: 1024}}
	for _, size := range []int64{16 << 10, 1024 * (MaxBitmapBits + 1)} {
		b := NewRunBuilder(size, 1024, 1024)
		for _, i := range []uint64{9, 2, 3, 3, 7} {
			b.Mark(i)
		}
		got, err := b.Runs(1024)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("file of %d bytes: runs %v, want %v", size, got, want)
		}
	}
	// Blocks longer than the unit (a cluster in a table of sector
	// offsets) overlap and merge.
	b := NewRunBuilder(64<<10, 512, 4096)
	for _, i := range []uint64{8, 12, 40} {
		b.Mark(i)
	}
	if got, _ := b.Runs(512); !slices.Equal(got, []Range{{0, 512}, {4096, 6144}, {20480, 4096}}) {
		t.Errorf("overlapping blocks: runs %v", got)
	}
	scattered := NewRunBuilder(4*(MaxRuns+1), 1, 1)
	for i := range uint64(MaxRuns + 1) {
		scattered.Mark(2*i + 2)
	}
	if _, err := scattered.Runs(1); err == nil {
		t.Errorf("%d separate runs listed, want a refusal", MaxRuns+1)
	}
}
