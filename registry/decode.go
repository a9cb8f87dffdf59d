package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/pkgdb"
	"github.com/imgaudit/imgaudit/report"
)

// A layer file whose contents are a compressed stream or an archive (a
// .tar.gz left in a home directory, a rotated log) is scanned twice from
// one read of the layer: as raw bytes, and decoded, through a pipe to a
// goroutine that decodes it as the raw scan reads it. A secret inside gets
// a location at the file's offset 0 with the chain that reached it
// (docs/report.md, "Decoded locations").

// layerDecodeBudget is the decoded bytes one layer's files may yield.
const layerDecodeBudget = 4 << 30

// maxLayerDecodedHits bounds the decoded matches kept per file.
const maxLayerDecodedHits = 100000

// A file's decoded matches wait for its walk to end, and while they wait
// they are held at the scan's decoder gate (Scanner.gate) with the walk's
// decoders: 100,000 of them are about 64 MB, and two layers decode at
// once (layers.go). Each is held for what the scanner's decode pass holds
// a match for (a detectors.Match with its strings: 634 bytes of heap for
// an AWS key ID), hitHoldBatch at a time.
const (
	hitHoldBytes = 640
	hitHoldBatch = 256
)

type decodedHit struct {
	chain []report.DecodedStep
	m     detectors.Match
}

// scanDecoding scans a file whose first n bytes are in buf as scanStream
// does, and decodes it meanwhile. With digest set (a decoded digest: an
// apt list kept compressed), it also returns that digest of what the
// file decodes to, hashed as the walk reads it, when the file decoded
// whole as one stream, within the walk's caps; nil otherwise.
func (fs *fileScanner) scanDecoding(ctx context.Context, r io.Reader, buf []byte, n int, eof bool, p string, size int64, digest string) ([]byte, error) {
	head := bytes.Clone(buf[:n]) // scanStream reuses buf
	pr, pw := io.Pipe()
	var d decodedFile
	done := make(chan struct{})
	go func() {
		defer close(done)
		d = fs.decodeWalk(ctx, io.MultiReader(bytes.NewReader(head), pr), digest, &fs.scratch, nil)
		// The raw scan reads on: take what the walk left.
		io.Copy(io.Discard, pr)
	}()
	var src io.Reader = r
	if !eof {
		src = io.TeeReader(r, pw)
	}
	err := fs.scanStream(ctx, src, buf, n, eof, p, size)
	pw.CloseWithError(err)
	<-done
	fs.addDecoded(ctx, p, &d)
	if d.leaf == nil || d.leaves != 1 || !d.leaf.eof || d.err != nil || len(d.res.Notes()) > 0 {
		return nil, err
	}
	return d.leaf.h.Sum(nil), err
}

// decodeWhole runs the decode pass over a file the walk holds whole, b,
// and applies what it finds: scanDecoding for a file a worker scanned
// (parallel.go).
func (fs *fileScanner) decodeWhole(ctx context.Context, p string, b []byte) {
	d := fs.decodeWalk(ctx, bytes.NewReader(b), "", &fs.scratch, nil)
	fs.addDecoded(ctx, p, &d)
}

// decodedFile is what the decode pass found in one file.
type decodedFile struct {
	hits   []decodedHit
	res    decode.Result
	err    error
	leaves int
	// leaf hashes the first leaf with the file's decoded digest, when it
	// has one (scanDecoding).
	leaf *leafDigest
	// dropped counts, by rule, the matches past maxLayerDecodedHits, and
	// notValidated the hits the detectors left (a full rule, a dense
	// keyword): the walk adds both to the blob's cuts (addDecoded),
	// since the decoding may run on a goroutine of its own.
	dropped      map[string]int64
	notValidated map[string]int
	// held is the walk's standing at the gate: its decoders while it
	// ran, and its hits until addDecoded applies them.
	held *decode.Reservation
	// over: the walk had more hits than it was allowed (a worker's, whose
	// file the walk decodes again itself) and stopped.
	over bool
}

