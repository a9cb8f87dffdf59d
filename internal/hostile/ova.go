package hostile

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
)

// OVAGzipBomb writes an OVA (a ustar archive with an OVF descriptor) whose
// one disk is gzip-compressed (ovf:compression="gzip") and inflates to
// 10 GiB: 160 concatenated gzip members of 64 MiB each (gzip readers join
// members into one stream), the first holding HostileSecret, the rest only
// zeros. The OVF claims a 16 GiB disk, so a decompressed size up to that is
// plausible. About 10 MB on disk.
func OVAGzipBomb(_ context.Context, dir string) (string, error) {
	const (
		memberSize = 64 << 20
		members    = 160
		capacity   = int64(16) << 30
	)
	zeros, err := gzipBytes(make([]byte, memberSize))
	if err != nil {
		return "", err
	}
	first := make([]byte, memberSize)
	copy(first[1<<20:], HostileSecret().Credentials())
	head, err := gzipBytes(first)
	if err != nil {
		return "", err
	}
	diskLen := int64(len(head)) + int64(members-1)*int64(len(zeros))
	ovf := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="disk1.img" ovf:id="file1" ovf:compression="gzip"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info><Name>vm</Name></VirtualSystem>
</Envelope>
`, capacity)
	path := filepath.Join(dir, "gzip-bomb.ova")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: "vm.ovf", Mode: 0o644, Size: int64(len(ovf)), Format: tar.FormatUSTAR}); err != nil {
		return "", err
	}
	if _, err := tw.Write([]byte(ovf)); err != nil {
		return "", err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "disk1.img", Mode: 0o644, Size: diskLen, Format: tar.FormatUSTAR}); err != nil {
		return "", err
	}
	if _, err := tw.Write(head); err != nil {
		return "", err
	}
	for range members - 1 {
		if _, err := tw.Write(zeros); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return path, f.Close()
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
