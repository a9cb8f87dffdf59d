package registry

import (
	"context"
	"io"
	"sync"
)

// readAhead decompresses in its own goroutine, a few buffers ahead of the
// reader, so that decompression and the detectors use both cores instead
// of taking turns. Memory is bounded by n buffers of size bytes. The
// source's error (io.EOF at the end) is returned once the data before it
// has been read.
type readAhead struct {
	full   chan []byte
	free   chan []byte
	buf    []byte // the buffer being read from (full length)
	pos    int
	err    error
	errCh  chan error
	done   chan struct{}
	stop   context.CancelFunc
	closed sync.Once
}

func newReadAhead(ctx context.Context, src io.Reader, size, n int) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{
		full: make(chan []byte, n), free: make(chan []byte, n),
		done: make(chan struct{}), stop: cancel, errCh: make(chan error, 1),
	}
	for range n {
		ra.free <- make([]byte, size)
	}
	go ra.fill(ctx, src)
	return ra
}

func (ra *readAhead) fill(ctx context.Context, src io.Reader) {
	defer close(ra.done)
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ctx.Done():
			ra.errCh <- ctx.Err()
			return
		}
		b = b[:cap(b)]
		k := 0
		var err error
		for k < len(b) && err == nil {
			var m int
			m, err = src.Read(b[k:])
			k += m
		}
		if k > 0 {
			select {
			case ra.full <- b[:k]:
			case <-ctx.Done():
				ra.errCh <- ctx.Err()
				return
			}
		}
		if err != nil {
			ra.errCh <- err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if ra.buf == nil {
		if ra.err != nil {
			return 0, ra.err
		}
		b, ok := <-ra.full
		if !ok {
			ra.err = <-ra.errCh
			return 0, ra.err
		}
		ra.buf, ra.pos = b, 0
	}
	k := copy(p, ra.buf[ra.pos:])
	ra.pos += k
	if ra.pos == len(ra.buf) {
		ra.free <- ra.buf
		ra.buf = nil
	}
	return k, nil
}

// Close stops the goroutine and waits for it, so that the source can be
// closed safely afterwards.
func (ra *readAhead) Close() error {
	ra.closed.Do(func() {
		ra.stop()
		for range ra.full { // drain, so that a pending send cannot block
		}
		<-ra.done
	})
	return nil
}
