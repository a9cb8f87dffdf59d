// Command mkseeds writes the seeds of FuzzXFSOpen: tiny XFS images (v5 and
// v4, one 16 MiB AG) made by mkfs.xfs from a protofile, as lists of their
// non-zero chunks outside the log (see sparseDevice in fuzz_test.go).
//
//	go run ./testdata/mkseeds testdata/fuzz/FuzzXFSOpen
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

const deviceSize = 16 << 20

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: mkseeds OUTDIR")
	}
	out := os.Args[1]
	tmp, err := os.MkdirTemp("", "xfs-seeds")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	secret := filepath.Join(tmp, "secret")
	if err := os.WriteFile(secret, []byte("password=hunter2\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	proto := filepath.Join(tmp, "proto")
	// A directory with a file, a symlink to it, and a short-form root.
	p := fmt.Sprintf("/dev/null\n0 0\nd--755 0 0\netc d--755 0 0\nsecret ---600 0 0 %s\n$\nl l--777 0 0 etc/secret\n$\n", secret)
	if err := os.WriteFile(proto, []byte(p), 0o644); err != nil {
		log.Fatal(err)
	}
	for _, c := range []struct{ name, crc string }{{"tiny-v5", "crc=1"}, {"tiny-v4", "crc=0"}} {
		img := filepath.Join(tmp, c.name)
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Truncate(img, deviceSize); err != nil {
			log.Fatal(err)
		}
		cmd := exec.Command("mkfs.xfs", "-q", "-f", "-m", c.crc, "-p", proto, img)
		// mkfs.xfs refuses filesystems under 300 MB outside xfstests.
		cmd.Env = append(os.Environ(), "TEST_DIR="+tmp, "TEST_DEV="+img, "QA_CHECK_FS=1")
		if b, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("mkfs.xfs %s: %v\n%s", c.crc, err, b)
		}
		data, err := os.ReadFile(img)
		if err != nil {
			log.Fatal(err)
		}
		seed := encode(data)
		if err := fuzzcorpus.Write(out, c.name, seed); err != nil {
			log.Fatal(err)
		}
	}
}

// encode lists the non-zero bytes outside the log as chunks: a run of 32
// zero bytes (at a 32-byte boundary) ends a chunk.
func encode(img []byte) []byte {
	be := binary.BigEndian
	bs := int64(be.Uint32(img[4:]))
	logStart, logBlocks := int64(be.Uint64(img[0x30:])), int64(be.Uint32(img[0x60:]))
	inLog := func(off int64) bool { return off >= logStart*bs && off < (logStart+logBlocks)*bs }
	const unit = 32
	zero := make([]byte, unit)
	empty := func(off int64) bool { return inLog(off) || bytes.Equal(img[off:off+unit], zero) }
	var out []byte
	for off := int64(0); off < int64(len(img)); {
		if empty(off) {
			off += unit
			continue
		}
		end := off
		for end < int64(len(img)) && end-off < 32<<10 && !empty(end) {
			end += unit
		}
		chunk := bytes.TrimRight(img[off:end], "\x00")
		out = be.AppendUint32(out, uint32(off))
		out = be.AppendUint16(out, uint16(len(chunk)))
		out = append(out, chunk...)
		off = end
	}
	return out
}
