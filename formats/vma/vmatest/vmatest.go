// Package vmatest makes Proxmox VMA archives for tests. Proxmox's `vma`
// tool is not packaged outside Proxmox VE, so Write follows the format as
// pve-qemu defines it:
//
//   - vma.h "File Format Definitions": VmaHeader (magic "VMA\0", version 1,
//     uuid, be64 ctime, md5sum, blob_buffer_offset/size, header_size,
//     config_names[256], config_data[256], dev_info[256] of 32 bytes at
//     offset 4096), VmaExtentHeader (magic "VMAE", reserved1, be16
//     block_count, uuid, md5sum, 59 be64 blockinfo);
//   - vma-writer.c allocate_header_blob: the blob table starts at position 1,
//     records are {le16 len, data}, the table grows in 512-byte steps and
//     follows the 12288-byte VmaHeader; header_size = 12288 + table size;
//     the md5 covers header_size bytes with the md5 field zeroed;
//   - vma-writer.c vma_writer_write / vma_writer_flush: every cluster of a
//     device gets a blockinfo entry (cluster_num bits 0-31, dev_id bits
//     32-39, mask bits 48-63), only non-zero 4 KiB blocks are stored, an
//     extent is flushed once 58 entries are queued, and its md5 covers the
//     512-byte header with the md5 field zeroed.
//
// It also starts QEMU to capture a real migration stream for a "vmstate"
// device.
package vmatest

