package scanner

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestOnEveryCore: every index is done exactly once, by a worker number
// below the core count, and a cancelled context hands out no more work.
func TestOnEveryCore(t *testing.T) {
	for _, n := range []int{0, 1, 3, 1000} {
		calls := make([]atomic.Int32, n)
		var badWorker atomic.Bool
		onEveryCore(context.Background(), n, func(w, i int) {
			if w < 0 || w >= runtime.GOMAXPROCS(0) || w >= n {
				badWorker.Store(true)
			}
			calls[i].Add(1)
		})
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Errorf("n=%d: index %d done %d times", n, i, c)
			}
		}
		if badWorker.Load() {
			t.Errorf("n=%d: a worker number out of range", n)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var done atomic.Int32
	onEveryCore(ctx, 1000, func(_, i int) {
		if done.Add(1) == 10 {
			cancel()
		}
	})
	if d := done.Load(); d >= 1000 {
		t.Errorf("cancelled after 10 calls, but %d were made", d)
	}
}
