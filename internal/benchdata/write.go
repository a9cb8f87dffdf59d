package benchdata

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"

	"github.com/klauspost/compress/zlib"
)

// Filler makes guest bytes: Source and Dense.
type Filler interface {
	// Fill fills p, a whole number of pages, with the next guest bytes.
	Fill(p []byte)
}

// batchPages is how many pages Source fills at a time and one compressor
// takes.
const batchPages = 256

// pages calls each with every batch of guest bytes of a size-byte guest,
// in order (the last batch may be shorter), and with zero reporting the
// pages that are all zero.
func pages(src Filler, size int64, each func(b []byte) error) error {
	buf := make([]byte, batchPages*PageSize)
	for done := int64(0); done < size; {
		n := min(int64(len(buf)), size-done)
		src.Fill(buf[:n])
		if err := each(buf[:n]); err != nil {
			return err
		}
		done += n
	}
	return nil
}

func zeroPage(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// WriteRaw writes a raw disk image of size bytes (a multiple of PageSize).
func WriteRaw(path string, size int64, src Filler) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	if err := pages(src, size, func(b []byte) error { _, err := w.Write(b); return err }); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// ELF core layout: RAM below 640 KiB and from 1 MiB up, as QEMU's
// dump-guest-memory writes an x86 guest without its ROM and video areas.
const (
	lowRAMEnd  = 0xa0000
	highRAM    = 0x100000
	elfDataOff = PageSize
)

// WriteELF writes an ELF core of a guest of size bytes of RAM (at least
// 2 MiB), in the layout of QEMU's dump-guest-memory: ELF64 little-endian
// ET_CORE, one PT_LOAD per RAM range with p_paddr its guest-physical
// address. Bytes of the guest's 640 KiB to 1 MiB hole are not written.
func WriteELF(path string, size int64, src Filler) error {
	if size < 2*highRAM || size%PageSize != 0 {
		return fmt.Errorf("benchdata: ELF guest of %d bytes: want a multiple of %d of at least %d", size, PageSize, 2*highRAM)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	le := binary.LittleEndian
	h := make([]byte, elfDataOff)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS], h[elf.EI_DATA], h[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(h[16:], uint16(elf.ET_CORE))
	le.PutUint16(h[18:], uint16(elf.EM_X86_64))
	le.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(h[32:], 64) // e_phoff
	le.PutUint16(h[52:], 64) // e_ehsize
	le.PutUint16(h[54:], 56) // e_phentsize
	le.PutUint16(h[56:], 2)  // e_phnum
	segs := []struct{ paddr, off, n uint64 }{
		{0, elfDataOff, lowRAMEnd},
		{highRAM, elfDataOff + lowRAMEnd, uint64(size) - highRAM},
	}
	for i, s := range segs {
		p := h[64+56*i:]
		le.PutUint32(p[0:], uint32(elf.PT_LOAD))
		le.PutUint64(p[8:], s.off)
		le.PutUint64(p[16:], s.paddr) // p_vaddr
		le.PutUint64(p[24:], s.paddr)
		le.PutUint64(p[32:], s.n)
		le.PutUint64(p[40:], s.n)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(h)
	var guest int64
	err = pages(src, size, func(b []byte) error {
		// Leave out the guest's bytes in [lowRAMEnd, highRAM).
		lo, hi := max(lowRAMEnd-guest, 0), max(highRAM-guest, 0)
		lo, hi = min(lo, int64(len(b))), min(hi, int64(len(b)))
		guest += int64(len(b))
		if _, err := w.Write(b[:lo]); err != nil {
			return err
		}
		_, err := w.Write(b[hi:])
		return err
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// compressed is one batch of pages, each zlib-compressed (nil for a zero
// page) or kept as is where compression does not make it smaller.
type compressed struct {
	pages [][]byte
	zlib  []bool
}

// compressBatches runs each over the batches of a size-byte guest with
// every non-zero page zlib-compressed (level 1, as QEMU's compress
// capability and dump-guest-memory -z default to), in order, on all
// cores. keepLarger keeps the compressed form even where it is larger
// (a migration stream always sends it); else such pages are stored.
func compressBatches(src Filler, size int64, keepLarger bool, each func(c compressed) error) error {
	type job struct {
		in  []byte
		out chan compressed
	}
	jobs := make(chan job)
	order := make(chan chan compressed, runtime.GOMAXPROCS(0)*2)
	for range runtime.GOMAXPROCS(0) {
		go func() {
			var zb bytes.Buffer
			zw, _ := zlib.NewWriterLevel(&zb, zlib.BestSpeed)
			for j := range jobs {
				var c compressed
				for off := 0; off < len(j.in); off += PageSize {
					p := j.in[off : off+PageSize]
					if zeroPage(p) {
						c.pages, c.zlib = append(c.pages, nil), append(c.zlib, false)
						continue
					}
					zb.Reset()
					zw.Reset(&zb)
					zw.Write(p)
					zw.Close()
					if zb.Len() < PageSize || keepLarger {
						c.pages, c.zlib = append(c.pages, bytes.Clone(zb.Bytes())), append(c.zlib, true)
					} else {
						c.pages, c.zlib = append(c.pages, p), append(c.zlib, false)
					}
				}
				j.out <- c
			}
		}()
	}
	go func() {
		defer close(order)
		defer close(jobs)
		pages(src, size, func(b []byte) error {
			out := make(chan compressed, 1)
			jobs <- job{in: bytes.Clone(b), out: out}
			order <- out
			return nil
		})
	}()
	var err error
	for out := range order {
		c := <-out
		if err == nil {
			err = each(c)
		}
	}
	return err
}

// WriteKdump writes a kdump file of a size-byte guest in the normal
// ("KDUMP   ") form of dump-guest-memory -z: block size 4 KiB, every page
// marked dumped, zero pages pointing at one shared zero block (the first
// data block), other pages zlib-compressed where that makes them smaller.
func WriteKdump(path string, size int64, src Filler) error {
	if size <= 0 || size%PageSize != 0 {
		return fmt.Errorf("benchdata: kdump guest of %d bytes: want a positive multiple of %d", size, PageSize)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	le := binary.LittleEndian
	const bs = PageSize
	npages := size / bs
	bitmapLen := (npages + 7) / 8
	bitmapBlocks := (2*bitmapLen + bs - 1) / bs
	bitmapLen = bitmapBlocks * bs / 2 // each bitmap is half the blocks
	descOff := (1 + bitmapBlocks) * bs
	dataOff := descOff + (24*npages+bs-1)/bs*bs
	head := make([]byte, descOff)
	copy(head, "KDUMP   ")
	le.PutUint32(head[8:], 6) // header_version
	le.PutUint32(head[428:], bs)
	le.PutUint32(head[432:], 0) // sub_hdr_size
	le.PutUint32(head[436:], uint32(bitmapBlocks))
	le.PutUint32(head[440:], uint32(npages)) // max_mapnr
	for i := range (npages + 7) / 8 {
		head[bs+i] = 0xff           // 1st bitmap: every page is RAM
		head[bs+bitmapLen+i] = 0xff // 2nd bitmap: every page is dumped
	}
	if r := npages % 8; r != 0 {
		head[bs+npages/8] = 1<<r - 1
		head[bs+bitmapLen+npages/8] = 1<<r - 1
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		return err
	}
	desc := make([]byte, 24*npages)
	zeroAt := dataOff
	if _, err := f.WriteAt(make([]byte, bs), zeroAt); err != nil {
		return err
	}
	at := dataOff + bs
	w := bufio.NewWriterSize(&offsetWriter{f, at}, 1<<20)
	pfn := 0
	err = compressBatches(src, size, false, func(c compressed) error {
		for i, p := range c.pages {
			d := desc[24*pfn:]
			pfn++
			if p == nil {
				le.PutUint64(d[0:], uint64(zeroAt))
				le.PutUint32(d[8:], bs)
				continue
			}
			le.PutUint64(d[0:], uint64(at))
			le.PutUint32(d[8:], uint32(len(p)))
			if c.zlib[i] {
				le.PutUint32(d[12:], 0x1) // DUMP_DH_COMPRESSED_ZLIB
			}
			if _, err := w.Write(p); err != nil {
				return err
			}
			at += int64(len(p))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if _, err := f.WriteAt(desc, descOff); err != nil {
		return err
	}
	return f.Close()
}

// offsetWriter writes sequentially from an offset of a file.
type offsetWriter struct {
	f   *os.File
	off int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.off)
	o.off += int64(n)
	return n, err
}

// Migration stream records (QEMU migration/ram.c, savevm.c).
const (
	ramFlagZero     = 0x02
	ramFlagMemSize  = 0x04
	ramFlagPage     = 0x08
	ramFlagEOS      = 0x10
	ramFlagCont     = 0x20
	ramFlagCompress = 0x100
	ramBlock        = "pc.ram"
)

// WriteStream writes a QEMU migration stream (`migrate "exec:cat > F"` of
// an i440fx guest with size bytes of RAM, all below 4 GiB): the QEVM
// header, the configuration section, the RAM section with one block,
// every page once (zero pages as zero-page records), then the end of the
// section and the stream. With compress, pages are sent as the compress
// capability sends them (a be32 length and a zlib stream).
func WriteStream(path string, size int64, src Filler, compress bool) error {
	if size <= 0 || size%PageSize != 0 || size >= 0xe0000000 {
		return fmt.Errorf("benchdata: stream of %d bytes of RAM: want a positive multiple of %d below 3.5 GiB", size, PageSize)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var b []byte
	be := binary.BigEndian
	str := func(s string) { b = append(append(b, byte(len(s))), s...) }
	b = append(b, "QEVM"...)
	b = be.AppendUint32(b, 3)
	b = append(b, 0x07) // CONFIGURATION
	b = be.AppendUint32(b, uint32(len("pc-i440fx-7.2")))
	b = append(b, "pc-i440fx-7.2"...)
	b = append(b, 0x01) // SECTION_START
	b = be.AppendUint32(b, 2)
	str("ram")
	b = be.AppendUint32(b, 0) // instance
	b = be.AppendUint32(b, 4) // version
	b = be.AppendUint64(b, uint64(size)|ramFlagMemSize)
	str(ramBlock)
	b = be.AppendUint64(b, uint64(size))
	var addr uint64
	record := func(flags uint64) {
		if addr == 0 {
			b = be.AppendUint64(b, addr|flags)
			str(ramBlock)
		} else {
			b = be.AppendUint64(b, addr|flags|ramFlagCont)
		}
	}
	each := func(c compressed) error {
		for i, p := range c.pages {
			switch {
			case p == nil:
				record(ramFlagZero)
				b = append(b, 0)
			case c.zlib[i]:
				record(ramFlagCompress)
				b = be.AppendUint32(b, uint32(len(p)))
				b = append(b, p...)
			default:
				record(ramFlagPage)
				b = append(b, p...)
			}
			addr += PageSize
		}
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	if compress {
		err = compressBatches(src, size, true, each)
	} else {
		err = pages(src, size, func(in []byte) error {
			var c compressed
			for off := 0; off < len(in); off += PageSize {
				p := in[off : off+PageSize]
				if zeroPage(p) {
					p = nil
				}
				c.pages, c.zlib = append(c.pages, p), append(c.zlib, false)
			}
			return each(c)
		})
	}
	if err != nil {
		return err
	}
	b = be.AppendUint64(b, ramFlagEOS)
	b = append(b, 0x00) // EOF
	if _, err := w.Write(b); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
