package registry

import "context"

// The layers of an image are read side by side, layerJobs at a time. One
// layer keeps about 1.3 of 2 cores busy: its gunzip on one goroutine, its
// tar walk (which also decodes the compressed files in it) on another,
// and its small files on the detector workers (parallel.go), so a
// 4-layer image of /usr (292 MB of gzip) took 2.39 s where the layers
// read two at a time take 1.64 s on 2 cores (docs/performance.md).
//
// Memory, not cores, sets layerJobs: on 16 cores each layer's own
// workers already spread its small files, and every layer read at once
// adds its buffers (below), so the count does not grow with the cores.
//
// What layers share is bounded as one layer bounded it alone:
//   - their decoders, and the decoded matches they hold until a file's
//     walk ends, draw on one memory gate (Scanner.gate), so together they
//     hold at most the gate's pool plus one walk's cap;
//   - a disk found in a layer is spooled and audited one at a time
//     (Scanner.diskSlot): a disk scan has its own memory bound, and a
//     spool its own room in TmpDir;
//   - what else a layer holds while it is read (its read-ahead, its scan
//     window, the files its workers hold, its package records before they
//     are packed) is a few tens of MiB, and at most layerJobs layers hold
//     it, whatever the number of cores.
//
// Which layer is read when changes nothing in the report: each layer is
// read as it would be alone, into its own result, and the results are
// kept (Scanner.keep: the run's cap on package records, the run's cache,
// the state) in the image's order.
const (
	layerJobs = 2
	// layerWindow bounds how far ahead of the first layer not yet kept a
	// layer may start: the results read and not yet kept hold their
	// packed package records before the run's cap has counted them.
	layerWindow = 2 * layerJobs
)

// scanLayers returns the results of layers, in order, and whether each
// was read in this run (fresh; false: from the state). A layer listed
// twice is read once. After ctx ends, no layer starts: those left are
// nil.
func (s *Scanner) scanLayers(ctx context.Context, layers []blob) (results []*blobResult, fresh []bool) {
	results = make([]*blobResult, len(layers))
	fresh = make([]bool, len(layers))
	type job struct {
		i    int
		r    *blobResult
		err  error // packing the records
		done chan struct{}
	}
	var jobs []*job
	reading := map[string]bool{}
	for i, b := range layers {
		if r, f, ok := s.cached(b); ok {
			results[i], fresh[i] = r, f
			continue
		}
		if !reading[b.Digest] { // a repeat takes the first one's result, below
			reading[b.Digest] = true
			jobs = append(jobs, &job{i: i, done: make(chan struct{})})
		}
	}
	jobsAtOnce := max(s.layerJobs, 1)
	window := max(layerWindow, jobsAtOnce)
	slots := make(chan struct{}, jobsAtOnce)
	started := 0
	for kept := range jobs {
		for started < len(jobs) && started < kept+window && ctx.Err() == nil {
			slots <- struct{}{} // a running layer gives its slot back as it ends
			j := jobs[started]
			go func() {
				defer func() { <-slots; close(j.done) }()
				j.r, j.err = s.read(ctx, layers[j.i])
			}()
			started++
		}
		if kept >= started {
			break // ctx ended before this layer started; every one started is kept
		}
		j := jobs[kept]
		<-j.done
		s.keep(ctx, layers[j.i], j.r, j.err)
		results[j.i], fresh[j.i] = j.r, true
	}
	for i, b := range layers {
		if results[i] == nil {
			if r, f, ok := s.cached(b); ok {
				results[i], fresh[i] = r, f
			}
		}
	}
	return results, fresh
}
