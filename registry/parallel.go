package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/pkgdb"
)

// A layer's files are scanned in parallel: the walk reads each small file
// whole and hands it to a worker, which runs the detectors over it and
// keeps what they find; the walk then applies those results in the tar's
// order, on its own goroutine, as scanning the file there would have, and
// decodes the file there if it is compressed or an archive. Only the
// detectors' work moves: every change to the blob's result is still made
// by the walk, one file after the other, so a report is the one a
// sequential walk makes. Most of a layer's files are small
// (trixie-server-image: 31,447 of its 31,557 files are under 1 MiB), and
// each one's scan alone cannot use a second core (the detectors split a
// window in 4 MiB chunks). A worker also decodes its file when it is a
// compressed stream or an archive (since 2026-12-07; before, the walk
// decoded each one, one after the other, and a layer of gzip'd
// documentation was as slow as one core inflating): the decoders of the
// workers, of the walk and of the other layer read at the same time all
// draw on the Scanner's one memory gate, whose cap is what bounded a
// walk's decoders when only the walk decoded. A worker's walk gives back
// everything it held at the gate when it ends, and keeps at most
// maxJobMatches matches, raw and decoded together, for the walk to apply
// in turn: a job that waits for its turn holds nothing another job's
// walk could wait for. Past that cap it stops, and the walk decodes the
// file again itself.
//
// What the walk still scans itself, after the workers' results are all
// applied: files larger than parallelFileMax, package-record files and
// files whose digest is taken as they stream (both shape the layer's
// provenance), VM disk and memory images, and a file whose read fails.

const (
	// parallelFileMax is the largest file a worker scans: one detector
	// chunk, which a single scan would run on one core anyway.
	parallelFileMax = 4 << 20
	// parallelPendingBytes bounds the bytes of the files read and not yet
	// applied, per layer.
	parallelPendingBytes = 16 << 20
	// maxJobMatches bounds the matches a worker keeps for one file. The
	// walk's Limiter stops validating a rule's hits once the rule is full
	// (Limiter.Enough), but a worker's file is applied later, so a file of
	// dense hits (4 MiB of distinct AWS key IDs are 200,000 matches, 80
	// MB of them) would be kept whole, once per pending file: 416 MB peak
	// for 16 such files, against 116 MB walked one by one. Past the cap
	// the worker stops, and the walk scans the file itself, as before.
	maxJobMatches = 4096
	// maxPendingMatches bounds the matches the jobs of one layer hold
	// until the walk applies them, whatever the number of workers: a
	// layer holds up to two jobs per worker, and each may keep
	// maxJobMatches, so a layer of small files of dense distinct secrets
	// (84 KB, 4,000 AWS key IDs each: 2.6 MB of matches) held 83 MB of
	// them with 16 workers and would hold 333 MB with 64. Past it a job
	// overflows, as past its own cap, and the walk scans that file
	// itself. It is what 2 workers' four jobs could hold.
	maxPendingMatches = 4 * maxJobMatches
)

// fileJob is one whole file a worker scans, and what it found.
type fileJob struct {
	p    string // the file's path in the layer
	n    int    // its tar entry, for errors
	b    []byte // its bytes
	done chan struct{}
	// pending counts the matches that the pipeline's jobs hold (nil: no
	// pipeline, a test's job), kept the matches this one counts there.
	pending *atomic.Int64
	kept    int

	matches []detectors.Match
	skips   []detectors.Skip
	err     error
	// decoded is what decoding the file found, when it is compressed or
	// an archive and its walk kept within the job's matches; nil: the
	// walk decodes it (applyWhole).
	decoded *decodedFile
	// overflow: the file had more than maxJobMatches matches; the walk
	// scans it again itself.
	overflow bool
}

// take counts one more match for the job to keep, and says whether it
// may: within its own maxJobMatches and the pipeline's maxPendingMatches.
func (j *fileJob) take() bool {
	if j.kept >= maxJobMatches {
		return false
	}
	if j.pending != nil && j.pending.Add(1) > maxPendingMatches {
		j.pending.Add(-1)
		return false
	}
	j.kept++
	return true
}

// giveBack uncounts n of the job's matches: dropped, or applied.
func (j *fileJob) giveBack(n int) {
	j.kept -= n
	if j.pending != nil {
		j.pending.Add(-int64(n))
	}
}

