//go:build race

package detectors

// raceEnabled: the race detector slows Go code about tenfold but not the
// vector prefilter, so throughput ratios mean nothing under it.
const raceEnabled = true
