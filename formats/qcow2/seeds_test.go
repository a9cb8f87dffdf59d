package qcow2

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestWriteSeeds regenerates the committed seed corpora in testdata/fuzz/
// from small images made by qemu-img and qemu-io. It runs only with
// IMGAUDIT_WRITE_SEEDS=1 (make seeds).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to regenerate the fuzz seed corpora")
	}
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	img := func(name, opts, size string, extra ...string) string {
		p := filepath.Join(dir, name)
		args := []string{"create", "-q", "-f", "qcow2"}
		if opts != "" {
			args = append(args, "-o", opts)
		}
		testutil.Run(t, "qemu-img", append(append(args, extra...), p, size)...)
		return p
	}
	io := func(p string, cmds ...string) {
		args := []string{"-f", "qcow2"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		testutil.Run(t, "qemu-io", append(args, p)...)
	}
	plain := img("plain.qcow2", "cluster_size=512", "64K")
	io(plain, "write -P 0x41 0 1k", "write -P 0x42 5000 700", "write -z 0 512")
	v2 := img("v2.qcow2", "compat=0.10,cluster_size=512", "32K")
	io(v2, "write -P 0x43 1024 2k")
	zstd := img("zstd.qcow2", "cluster_size=512,compression_type=zstd,refcount_bits=2", "16K")
	io(zstd, "write -c -P 0x44 0 512", "write -c -P 0x45 512 512", "write -P 0x46 0 256")
	zlib := img("zlib.qcow2", "cluster_size=512,refcount_bits=64", "16K")
	io(zlib, "write -c -P 0x47 1024 512", "write -c -P 0x48 2048 512")
	snaps := img("snaps.qcow2", "cluster_size=512", "16K")
	io(snaps, "write -P 0x49 0 1k")
	testutil.Run(t, "qemu-img", "snapshot", "-c", "first", snaps)
	io(snaps, "write -P 0x4a 512 1k", "write -b -P 0x51 0 1024")
	testutil.Run(t, "qemu-img", "snapshot", "-c", "second-snapshot", snaps)
	io(snaps, "write -P 0x4b 4k 1k")
	backed := img("backed.qcow2", "cluster_size=512", "64K", "-b", "plain.qcow2", "-F", "qcow2")
	io(backed, "write -P 0x4c 8k 1k")
	datafile := img("datafile.qcow2", "cluster_size=512,data_file="+filepath.Join(dir, "d.raw")+",data_file_raw=on", "8K")
	ext := img("ext.qcow2", "cluster_size=16k,extended_l2=on", "64K")

	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(fuzz, name string, values ...any) {
		s, err := fuzzcorpus.Encode(values...)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) > 64<<10 {
			t.Fatalf("seed %s/%s is %d bytes", fuzz, name, len(s))
		}
		if err := fuzzcorpus.Write(filepath.Join("testdata", "fuzz", fuzz), name, values...); err != nil {
			t.Fatal(err)
		}
	}

	for _, p := range []string{plain, v2, zstd, backed, datafile, ext, snaps} {
		b := read(p)
		write("FuzzHeader", filepath.Base(p), b[:min(len(b), 1024)])
	}
	for _, p := range []string{plain, v2, zstd, zlib, snaps, backed, datafile} {
		write("FuzzL1L2Walk", filepath.Base(p), read(p))
	}
	b := read(snaps)
	n := binary.BigEndian.Uint32(b[60:])
	off := binary.BigEndian.Uint64(b[64:])
	write("FuzzSnapshotTable", "two-snapshots", b[off:min(uint64(len(b)), off+512)], uint16(n))
	write("FuzzSnapshotTable", "claims-more", b[off:min(uint64(len(b)), off+200)], uint16(9))
}