// fileError is the error that stopped a file's scan on a worker, which
// stops the walk.
type fileError struct {
	p   string
	n   int
	err error
}

func (e *fileError) Error() string { return fmt.Sprintf("%s (tar entry %d): %v", e.p, e.n, e.err) }
func (e *fileError) Unwrap() error { return e.err }

// streamsDigest says whether the file at p is hashed as it streams, for
// the package records that may come later in the layer (scanFile).
func streamsDigest(p string) bool { return pkgdb.StreamDigest(p) != "" }

// filePipeline runs fileJobs on workers and hands their results back in
// the order they were submitted.
type filePipeline struct {
	fs      *fileScanner
	ctx     context.Context
	jobs    chan *fileJob
	pending []*fileJob
	bytes   int64
	// matches counts what the pending jobs hold (fileJob.take).
	matches atomic.Int64
	paths   map[string]int // pending jobs per path
	free    [][]byte       // buffers of applied jobs, for reuse
	stopped bool
}

// newFilePipeline starts workers goroutines for fs's small files; nil when
// there is one worker (the walk scans every file itself, as before).
func (fs *fileScanner) newFilePipeline(ctx context.Context, workers int) *filePipeline {
	if workers <= 1 {
		return nil
	}
	pl := &filePipeline{fs: fs, ctx: ctx, jobs: make(chan *fileJob, workers), paths: map[string]int{}}
	for range workers {
		go func() {
			var scratch decode.Scratch // the worker's decoders, from one file to the next
			for j := range pl.jobs {
				fs.scanWhole(ctx, j, &scratch)
				close(j.done)
			}
		}()
	}
	return pl
}

// takes says whether the walk should hand over a file of size bytes at p:
// a whole small file whose digest is not taken as it streams (that is
// for the package records' files, which the walk keeps).
func (pl *filePipeline) takes(p string, size int64, record bool) bool {
	return pl != nil && !pl.stopped && size >= 0 && size <= parallelFileMax && !record && !streamsDigest(p)
}