// decodeWalk decodes the file src reads from its start and scans each
// leaf, keeping the matches; digest, when set, is hashed over the first
// leaf of a file that is one compressed stream. scratch keeps the
// caller's decoders. The walk's own decoding (take nil) keeps
// maxLayerDecodedHits matches and counts the rest as dropped; a worker's
// (parallel.go) keeps what take allows, and past that stops, over.
func (fs *fileScanner) decodeWalk(ctx context.Context, src io.Reader, digest string, scratch *decode.Scratch, take func() bool) decodedFile {
	d := decodedFile{held: fs.s.gate.Reserve()}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var over atomic.Bool
	e := fs.s.opts.Engine
	d.res, d.err = decode.WalkStream(wctx, src, decode.Options{Budget: fs.budget, Scratch: scratch, Reservation: d.held}, func(l decode.Leaf) error {
		chain := decodedChain(l.Chain)
		var lr io.Reader = l.R
		if d.leaves++; digest != "" && d.leaves == 1 && len(l.Chain) == 1 && l.Chain[0].Offset == 0 && decode.IsStream(l.Chain[0].Codec) {
			d.leaf = newLeafDigest(lr, digest)
			lr = d.leaf
		}
		opts := fs.s.scanOpts()
		// A rule full in the layer (as the files applied before this one
		// filled it) is not validated further, as in the raw scan.
		opts.Enough = func(rule string) bool { return over.Load() || fs.lim.Enough(layerView, rule) }
		opts.Skipped = func(sk detectors.Skip) {
			if d.notValidated == nil {
				d.notValidated = map[string]int{}
			}
			d.notValidated[sk.RuleID] += sk.Hits
		}
		_, err := e.ScanStream(wctx, lr, opts, func(m detectors.Match) {
			if d.over {
				return
			}
			if take != nil && !take() {
				d.over = true
				over.Store(true)
				stop()
				return
			}
			if len(d.hits) >= maxLayerDecodedHits {
				// Counted, never silent (before 2026-12-07 they were
				// neither kept nor counted).
				if d.dropped == nil {
					d.dropped = map[string]int64{}
				}
				d.dropped[m.RuleID]++
				return
			}
			if len(d.hits)%hitHoldBatch == 0 {
				// A wait ends with ctx, which ends the walk.
				d.held.Hold(ctx, hitHoldBatch*hitHoldBytes)
			}
			d.hits = append(d.hits, decodedHit{chain, m})
		})
		return err
	})
	return d
}

// addDecoded adds the decode pass's matches of the file at p, and its
// notes, and lets go of d's standing at the gate.
func (fs *fileScanner) addDecoded(ctx context.Context, p string, d *decodedFile) {
	defer d.held.Release(d.held.Held())
	for _, h := range d.hits {
		off := h.m.Start
		fs.addLocated(h.m, p, report.Location{ViewKind: "layer", Offset: 0, Length: h.m.End - h.m.Start, Path: p, State: report.StateAllocated,
			Encoding: h.m.Encoding, Decoded: h.chain, DecodedOffset: &off})
	}
	for _, note := range d.res.Notes() {
		fs.res.Notes = append(fs.res.Notes, p+": "+note)
	}
	var dropped int64
	for rule, n := range d.dropped {
		fs.res.cuts.DropN(rule, n)
		dropped += n
	}
	if dropped > 0 {
		fs.res.Notes = append(fs.res.Notes, fmt.Sprintf("%s: %d decoded matches past the first %d of the file not kept", p, dropped, maxLayerDecodedHits))
		// One container cut, as the disk scanner counts it.
		d.res.Skip(fmt.Sprintf("matches past the first %d of one container not placed", maxLayerDecodedHits), 1)
	}
	fs.res.decoded.Add(d.res)
	fs.res.decodedFiles++
	for rule, n := range d.notValidated {
		fs.res.cuts.Skipped(detectors.Skip{RuleID: rule, Hits: n})
	}
	if d.err != nil && ctx.Err() == nil {
		fs.res.Notes = append(fs.res.Notes, p+": decoding stopped: "+d.err.Error())
	}
}

// leafDigest hashes a decoded leaf as the detectors read it, and notes
// whether they read it to its end.
type leafDigest struct {
	r   io.Reader
	h   hash.Hash
	eof bool
}

func newLeafDigest(r io.Reader, algo string) *leafDigest {
	h := sha512.New()
	if plain, _ := pkgdb.IsDecodedDigest(algo); plain == "sha256" {
		h = sha256.New()
	}
	return &leafDigest{r: r, h: h}
}

func (l *leafDigest) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.h.Write(p[:n])
	if err == io.EOF {
		l.eof = true
	}
	return n, err
}

// decodedChain is a leaf's chain as the report writes it; the walker
// reuses l.Chain's array, so this is a copy.
func decodedChain(steps []decode.Step) []report.DecodedStep {
	chain := make([]report.DecodedStep, len(steps))
	for i, s := range steps {
		chain[i] = report.DecodedStep{Codec: s.Codec, Member: s.Member, Offset: s.Offset}
	}
	return chain
}
