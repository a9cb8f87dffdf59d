package memdisk

import (
	"bufio"
	"bytes"
	"io"
	"sync"

	"github.com/imgaudit/imgaudit/decode/inflate"
)

// Inflater decompresses zlib-compressed pages (kdump's -z pages, a
// migration stream's compressed pages), reusing its decompressors: a new
// one per 4 KiB page allocated 40 KiB and took a fifth of the inflating
// time. It inflates with decode/inflate (about 2.4 times klauspost's
// rate on text). Safe for concurrent use.
type Inflater struct {
	pool sync.Pool // *inflater
}

type inflater struct {
	src bytes.Reader
	br  *bufio.Reader // over src
	zr  inflate.ZlibReader
}

// Inflate fills dst with the first len(dst) bytes src inflates to; a
// stream shorter than that is an error.
func (f *Inflater) Inflate(src, dst []byte) (int, error) {
	z, _ := f.pool.Get().(*inflater)
	if z == nil {
		z = &inflater{}
		z.br = bufio.NewReaderSize(&z.src, 4096)
	}
	defer f.pool.Put(z)
	z.src.Reset(src)
	z.br.Reset(&z.src)
	if err := z.zr.Reset(z.br); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(&z.zr, dst)
	z.src.Reset(nil)
	return n, err
}