import (
	"bufio"
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

const (
	blockSize       = 4096
	clusterSize     = 65536
	headerSize      = 12288
	blocksPerExtent = 59
	// writerEntries is how many entries vma-writer.c queues before it
	// flushes an extent (vma_writer_get_buffer flushes at 59-1).
	writerEntries = blocksPerExtent - 1
)

// Device is one stream of an archive.
type Device struct {
	Name string // "drive-scsi0", "vmstate", ...
	Data []byte // contents; the device size is len(Data) unless Size is set
	Size int64  // registered size, when it differs from len(Data) (vmstate)
}

// ConfigFile is a configuration blob ("qemu-server.conf").
type ConfigFile struct {
	Name string
	Data []byte
}

// Archive describes what to write.
type Archive struct {
	UUID    [16]byte
	CTime   time.Time
	Configs []ConfigFile
	Devices []Device
	// EntriesPerExtent overrides the writer's 58 (1..59).
	EntriesPerExtent int
}

type blobTable struct {
	buf []byte
	pos int
}

func (t *blobTable) add(data []byte) uint32 {
	if len(t.buf) < t.pos+len(data)+2 {
		t.buf = append(t.buf, make([]byte, (len(data)+2+511)/512*512)...)
	}
	p := t.pos
	binary.LittleEndian.PutUint16(t.buf[p:], uint16(len(data)))
	copy(t.buf[p+2:], data)
	t.pos += len(data) + 2
	return uint32(p)
}

// Header returns the archive header bytes.
func (a *Archive) Header() ([]byte, error) {
	if len(a.Devices) == 0 || len(a.Devices) > 254 || len(a.Configs) > 256 {
		return nil, fmt.Errorf("vmatest: %d devices, %d configs", len(a.Devices), len(a.Configs))
	}
	t := &blobTable{pos: 1}
	h := make([]byte, headerSize)
	be := binary.BigEndian
	copy(h, "VMA\x00")
	be.PutUint32(h[4:], 1)
	copy(h[8:], a.UUID[:])
	be.PutUint64(h[24:], uint64(a.CTime.Unix()))
	for i, c := range a.Configs {
		if len(c.Data) > 65535 || len(c.Name) > 65534 {
			return nil, fmt.Errorf("vmatest: config %q too large", c.Name)
		}
		np := t.add(append([]byte(filepath.Base(c.Name)), 0))
		dp := t.add(c.Data)
		be.PutUint32(h[2044+4*i:], np)
		be.PutUint32(h[2044+1024+4*i:], dp)
	}
	for i, d := range a.Devices {
		at := 4096 + 32*(i+1)
		be.PutUint32(h[at:], t.add(append([]byte(d.Name), 0)))
		be.PutUint64(h[at+8:], uint64(d.size()))
	}
	be.PutUint32(h[48:], headerSize)
	be.PutUint32(h[52:], uint32(t.pos))
	be.PutUint32(h[56:], uint32(headerSize+len(t.buf)))
	h = append(h, t.buf...)
	sum := md5.Sum(h)
	copy(h[32:], sum[:])
	return h, nil
}

func (d Device) size() int64 {
	if d.Size > 0 {
		return d.Size
	}
	return int64(len(d.Data))
}

// Write writes the archive. Clusters of the devices are interleaved one at
// a time, as concurrent backup jobs feed the writer.
func Write(w io.Writer, a Archive) error {
	h, err := a.Header()
	if err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	per := a.EntriesPerExtent
	if per <= 0 || per > blocksPerExtent {
		per = writerEntries
	}
	type entry struct {
		info uint64
		data []byte
	}
	var queued []entry
	flush := func() error {
		eh := make([]byte, 512)
		copy(eh, "VMAE")
		var data []byte
		for i, e := range queued {
			binary.BigEndian.PutUint64(eh[40+8*i:], e.info)
			data = append(data, e.data...)
		}
		binary.BigEndian.PutUint16(eh[6:], uint16(len(data)/blockSize))
		copy(eh[8:], a.UUID[:])
		sum := md5.Sum(eh)
		copy(eh[24:], sum[:])
		queued = queued[:0]
		if _, err := w.Write(eh); err != nil {
			return err
		}
		_, err := w.Write(data)
		return err
	}
	clusters := make([]int64, len(a.Devices))
	total := int64(0)
	for i, d := range a.Devices {
		clusters[i] = (int64(len(d.Data)) + clusterSize - 1) / clusterSize
		if d.Name != "vmstate" && d.Size > 0 {
			clusters[i] = (d.Size + clusterSize - 1) / clusterSize
		}
		total += clusters[i]
	}
	zero := make([]byte, blockSize)
	for c := int64(0); total > 0; c++ {
		for i, d := range a.Devices {
			if c >= clusters[i] {
				continue
			}
			total--
			var mask uint16
			var stored []byte
			for j := range 16 {
				blk := make([]byte, blockSize)
				if off := c*clusterSize + int64(j)*blockSize; off < int64(len(d.Data)) {
					copy(blk, d.Data[off:])
				}
				if string(blk) != string(zero) {
					mask |= 1 << j
					stored = append(stored, blk...)
				}
			}
			info := uint64(mask)<<48 | uint64(i+1)<<32 | uint64(uint32(c))
			queued = append(queued, entry{info, stored})
			if len(queued) == per {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// WriteFile writes the archive to path.
func WriteFile(path string, a Archive) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	if err := Write(bw, a); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Plant is a run of known bytes at a guest-physical address.
type Plant struct {
	Addr int64
	Data []byte
}

// CaptureMigration starts qemu-system-x86_64 (TCG, stopped, no devices)
// with the plants loaded into guest RAM and saves a migration stream with
// `migrate "exec:cat > F"`; it returns F. It skips the test when QEMU is
// missing.
func CaptureMigration(t testing.TB, dir string, memMiB int, plants []Plant) string {
	t.Helper()
	testutil.RequireTool(t, "qemu-system-x86_64")
	sock := filepath.Join(dir, "mon.sock")
	args := []string{"-M", "pc", "-accel", "tcg", "-nodefaults", "-S", "-m", fmt.Sprint(memMiB),
		"-display", "none", "-monitor", "unix:" + sock + ",server=on,wait=off"}
	for i, p := range plants {
		f := filepath.Join(dir, fmt.Sprintf("plant%d.bin", i))
		if err := os.WriteFile(f, p.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-device", fmt.Sprintf("loader,file=%s,addr=0x%x,force-raw=on", f, p.Addr))
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var conn net.Conn
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.Dial("unix", sock)
		if err == nil {
			conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu monitor did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	prompt := func() string {
		conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
		var b strings.Builder
		for !strings.HasSuffix(b.String(), "(qemu) ") {
			c, err := rd.ReadByte()
			if err != nil {
				t.Fatalf("monitor: %v after %q\n%s", err, b.String(), out.String())
			}
			b.WriteByte(c)
		}
		return b.String()
	}
	prompt()
	stream := filepath.Join(dir, "vmstate.bin")
	fmt.Fprintf(conn, "migrate \"exec:cat > %s\"\n", stream)
	if s := prompt(); strings.Contains(strings.ToLower(s), "error") {
		t.Fatalf("migrate: %s", s)
	}
	// HMP migrate returns when the migration is done; make sure of it.
	for range 100 {
		fmt.Fprintf(conn, "info migrate\n")
		if s := prompt(); strings.Contains(s, "completed") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(conn, "quit\n")
	cmd.Wait()
	b, err := os.ReadFile(stream)
	if err != nil || len(b) < 8 || string(b[:4]) != "QEVM" {
		t.Fatalf("migration stream %s not written (%v)\n%s", stream, err, out.String())
	}
	return stream
}
