package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gcPercent reads the collector's target without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// memLimit reads the soft memory limit without changing it.
func memLimit() int64 { return debug.SetMemoryLimit(-1) }

func TestTune(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	defer debug.SetMemoryLimit(memLimit())

	t.Run("GOGC and GOMEMLIMIT set", func(t *testing.T) {
		t.Setenv("GOGC", "50")
		t.Setenv("GOMEMLIMIT", "1GiB")
		debug.SetGCPercent(50)
		debug.SetMemoryLimit(1 << 30)
		Tune()
		if p, l := gcPercent(), memLimit(); p != 50 || l != 1<<30 {
			t.Fatalf("GOGC=50 and GOMEMLIMIT=1GiB in the environment: target %d, limit %d; want both kept", p, l)
		}
	})

	t.Run("default", func(t *testing.T) {
		t.Setenv("GOGC", "")
		t.Setenv("GOMEMLIMIT", "")
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
		Tune()
		if p, l := gcPercent(), memLimit(); p != startPercent || l != softLimit {
			t.Fatalf("after Tune: target %d, limit %d; want %d and %d", p, l, startPercent, softLimit)
		}
		// A small live heap keeps the raised target across collections.
		runtime.GC()
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if p := gcPercent(); p != startPercent {
			t.Fatalf("small heap, after collections: target %d, want %d", p, startPercent)
		}
		// Past tunedUntil live, Go's default comes back; the limit
		// stays until half of it is live.
		live := make([]byte, tunedUntil+(16<<20))
		for i := range live {
			live[i] = byte(i)
		}
		deadline := time.Now().Add(5 * time.Second)
		for gcPercent() != 100 {
			if time.Now().After(deadline) {
				t.Fatalf("live heap of %d MiB: target still %d, want 100", len(live)>>20, gcPercent())
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
		if l := memLimit(); l != softLimit {
			t.Fatalf("live heap of %d MiB: limit %d, want %d kept", len(live)>>20, l, softLimit)
		}
		// Past half the limit live, the limit is lifted.
		more := make([]byte, softLimit/2)
		for i := range more {
			more[i] = byte(i)
		}
		for memLimit() != math.MaxInt64 {
			if time.Now().After(deadline.Add(5 * time.Second)) {
				t.Fatalf("live heap of %d MiB: limit still %d, want none", (len(live)+len(more))>>20, memLimit())
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
		runtime.KeepAlive(live)
		runtime.KeepAlive(more)
	})
}
