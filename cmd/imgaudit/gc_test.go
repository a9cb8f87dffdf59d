package main

import (
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

func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())

	t.Run("GOGC set", func(t *testing.T) {
		t.Setenv("GOGC", "50")
		debug.SetGCPercent(50)
		tuneGC()
		if p := gcPercent(); p != 50 {
			t.Fatalf("GOGC=50 in the environment: target %d, want 50 kept", p)
		}
	})

	t.Run("default", func(t *testing.T) {
		t.Setenv("GOGC", "")
		debug.SetGCPercent(100)
		tuneGC()
		if p := gcPercent(); p != gcStartPercent {
			t.Fatalf("after tuneGC: target %d, want %d", p, gcStartPercent)
		}
		// A small live heap keeps the raised target across collections.
		runtime.GC()
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if p := gcPercent(); p != gcStartPercent {
			t.Fatalf("small heap, after collections: target %d, want %d", p, gcStartPercent)
		}
		// Past gcTunedUntil live, Go's default comes back.
		live := make([]byte, gcTunedUntil+(16<<20))
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
		runtime.KeepAlive(live)
	})
}
