package memdisk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/model"
)

// layout builds a host file and the guest bytes its pieces should read as.
type layout struct {
	file   []byte
	guest  []byte
	pieces []Piece
}

// The test encoding of a decoded piece: its guest bytes reversed.
func reversed(b []byte) []byte {
	r := slices.Clone(b)
	slices.Reverse(r)
	return r
}

func decodeReversed(file []byte) Decoder {
	return func(p *Piece, dst []byte) error {
		copy(dst, reversed(file[p.FileOff:p.FileOff+int64(p.FileLen)]))
		return nil
	}
}

// kinds of piece a layout is made of.
const (
	stored    = iota // verbatim, right after the previous stored bytes
	storedGap        // verbatim, after a small gap (a stream's page header)
	storedFar        // verbatim, far from the previous stored bytes
	encoded          // decoded (reversed)
	fill             // a same-byte run
	hole             // guest bytes no piece holds (zeros)
)

// newLayout makes pieces of the given kinds and lengths, back to back in
// the guest.
func newLayout(seed uint64, kinds []int, lens []int) *layout {
	rng := rand.New(rand.NewPCG(seed, 1))
	l := &layout{file: make([]byte, 100)} // a header before the first piece
	for i, k := range kinds {
		n := lens[i]
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		off := int64(len(l.guest))
		switch k {
		case stored, storedGap, storedFar:
			switch k {
			case storedGap:
				l.file = append(l.file, "hdr:8by"[:1+rng.IntN(7)]...)
			case storedFar:
				l.file = append(l.file, make([]byte, maxRunGap+1+rng.IntN(100))...)
			}
			l.pieces = append(l.pieces, Piece{Off: off, FileOff: int64(len(l.file)), FileLen: uint32(n), Len: uint32(n), Src: model.SourceData})
			l.file = append(l.file, data...)
		case encoded:
			l.file = append(l.file, 'x')
			l.pieces = append(l.pieces, Piece{Off: off, FileOff: int64(len(l.file)), FileLen: uint32(n), Len: uint32(n), Src: model.SourceCompressed})
			l.file = append(l.file, reversed(data)...)
		case fill:
			for j := range data {
				data[j] = 0x41
			}
			l.pieces = append(l.pieces, Piece{Off: off, Len: uint32(n), Src: model.SourceDerived, Fill: true, Ref: 0x41})
		case hole:
			clear(data)
		}
		l.guest = append(l.guest, data...)
	}
	l.file = append(l.file, "trailer"...)
	return l
}

func (l *layout) disk(t *testing.T) *Disk {
	t.Helper()
	d, err := New("test.mem", bytes.NewReader(l.file), int64(len(l.guest)), slices.Clone(l.pieces), decodeReversed(l.file), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Every read, at every offset and length, returns the guest bytes, whether
// its pieces are stored back to back, a few bytes apart (read with one
// ReadAt), far apart, decoded, fills or holes.
func TestReadAt(t *testing.T) {
	for _, c := range []struct {
		name  string
		kinds []int
		lens  []int
	}{
		{"stored back to back", []int{stored, stored, stored}, []int{40, 17, 64}},
		{"a stream's pages", []int{stored, storedGap, storedGap, storedGap, storedGap}, []int{32, 32, 32, 32, 32}},
		{"stored far apart", []int{stored, storedFar, storedGap, storedFar}, []int{32, 32, 32, 32}},
		{"decoded between stored", []int{storedGap, encoded, storedGap, storedGap, encoded, encoded}, []int{32, 32, 32, 32, 32, 32}},
		{"fills and holes", []int{storedGap, fill, storedGap, hole, storedGap, storedGap, hole}, []int{32, 32, 32, 32, 32, 32, 32}},
		{"one long piece", []int{stored}, []int{300}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLayout(uint64(len(c.name)), c.kinds, c.lens)
			d := l.disk(t)
			for off := 0; off < len(l.guest); off++ {
				for n := 1; off+n <= len(l.guest); n++ {
					got := make([]byte, n)
					k, err := d.ReadAt(got, int64(off))
					if err != nil || k != n {
						t.Fatalf("ReadAt(%d, %d): %d, %v", n, off, k, err)
					}
					if !bytes.Equal(got, l.guest[off:off+n]) {
						t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
					}
				}
			}
			// Past the end: the bytes up to it, then io.EOF.
			got := make([]byte, 10)
			if k, err := d.ReadAt(got, int64(len(l.guest)-4)); k != 4 || err != io.EOF || !bytes.Equal(got[:4], l.guest[len(l.guest)-4:]) {
				t.Errorf("read across the end: %d, %v", k, err)
			}
		})
	}
}

// A stored run that cannot be read whole is an error naming the file, the
// offset and the guest-physical address, coalesced or not.
func TestReadAtShortFile(t *testing.T) {
	for _, kinds := range [][]int{{stored, stored}, {stored, storedGap}} {
		l := newLayout(7, kinds, []int{32, 32})
		l.file = l.file[:l.pieces[1].FileOff+10]
		d, err := New("short.mem", bytes.NewReader(l.file), int64(len(l.guest)), l.pieces, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.ReadAt(make([]byte, 64), 0)
		if err == nil || !strings.Contains(err.Error(), "short.mem") || !strings.Contains(err.Error(), "guest-physical 0x0") || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("pieces %v: error %v", kinds, err)
		}
	}
}

// Workers read a disk at once: each read sees its own bytes (go test
// -race checks the cache and the run buffers), and decoding of different
// pieces runs in parallel rather than one at a time.
func TestReadAtConcurrent(t *testing.T) {
	kinds := make([]int, 64)
	lens := make([]int, 64)
	for i := range kinds {
		kinds[i] = []int{storedGap, encoded, encoded, fill, storedGap, hole, stored}[i%7]
		lens[i] = 64
	}
	l := newLayout(3, kinds, lens)
	d := l.disk(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for range 2000 {
				off := rng.IntN(len(l.guest))
				n := 1 + rng.IntN(min(300, len(l.guest)-off))
				got := make([]byte, n)
				if _, err := d.ReadAt(got, int64(off)); err != nil || !bytes.Equal(got, l.guest[off:off+n]) {
					errs <- fmt.Errorf("ReadAt(%d, %d): %v", n, off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Two reads, of a whole piece and of part of another, each wait in
	// Decode until the other is there too: that only ends if neither
	// holds the disk while it decodes.
	var arrived sync.WaitGroup
	arrived.Add(2)
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	dec := decodeReversed(l.file)
	d2, err := New("test.mem", bytes.NewReader(l.file), int64(len(l.guest)), slices.Clone(l.pieces), func(p *Piece, dst []byte) error {
		arrived.Done()
		select {
		case <-both:
		case <-time.After(10 * time.Second):
			return errors.New("the other decode never started: decoding is serialized")
		}
		return dec(p, dst)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for _, r := range [][2]int{{1, 64}, {2, 10}} { // piece 1 whole, 10 bytes of piece 2
		go func() {
			off := l.pieces[r[0]].Off
			got := make([]byte, r[1])
			_, err := d2.ReadAt(got, off)
			if err == nil && !bytes.Equal(got, l.guest[off:off+int64(r[1])]) {
				err = fmt.Errorf("piece %d: wrong bytes", r[0])
			}
			done <- err
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
