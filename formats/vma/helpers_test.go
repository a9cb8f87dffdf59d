package vma

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// plantedKey returns a freshly generated PEM private key (never a fixed
// secret in the repository).
func plantedKey(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

// ext4Disk makes a raw ext4 disk of sizeMiB with mkfs.ext4 -d holding
// root/etc/ssl/private/planted.pem, and returns its path and the key.
func ext4Disk(t testing.TB, dir string, sizeMiB int) (string, []byte) {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4")
	key := plantedKey(t)
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "etc/ssl/private"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/ssl/private/planted.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, strconv.Itoa(sizeMiB)+"M")
	return img, key
}

// sparseData is a device image with data, holes and a size that is not a
// multiple of the 64 KiB cluster: bytes in a few blocks, zero elsewhere.
func sparseData(size int) []byte {
	b := make([]byte, size)
	put := func(off int, s string) {
		if off >= 0 && off+len(s) <= size {
			copy(b[off:], s)
		}
	}
	put(0, "first block of the second drive")
	put(3*4096+100, "inside cluster 0, block 3")
	put(5*65536+15*4096, "last block of cluster 5")
	put(size-20, "tail of the device!")
	return b
}

const testConf = "boot: order=scsi0\ncores: 2\nmemory: 2048\nname: web01\nscsi0: local-lvm:vm-100-disk-0,size=8M\n"

// fixture writes a VMA archive with an ext4 drive, a sparse drive and a
// config blob, and returns its path and the device contents by name.
func fixture(t testing.TB, dir string) (string, map[string][]byte, []byte, time.Time) {
	t.Helper()
	rawPath, key := ext4Disk(t, dir, 4)
	raw, err := os.ReadFile(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	devs := map[string][]byte{"drive-scsi0": raw, "drive-virtio1": sparseData(1<<20 + 5000)}
	ctime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	a := vmatest.Archive{
		UUID:    [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		CTime:   ctime,
		Configs: []vmatest.ConfigFile{{Name: "qemu-server.conf", Data: []byte(testConf)}},
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: devs["drive-scsi0"]}, {Name: "drive-virtio1", Data: devs["drive-virtio1"]}},
	}
	p := filepath.Join(dir, "vzdump-qemu-100-2024_05_06-07_08_09.vma")
	if err := vmatest.WriteFile(p, a); err != nil {
		t.Fatal(err)
	}
	return p, devs, key, ctime
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	return sha256.Sum256(testutil.FileSnapshot(t, path))
}

// readAll reads a whole disk through ReadAt in odd-sized chunks.
func readAll(t testing.TB, d model.Disk) []byte {
	t.Helper()
	out := make([]byte, d.Size())
	const chunk = 50000
	for off := int64(0); off < d.Size(); off += chunk {
		end := min(off+chunk, d.Size())
		if n, err := d.ReadAt(out[off:end], off); n != int(end-off) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, end-off, n, err)
		}
	}
	return out
}

// fromExtents rebuilds a disk from its extents only: holes stay zero.
func fromExtents(t testing.TB, d model.Disk) ([]byte, []model.Extent) {
	t.Helper()
	ext, err := model.CollectExtents(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, d.Size())
	last := int64(-1)
	for _, e := range ext {
		if e.Offset < last {
			t.Fatalf("extents out of order at %d", e.Offset)
		}
		last = e.End()
		if _, err := d.ReadAt(out[e.Offset:e.End()], e.Offset); err != nil {
			t.Fatalf("read extent %+v: %v", e, err)
		}
	}
	return out, ext
}

func view(t testing.TB, im *model.Image, name string) model.View {
	t.Helper()
	for _, v := range im.Views {
		if v.Name == name {
			return v
		}
	}
	var names []string
	for _, v := range im.Views {
		names = append(names, v.Name)
	}
	t.Fatalf("no view %q in %q", name, names)
	return model.View{}
}
