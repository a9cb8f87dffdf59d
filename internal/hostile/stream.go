package hostile

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// QEMU migration stream pieces (migration/savevm.c, migration/ram.c).
const (
	qemuPage       = 4096
	ramFlagZero    = 0x02
	ramFlagMemSize = 0x04
	ramFlagPage    = 0x08
	ramFlagEOS     = 0x10
	ramFlagCont    = 0x20
	ramBlock       = "pc.ram"
)

// streamWriter builds a migration stream in memory.
type streamWriter struct{ b []byte }

func (w *streamWriter) u8(v byte)    { w.b = append(w.b, v) }
func (w *streamWriter) u32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *streamWriter) u64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *streamWriter) str(s string) { w.u8(byte(len(s))); w.b = append(w.b, s...) }

// header writes the QEVM header, a configuration section and the start of
// the RAM section with its block list: one block pc.ram of ram bytes.
func (w *streamWriter) header(ram int64) {
	w.b = append(w.b, "QEVM"...)
	w.u32(3)
	w.u8(0x07) // CONFIGURATION
	w.u32(uint32(len("pc-i440fx-7.2")))
	w.b = append(w.b, "pc-i440fx-7.2"...)
	w.u8(0x01) // SECTION_START
	w.u32(2)   // section id
	w.str("ram")
	w.u32(0) // instance
	w.u32(4) // version
	w.u64(uint64(ram) | ramFlagMemSize)
	w.str(ramBlock)
	w.u64(uint64(ram))
}

// page writes a page record with its bytes; cont omits the block name.
func (w *streamWriter) page(addr int64, data []byte, cont bool) {
	if cont {
		w.u64(uint64(addr) | ramFlagPage | ramFlagCont)
	} else {
		w.u64(uint64(addr) | ramFlagPage)
		w.str(ramBlock)
	}
	w.b = append(w.b, data...)
}

// fillRecord writes a same-byte page record (RAM_SAVE_FLAG_ZERO with a fill
// byte): 9 bytes with cont, 16 without.
func (w *streamWriter) fillRecord(addr int64, fill byte, cont bool) {
	if cont {
		w.u64(uint64(addr) | ramFlagZero | ramFlagCont)
	} else {
		w.u64(uint64(addr) | ramFlagZero)
		w.str(ramBlock)
	}
	w.u8(fill)
}

// padTo appends zero-page records for a page never sent otherwise (so that
// they record nothing) until the stream is exactly n bytes long: 9-byte
// records, and one 16-byte record where 9 does not divide the gap.
func (w *streamWriter) padTo(n int, addr int64) error {
	gap := n - len(w.b)
	for gap%9 != 0 {
		w.fillRecord(addr, 0, false)
		gap -= 16
	}
	if gap < 0 {
		return fmt.Errorf("stream already %d bytes, past %d", len(w.b), n)
	}
	for gap > 0 {
		w.fillRecord(addr, 0, true)
		gap -= 9
	}
	return nil
}

const vmstateRAM = 1 << 30

// vmstateHead is the first cluster of QCOW2AliasVMState's saved state:
// header, block list, one page holding HostileSecret, then padding records
// up to the cluster's end.
func vmstateHead() []byte {
	var w streamWriter
	w.header(vmstateRAM)
	pg := randomBytes(21, qemuPage)
	copy(pg[512:], HostileSecret().Credentials())
	w.page(0x100000, pg, false)
	if err := w.padTo(qcowCluster, vmstateRAM-qemuPage); err != nil {
		panic(err) // the layout above is fixed and fits
	}
	return w.b
}

// vmstatePeriod is the cluster that the state repeats: 15 page records
// (continuing the block) and padding, exactly one cluster long, so that
// every repetition parses as the same 15 pages sent again.
func vmstatePeriod() []byte {
	var w streamWriter
	for i := range 15 {
		pg := randomBytes(uint64(100+i), qemuPage)
		if i == 0 {
			copy(pg[100:], HostileSecret().Credentials())
		}
		w.page(int64(0x200000+i*qemuPage), pg, true)
	}
	if err := w.padTo(qcowCluster, vmstateRAM-qemuPage); err != nil {
		panic(err)
	}
	return w.b
}

// VMStateStream returns the saved state that QCOW2AliasVMState makes its
// qcow2 read: the head cluster, then the period cluster periods times.
func VMStateStream(periods int) []byte {
	b := vmstateHead()
	p := vmstatePeriod()
	for range periods {
		b = append(b, p...)
	}
	return b
}

// FillStream returns a migration stream of pages same-byte pages from
// guest page 0: QEMUFillPages at any size.
func FillStream(pages int) []byte {
	var w streamWriter
	w.header(int64(pages) * qemuPage)
	w.fillRecord(0, 'A', false)
	for i := 1; i < pages; i++ {
		w.fillRecord(int64(i)*qemuPage, 'A', true)
	}
	w.u64(ramFlagEOS)
	w.u8(0x00) // EOF
	return w.b
}

// QEMUFillPages writes a migration stream that claims 64 GiB of RAM, all
// sent as same-byte pages (RAM_SAVE_FLAG_ZERO with fill byte 0x41): 16 Mi
// records of 9 bytes, 151 MB, then the end of the section and the stream.
func QEMUFillPages(_ context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "fill-pages.mig")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	const ram = int64(64) << 30
	var w streamWriter
	w.header(ram)
	w.fillRecord(0, 'A', false)
	bw.Write(w.b)
	var rec [9]byte
	rec[8] = 'A'
	for addr := int64(qemuPage); addr < ram; addr += qemuPage {
		binary.BigEndian.PutUint64(rec[:], uint64(addr)|ramFlagZero|ramFlagCont)
		bw.Write(rec[:])
	}
	w.b = w.b[:0]
	w.u64(ramFlagEOS)
	w.u8(0x00) // EOF
	bw.Write(w.b)
	if err := bw.Flush(); err != nil {
		return "", err
	}
	return path, f.Close()
}
