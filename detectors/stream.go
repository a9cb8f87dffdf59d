package detectors

import (
	"context"
	"errors"
	"io"
)

// ScanStream reports every match in the bytes r yields (offsets from the
// stream's first byte), reading it once, in windows of ChunkSize bytes
// that keep Margin bytes of the previous window: a decoded archive member
// or stream, which can only be read forwards. It runs in the calling
// goroutine (the caller decodes in parallel, a stream per goroutine) and
// holds one worker's buffer. It returns the bytes scanned and the error r
// gave, if any, after scanning what came before it.
func (e *Engine) ScanStream(ctx context.Context, r io.Reader, opts ScanOptions, emit func(Match)) (int64, error) {
	cs := e.getChunkScanner()
	defer e.scanners.Put(cs)
	// A chunk hands on its matches as they are ready (flushMatches), as
	// Scan's workers do: without it, a 4 MiB chunk of distinct secrets
	// held 200,000 matches, 67 MB, until it ended, on every core that
	// decodes one (the decode pass's leaves are streams).
	cs.flush = func(ms []Match) {
		for _, m := range ms {
			emit(m)
		}
	}
	defer func() { cs.flush = nil }()
	margin := int64(e.margin)
	buf := cs.buffer(e.chunkSize + 2*e.margin)
	var base, ownStart int64 // stream offset of buf[0]; first offset not yet scanned
	filled := 0
	var readErr error
	for eof := false; ; {
		if err := ctx.Err(); err != nil {
			return ownStart, err
		}
		n, err := io.ReadFull(r, buf[filled:])
		filled += n
		switch {
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			eof = true
		case err != nil:
			readErr, eof = err, true
		}
		ownEnd := base + int64(filled)
		if !eof {
			ownEnd -= margin
		}
		if ownEnd > ownStart {
			found := cs.scanChunk(buf[:filled], base, Range{ownStart, ownEnd}, opts)
			for _, m := range found {
				emit(m)
			}
			if opts.Skipped != nil {
				for _, sk := range cs.skips {
					opts.Skipped(sk)
				}
			}
			if opts.Progress != nil {
				opts.Progress(ownEnd - ownStart)
			}
			ownStart = ownEnd
		}
		if eof {
			return ownStart, readErr
		}
		keep := int(max(0, ownStart-margin-base))
		copy(buf, buf[keep:filled])
		filled -= keep
		base += int64(keep)
	}
}
