package qcow2

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/decode/inflate"
)

// decompressor inflates single compressed clusters. It is safe for
// concurrent use: each call takes its own decoder and buffers from pools, so
// the scanner's parallel reads decompress on every core.
type decompressor struct {
	typ         uint8
	clusterSize int64
	inPool      sync.Pool // *[]byte input buffers of maxInput bytes
	flatePool   sync.Pool // *clusterInflater
	zstdPool    sync.Pool // *zstd.Decoder

	mu    sync.Mutex
	cache []cachedCluster // a few recently inflated clusters, for small reads
	next  int
}

// clusterInflater is a DEFLATE reader with the buffered reader it reads
// from, reused together.
type clusterInflater struct {
	br *bufio.Reader
	z  *inflate.Reader
}

type cachedCluster struct {
	host int64
	data []byte
}

const decompressedCacheLen = 8

// inflateReadSize is the buffer a compressed cluster is inflated from.
const inflateReadSize = 32 << 10

func newDecompressor(typ uint8, clusterSize int64) *decompressor {
	return &decompressor{typ: typ, clusterSize: clusterSize}
}

// maxInput bounds the stored size of one compressed cluster: the sector
// count field allows up to twice the cluster size.
func (d *decompressor) maxInput() int64 { return 2*d.clusterSize + sectorSize }

// inflate decompresses the stream of clen bytes at coff in r into out, which
// must be one cluster long. Trailing input after the stream is ignored, as
// QEMU does; a stream that ends before the cluster is full is an error.
func (d *decompressor) inflate(r io.ReaderAt, coff, clen int64, out []byte) error {
	clen = min(clen, d.maxInput())
	bp, _ := d.inPool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, d.maxInput())
		bp = &b
	}
	defer d.inPool.Put(bp)
	in := (*bp)[:clen]
	n, err := r.ReadAt(in, coff)
	if n < len(in) {
		if err != nil && err != io.EOF {
			return err
		}
		clear(in[n:]) // a stream cut by the end of the file fails below
	}
	src := bytes.NewReader(in)
	switch d.typ {
	case compressionZlib:
		ci, _ := d.flatePool.Get().(*clusterInflater)
		if ci == nil {
			ci = &clusterInflater{br: bufio.NewReaderSize(src, inflateReadSize)}
			ci.z = inflate.NewReader(ci.br)
		} else {
			ci.br.Reset(src)
			ci.z.Reset(ci.br)
		}
		defer d.flatePool.Put(ci)
		if _, err := io.ReadFull(ci.z, out); err != nil {
			return fmt.Errorf("deflate: %w", err)
		}
	case compressionZstd:
		zd, _ := d.zstdPool.Get().(*zstd.Decoder)
		if zd == nil {
			var err error
			zd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(uint64(4*d.clusterSize)), zstd.WithDecoderMaxWindow(uint64(max(d.clusterSize, 1<<20))))
			if err != nil {
				return err
			}
		}
		if err := zd.Reset(src); err != nil {
			zd.Close()
			return fmt.Errorf("zstd: %w", err)
		}
		_, err := io.ReadFull(zd, out)
		zd.Reset(nil)
		d.zstdPool.Put(zd)
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
	default:
		return fmt.Errorf("compression type %d", d.typ)
	}
	return nil
}

// readAt fills p with the decompressed cluster bytes from offset inCl. A
// whole-cluster read inflates straight into p; partial reads go through a
// small cache so that sequential small reads do not inflate a cluster again
// and again.
func (d *decompressor) readAt(r io.ReaderAt, coff, clen, inCl int64, p []byte) error {
	if inCl == 0 && int64(len(p)) == d.clusterSize {
		return d.inflate(r, coff, clen, p)
	}
	d.mu.Lock()
	for _, c := range d.cache {
		if c.host == coff && c.data != nil {
			copy(p, c.data[inCl:])
			d.mu.Unlock()
			return nil
		}
	}
	d.mu.Unlock()
	buf := make([]byte, d.clusterSize)
	if err := d.inflate(r, coff, clen, buf); err != nil {
		return err
	}
	copy(p, buf[inCl:])
	d.mu.Lock()
	if len(d.cache) < decompressedCacheLen {
		d.cache = append(d.cache, cachedCluster{coff, buf})
	} else {
		d.cache[d.next] = cachedCluster{coff, buf}
		d.next = (d.next + 1) % decompressedCacheLen
	}
	d.mu.Unlock()
	return nil
}
