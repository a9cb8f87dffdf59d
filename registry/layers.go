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
//     window, the files its workers hold, its package records, packed as
//     the walk reads them) is a few tens of MiB, and at most layerJobs
//     layers hold it, whatever the number of cores. (Records held
//     unpacked until a layer's end made it up to 64 MiB more a layer.)
//
// Which layer is read when changes nothing in the report: each layer is
// read as it would be alone, into its own result, and the results are
// kept (Scanner.keep: the run's cap on package records, the run's cache,
// the state) in the image's order, and the images' in the run's. The
// layerJobs slots are the run's: the next image's first layers take them
// as the current image's last ones give them back (readAhead).
const (
	layerJobs = 2
	// layerWindow bounds how many layers may be read and not yet kept,
	// the next image's read ahead included: the results read and not yet
	// kept hold their packed package records before the run's cap has
	// counted them.
	layerWindow = 2 * layerJobs
)

// layerRead is one layer being read on a goroutine of its own: for the
// image that lists it, or ahead of that image while the image before it
// ends (readAhead).
type layerRead struct {
	r    *blobResult
	done chan struct{}
}

// startRead waits for one of the run's layerJobs slots and reads b on a
// goroutine that gives the slot back as it ends.
func (s *Scanner) startRead(ctx context.Context, b blob) *layerRead {
	if s.slots == nil {
		s.slots = make(chan struct{}, max(s.layerJobs, 1))
	}
	s.slots <- struct{}{}
	j := &layerRead{done: make(chan struct{})}
	go func() {
		defer func() { <-s.slots; close(j.done) }()
		j.r = s.scanBlob(ctx, b) // changes nothing of s's
	}()
	return j
}

// window is how many layers may be read and not yet kept, the run's.
func (s *Scanner) window() int { return max(layerWindow, s.layerJobs) }

// scanLayers returns the results of layers, in order, and whether each
// was read in this run (fresh; false: from the state). A layer listed
// twice is read once, and one that readAhead started is not started
// again. Once every layer of the image has started, the layers of next
// (the next images') not read yet start as slots free, within the window:
// an image's last layer, and its findings' provenance, so no longer leave
// a core idle before the next image starts (docs/registry.md). After ctx
// ends, no layer starts: those left are nil.
func (s *Scanner) scanLayers(ctx context.Context, layers, next []blob) (results []*blobResult, fresh []bool) {
	results = make([]*blobResult, len(layers))
	fresh = make([]bool, len(layers))
	type job struct {
		i    int
		read *layerRead // nil until started
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
			jobs = append(jobs, &job{i: i, read: s.ahead[b.Digest]})
			delete(s.ahead, b.Digest)
		}
	}
	started := 0 // jobs[:started] have started
	for kept := range jobs {
		for started < len(jobs) && ctx.Err() == nil {
			j := jobs[started]
			if j.read == nil {
				if started >= kept+s.window()-len(s.ahead) {
					break
				}
				j.read = s.startRead(ctx, layers[j.i])
			}
			started++
		}
		if started == len(jobs) {
			s.readAhead(ctx, next, reading, started-kept)
		}
		if kept >= started {
			break // ctx ended before this layer started; every one started is kept
		}
		j := jobs[kept]
		<-j.read.done
		s.keep(ctx, layers[j.i], j.read.r)
		results[j.i], fresh[j.i] = j.read.r, true
	}
	s.readAhead(ctx, next, reading, 0)
	for i, b := range layers {
		if results[i] == nil {
			if r, f, ok := s.cached(b); ok {
				results[i], fresh[i] = r, f
			}
		}
	}
	return results, fresh
}

// readAhead starts reading the layers of next that this run has not read
// and that the state does not hold, skipping those of the image being
// read (reading), while the layers started and not kept (inFlight of the
// image's, and those already read ahead) are fewer than the window. The
// next image's scanLayers takes them (Scanner.ahead) and keeps them in
// its order, as any layer it reads, so which image a layer was read for
// changes nothing in the report.
func (s *Scanner) readAhead(ctx context.Context, next []blob, reading map[string]bool, inFlight int) {
	for _, b := range next {
		if ctx.Err() != nil || inFlight+len(s.ahead) >= s.window() {
			return
		}
		if reading[b.Digest] || s.ahead[b.Digest] != nil || s.blobs[b.Digest] != nil {
			continue
		}
		if st := s.opts.State; st != nil && st.blob(b.Digest) != nil {
			continue
		}
		if s.ahead == nil {
			s.ahead = map[string]*layerRead{}
		}
		s.ahead[b.Digest] = s.startRead(ctx, b)
	}
}

// endReadAhead waits for the layers read ahead for an image that was not
// scanned (the run ended first) and drops them.
func (s *Scanner) endReadAhead() {
	for d, j := range s.ahead {
		<-j.done
		delete(s.ahead, d)
	}
}
