// Package gctune sets the garbage collector up for a scan: the CLI calls
// Tune at start-up, and the tests that measure the CLI's memory bound in a
// child process call it too, so that they measure what the CLI does.
package gctune

import (
	"math"
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
// size: once the live heap passes tunedUntil the default comes back.
//
// A soft memory limit (softLimit) holds the heap there while the live
// heap is under half of it: the findings limits keep a dense input's live
// heap near 100 MiB, but at GOGC=400 its heap grew to 300 MiB before the
// default came back, and a scan of a dump of distinct secrets took 457
// MiB. Past half of it the limit is lifted, so that a scan that really
// needs more memory is never made to collect without end.
const (
	startPercent = 400
	tunedUntil   = 64 << 20
	softLimit    = 384 << 20
)

// Tune raises the collector's target until the live heap is large, and
// sets the soft memory limit until it is half the limit, unless GOGC and
// GOMEMLIMIT in the environment say otherwise.
func Tune() {
	percent := os.Getenv("GOGC") == ""
	limit := os.Getenv("GOMEMLIMIT") == ""
	if !percent && !limit {
		return
	}
	if percent {
		debug.SetGCPercent(startPercent)
	}
	if limit {
		debug.SetMemoryLimit(softLimit)
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	// A finalizer runs after each collection that frees its object: it
	// checks the live heap and re-arms itself until both are done.
	type sentinel struct{ _ *byte }
	var arm func()
	arm = func() {
		runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return
			}
			live := sample[0].Value.Uint64()
			if percent && live > tunedUntil {
				debug.SetGCPercent(100)
				percent = false
			}
			if limit && 2*live > softLimit {
				debug.SetMemoryLimit(math.MaxInt64)
				limit = false
			}
			if percent || limit {
				arm()
			}
		})
	}
	arm()
}
