package detectors

import (
	"bytes"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: on a shared machine it
// is a steadier clock for throughput than the wall.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// throughput scans data with e on one worker and returns bytes per CPU
// second, the best of tries runs.
func throughput(t testing.TB, e *Engine, data []byte, tries int) float64 {
	best := 0.0
	for range tries {
		start := cpuTime(t)
		e.FindAll(data, ScanOptions{})
		d := max(cpuTime(t)-start, time.Millisecond)
		best = max(best, float64(len(data))/d.Seconds())
	}
	return best
}

// TestAdversarialRepetition feeds every built-in rule's keywords, repeated
// (alone, with an assignment, and with a plausible token after them), to
// the full engine and checks that each input is scanned within a fixed
// factor of the engine's speed on random data, measured in the same run:
// the work per keyword hit is bounded (fruitlessBase, covered matches,
// repeated secrets), so no rule can be driven quadratic. Before the bound,
// "glpat-" repeated ran at 0.01 MB/s and "AKIA" at 0.1 MB/s against about
// 1 GB/s on random data; the floor here is 1/500 of random.
func TestAdversarialRepetition(t *testing.T) {
	if testing.Short() {
		t.Skip("scans about 250 MiB")
	}
	if raceEnabled {
		t.Skip("throughput ratios are distorted by the race detector (make unit runs this test)")
	}
	e, err := NewEngine(Builtin(), EngineOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 10
	rng := rand.New(rand.NewPCG(5, 6))
	random := make([]byte, size)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	base := throughput(t, e, random, 3)
	floor := base / 500
	worst, worstUnit := base, ""
	seen := map[string]bool{}
	for _, r := range Builtin() {
		for _, k := range r.Keywords {
			for _, u := range []string{k, k + "=", k + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hI6kL9n\n"} {
				if seen[u] {
					continue
				}
				seen[u] = true
				data := bytes.Repeat([]byte(u), size/len(u))
				got := throughput(t, e, data, 1)
				if got < floor {
					got = max(got, throughput(t, e, data, 2)) // a noisy neighbour, or the rule?
				}
				if got < worst {
					worst, worstUnit = got, u
				}
				if got < floor {
					t.Errorf("rule %s: %q repeated scans at %.1f MB/s, below 1/500 of random data (%.0f MB/s)", r.ID, u, got/1e6, base/1e6)
				}
			}
		}
	}
	t.Logf("random data: %.0f MB/s per CPU second; slowest repetition %q: %.1f MB/s (1/%.0f)", base/1e6, worstUnit, worst/1e6, base/worst)
}
