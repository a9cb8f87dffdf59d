package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Garbage collection at start-up. A scan's live heap is a few MiB (rule
// tables, DFAs, findings), but building regexps and gate DFAs at the first
// keyword hits allocates several times that within milliseconds: with Go's
// default (GOGC=100) a 256 MiB scan ran three collections in its first 30
// ms; at GOGC=400 it went from 58% to 74% of cat's throughput (9
// interleaved runs). A large heap, though, should not grow to 5x its live
// size: once the live heap passes gcTunedUntil the default comes back.
const (
	gcStartPercent = 400
	gcTunedUntil   = 64 << 20
)

// tuneGC raises the collector's target until the live heap is large, unless
// GOGC in the environment says otherwise.
func tuneGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(gcStartPercent)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	// A finalizer runs after each collection that frees its object: it
	// checks the live heap and re-arms itself until the limit is passed.
	type sentinel struct{ _ *byte }
	var arm func()
	arm = func() {
		runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > gcTunedUntil {
				debug.SetGCPercent(100)
				return
			}
			arm()
		})
	}
	arm()
}