// buffer returns a buffer of n bytes for a file, from an applied job's
// when one is large enough.
func (pl *filePipeline) buffer(n int) []byte {
	for i, b := range pl.free {
		if cap(b) >= n {
			pl.free = append(pl.free[:i], pl.free[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n, max(n, 64<<10))
}

// release gives back a buffer the walk took and did not submit.
func (pl *filePipeline) release(b []byte) {
	if pl != nil && b != nil && len(pl.free) < 2*cap(pl.jobs) {
		pl.free = append(pl.free, b)
	}
}

// submit hands file p (entry n), whose bytes are b, to a worker, applying
// the results of earlier files first when too many bytes are pending. It
// returns an error that stops the walk, as scanFile's does.
func (pl *filePipeline) submit(p string, n int, b []byte) error {
	for len(pl.pending) > 0 && (pl.bytes+int64(len(b)) > parallelPendingBytes || len(pl.pending) >= 2*cap(pl.jobs)) {
		if err := pl.applyFirst(); err != nil {
			return err
		}
	}
	j := &fileJob{p: p, n: n, b: b, done: make(chan struct{}), pending: &pl.matches}
	pl.pending = append(pl.pending, j)
	pl.bytes += int64(len(b))
	pl.paths[p]++
	pl.jobs <- j
	return pl.applyReady()
}

// holds says whether a file at p is pending: the walk applies everything
// before it changes what p's earlier entries left (fileScanner.replaced).
func (pl *filePipeline) holds(p string) bool { return pl != nil && pl.paths[p] > 0 }

// applyReady applies the results of the pending files that are done, in
// order, up to the first that is not.
func (pl *filePipeline) applyReady() error {
	for len(pl.pending) > 0 {
		select {
		case <-pl.pending[0].done:
			if err := pl.applyFirst(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

// drain applies the results of every pending file, in order.
func (pl *filePipeline) drain() error {
	if pl == nil {
		return nil
	}
	for len(pl.pending) > 0 {
		if err := pl.applyFirst(); err != nil {
			return err
		}
	}
	return nil
}

// close waits for the workers' files, applying none after an error
// stopped the walk, and stops the workers.
func (pl *filePipeline) close() {
	if pl == nil {
		return
	}
	for _, j := range pl.pending {
		<-j.done
	}
	pl.pending = nil
	close(pl.jobs)
}

// applyFirst waits for the first pending file and applies its results.
func (pl *filePipeline) applyFirst() error {
	j := pl.pending[0]
	<-j.done
	pl.pending = pl.pending[1:]
	pl.bytes -= int64(len(j.b))
	defer j.giveBack(j.kept)
	if pl.paths[j.p]--; pl.paths[j.p] == 0 {
		delete(pl.paths, j.p)
	}
	if err := pl.fs.applyWhole(pl.ctx, j); err != nil {
		pl.stopped = true
		return &fileError{p: j.p, n: j.n, err: err}
	}
	pl.release(j.b)
	return nil
}

// scanWhole is a worker's scan of a whole file: the detectors' pass of
// scanFile over a file its window holds, and the decode pass of a
// compressed file or an archive, with the matches kept in j instead of
// applied. It reads the blob's limits (Limiter.Enough, a hint, safe for
// concurrent use) and changes nothing but the blob's decoding budget.
func (fs *fileScanner) scanWhole(ctx context.Context, j *fileJob, scratch *decode.Scratch) {
	if len(j.b) == 0 {
		return
	}
	// Once the file overflows, every rule has enough: the detectors stop
	// validating its hits at their next flush (2,048 matches), since the
	// walk will scan it again.
	var overflow atomic.Bool
	opts := fs.s.scanOpts()
	opts.Skipped = func(sk detectors.Skip) { j.skips = append(j.skips, sk) }
	opts.Enough = func(rule string) bool { return overflow.Load() || fs.lim.Enough(layerView, rule) }
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err := fs.s.opts.Engine.Scan(jctx, bytes.NewReader(j.b), int64(len(j.b)), []detectors.Range{{Start: 0, End: int64(len(j.b))}}, opts, func(m detectors.Match) {
		switch {
		case j.overflow:
		case !j.take():
			j.overflow = true
			overflow.Store(true)
			cancel()
		default:
			j.matches = append(j.matches, m)
		}
	})
	if j.overflow && ctx.Err() == nil {
		j.giveBack(j.kept)
		j.matches, j.skips = nil, nil
		return
	}
	j.overflow, j.err = false, err
	if err != nil || fs.s.opts.NoDecode || decode.Sniff(j.b[:min(len(j.b), decode.SniffLen)]) == "" {
		return
	}
	d := fs.decodeWalk(ctx, bytes.NewReader(j.b), "", scratch, j.take)
	// The hits are few (maxJobMatches), and the job may wait for its
	// turn behind a job whose walk waits for the gate: it holds nothing
	// there while it waits.
	d.held.Release(d.held.Held())
	if !d.over && ctx.Err() == nil {
		j.decoded = &d
	} else {
		j.giveBack(len(d.hits))
	}
}

// applyWhole applies a worker's results for file j.p as scanFile would
// have: the raw matches and the bytes scanned; then, for a compressed
// file or an archive, the decode pass, here (scanDecoding); then the
// file's digests if it holds findings.
func (fs *fileScanner) applyWhole(ctx context.Context, j *fileJob) error {
	if j.overflow {
		return fs.scanFile(ctx, bytes.NewReader(j.b), j.p, int64(len(j.b)), true)
	}
	for _, sk := range j.skips {
		fs.res.cuts.Skipped(sk)
	}
	hits := len(fs.hitsAt[j.p])
	for _, m := range j.matches {
		fs.addHit(m, j.p)
	}
	if j.err != nil {
		return j.err
	}
	fs.res.Scanned += int64(len(j.b))
	if !fs.s.opts.NoDecode && decode.Sniff(j.b[:min(len(j.b), decode.SniffLen)]) != "" {
		if j.decoded != nil {
			fs.addDecoded(ctx, j.p, j.decoded)
		} else {
			fs.decodeWhole(ctx, j.p, j.b)
		}
	}
	if len(fs.hitsAt[j.p]) != hits {
		fs.keepDigests(ctx, j.p, j.b)
	}
	return nil
}

// readWhole reads the size bytes of a file the pipeline takes into one of
// its buffers; on a short read it returns what arrived and the error.
func (pl *filePipeline) readWhole(r io.Reader, size int64) ([]byte, error) {
	b := pl.buffer(int(size))
	k, err := io.ReadFull(r, b)
	return b[:k], err
}
