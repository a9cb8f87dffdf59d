package ova

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

func FuzzOVF(f *testing.F) {
	f.Add([]byte(ovfText("disk1.vmdk", `ovf:compression="gzip" ovf:chunkSize="1000"`, 1<<30)))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseOVF(b)
		if err != nil {
			return
		}
		for _, fl := range env.Files {
			if fl.Href == "" || fl.ChunkSize < 0 {
				t.Fatalf("accepted file %+v", fl)
			}
		}
	})
}

// TestWriteSeeds regenerates the committed seed corpus (make seeds).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOVF")
	for i, s := range []string{
		ovfText("disk1.vmdk", "", 1<<30),
		ovfText("disk1.vmdk", `ovf:size="123" ovf:compression="gzip" ovf:chunkSize="7516192768"`, 20),
		`<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2"><References><File href="a.vmdk" id="f"/></References><DiskSection><Disk diskId="d" fileRef="f" capacity="4" capacityAllocationUnits="byte * 2^30"/></DiskSection></Envelope>`,
	} {
		if err := fuzzcorpus.Write(dir, fmt.Sprintf("seed-%d", i), []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzTarball probes and opens arbitrary bytes as a tarball of disks, a
// disk compressed whole or a zip of disks, its disks read by the raw
// reader. It must never panic, and never inflate or spool past its
// bound. The seeds are a plain tar and a tar.gz whose disk member starts
// with a partition table, that disk gzip'd, and a zip of it deflated and
// stored. An OVA (a plain tar whose first member is its .ovf) opens as
// one: seeds with the disk stored, gzip'd in chunks, and a manifest.
func FuzzTarball(f *testing.F) {
	disk := make([]byte, 8192)
	disk[446], disk[450], disk[454], disk[458] = 0x80, 0x83, 1, 4
	disk[510], disk[511] = 0x55, 0xAA
	copy(disk[4096:], "api_token = FUZZ-SEED")
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "metadata.json", Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o644, Size: int64(len(disk))})
	tw.Write(disk)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	var gzDisk bytes.Buffer
	zw = gzip.NewWriter(&gzDisk)
	zw.Write(disk)
	zw.Close()
	var zipped bytes.Buffer
	zipw := zip.NewWriter(&zipped)
	for _, m := range []uint16{zip.Deflate, zip.Store} {
		w, _ := zipw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("disk%d.raw", m), Method: m})
		w.Write(disk)
	}
	zipw.Close()
	f.Add(plain.Bytes())
	for _, attrs := range []string{"", `ovf:compression="gzip" ovf:chunkSize="1000"`} {
		var ova bytes.Buffer
		tw := tar.NewWriter(&ova)
		ovf := ovfText("disk.raw", attrs, int64(len(disk)))
		tw.WriteHeader(&tar.Header{Name: "vm.ovf", Mode: 0o644, Size: int64(len(ovf))})
		tw.Write([]byte(ovf))
		if attrs == "" {
			tw.WriteHeader(&tar.Header{Name: "disk.raw", Mode: 0o644, Size: int64(len(disk))})
			tw.Write(disk)
		} else {
			var g bytes.Buffer
			zw := gzip.NewWriter(&g)
			zw.Write(disk)
			zw.Close()
			for i, b := 0, g.Bytes(); len(b) > 0; i++ {
				n := min(len(b), 1000)
				tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("disk.raw.%09d", i), Mode: 0o644, Size: int64(n)})
				tw.Write(b[:n])
				b = b[n:]
			}
		}
		tw.WriteHeader(&tar.Header{Name: "vm.mf", Mode: 0o644, Size: 5})
		tw.Write([]byte("SHA1("))
		tw.Close()
		f.Add(ova.Bytes())
	}
	f.Add(gz.Bytes())
	f.Add(gzDisk.Bytes())
	f.Add(zipped.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		head := data[:min(len(data), 4096)]
		open := NewTarball
		switch {
		case Probe(head, r, int64(len(data))):
			open = New
		case ProbeTarball(head, r, int64(len(data))):
		case ProbeCompressed(head, r, int64(len(data))):
			open = NewCompressed
		case ProbeZip(head, r, int64(len(data))):
			open = NewZip
		default:
			return
		}
		const bound = 4 << 20
		im, err := open(context.Background(), r, int64(len(data)), "fuzz", model.Options{Open: raw.New, MaxInflate: bound})
		if err != nil {
			return
		}
		defer im.Close()
		for _, v := range im.Views {
			if v.Disk.Size() > bound {
				t.Fatalf("view %s: %d bytes, past the %d-byte bound", v.ID, v.Disk.Size(), bound)
			}
			v.Disk.ReadAt(make([]byte, 4096), 0)
		}
	})
}
