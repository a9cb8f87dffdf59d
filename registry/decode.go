package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"io"

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
	if fs.budget == nil {
		fs.budget = decode.NewBudget(layerDecodeBudget)
	}
	head := bytes.Clone(buf[:n]) // scanStream reuses buf
	pr, pw := io.Pipe()
	var hits []decodedHit
	var res decode.Result
	var walkErr error
	var leaves int
	var leaf *leafDigest
	done := make(chan struct{})
	go func() {
		defer close(done)
		e := fs.s.opts.Engine
		res, walkErr = decode.WalkStream(ctx, io.MultiReader(bytes.NewReader(head), pr), decode.Options{Budget: fs.budget, Scratch: &fs.scratch}, func(l decode.Leaf) error {
			chain := make([]report.DecodedStep, len(l.Chain))
			for i, s := range l.Chain {
				chain[i] = report.DecodedStep{Codec: s.Codec, Member: s.Member, Offset: s.Offset}
			}
			var lr io.Reader = l.R
			if leaves++; digest != "" && leaves == 1 && len(l.Chain) == 1 && l.Chain[0].Offset == 0 && decode.IsStream(l.Chain[0].Codec) {
				leaf = newLeafDigest(lr, digest)
				lr = leaf
			}
			_, err := e.ScanStream(ctx, lr, fs.s.scanOpts(), func(m detectors.Match) {
				if len(hits) < maxLayerDecodedHits {
					hits = append(hits, decodedHit{chain, m})
				}
			})
			return err
		})
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
	for _, h := range hits {
		off := h.m.Start
		fs.addLocated(h.m, p, report.Location{ViewKind: "layer", Offset: 0, Length: h.m.End - h.m.Start, Path: p, State: report.StateAllocated,
			Encoding: h.m.Encoding, Decoded: h.chain, DecodedOffset: &off})
	}
	for _, note := range res.Notes() {
		fs.res.Notes = append(fs.res.Notes, p+": "+note)
	}
	if walkErr != nil && ctx.Err() == nil {
		fs.res.Notes = append(fs.res.Notes, p+": decoding stopped: "+walkErr.Error())
	}
	if leaf == nil || leaves != 1 || !leaf.eof || walkErr != nil || len(res.Notes()) > 0 {
		return nil, err
	}
	return leaf.h.Sum(nil), err
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
