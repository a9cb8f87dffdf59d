package hostile

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// ParallelsParentAbsolute: a Parallels disk bundle whose
// DiskDescriptor.xml gives the top image (made by qemu-img) a parent
// snapshot image at the absolute path of a planted host file (a Parallels
// image qemu-img made of it).
func ParallelsParentAbsolute(ctx context.Context, dir string) (string, error) {
	shadow, err := plantHost(dir, "shadow.raw")
	if err != nil {
		return "", err
	}
	parent := filepath.Join(HostDir(dir), "parent.hds")
	if err := run(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", "parallels", shadow, parent); err != nil {
		return "", err
	}
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	const top = "disk.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds"
	p := filepath.Join(images, top)
	if err := run(ctx, "qemu-img", "create", "-q", "-f", "parallels", p, "1M"); err != nil {
		return "", err
	}
	desc := fmt.Sprintf(`<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
  <StorageData><Storage><Start>0</Start><End>2048</End><Blocksize>2048</Blocksize>
    <Image><GUID>{00000000-0000-0000-0000-00000000000a}</GUID><Type>Compressed</Type><File>%s</File></Image>
    <Image><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID><Type>Compressed</Type><File>%s</File></Image>
  </Storage></StorageData>
  <Snapshots>
    <Shot><GUID>{00000000-0000-0000-0000-00000000000a}</GUID><ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID></Shot>
    <Shot><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID><ParentGUID>{00000000-0000-0000-0000-00000000000a}</ParentGUID></Shot>
  </Snapshots>
</Parallels_disk_image>
`, parent, top)
	return p, os.WriteFile(filepath.Join(images, "DiskDescriptor.xml"), []byte(desc), 0o644)
}

// ParallelsAlias: a Parallels image (qemu-img made, 1 MiB clusters) of
// one written cluster, whose BAT is then grown to the reader's cap, 16 Mi
// entries, every one mapping that cluster: a 64 MiB file claiming a
// 16 TiB disk that reads one host cluster 16 Mi times.
func ParallelsAlias(ctx context.Context, dir string) (string, error) {
	const cluster, entries = 1 << 20, 16 << 20
	path := filepath.Join(dir, "alias.hds")
	src := filepath.Join(dir, "alias-cluster.bin")
	data := randomBytes(13, cluster)
	copy(data[1024:], HostileSecret().Credentials())
	if err := os.WriteFile(src, data, 0o644); err != nil {
		return "", err
	}
	defer os.Remove(src)
	small := filepath.Join(dir, "alias-small.hds")
	defer os.Remove(small)
	if err := run(ctx, "qemu-img", "create", "-q", "-f", "parallels", "-o", "cluster_size=1M", small, "1M"); err != nil {
		return "", err
	}
	if err := run(ctx, "qemu-io", "-f", "parallels", "-c", "write -q -s "+src+" 0 1M", small); err != nil {
		return "", err
	}
	b, err := os.ReadFile(small)
	if err != nil {
		return "", err
	}
	le := binary.LittleEndian
	tracks := le.Uint32(b[28:])
	e := le.Uint32(b[64:])
	if tracks != cluster/512 || e == 0 {
		return "", fmt.Errorf("%s: qemu-img wrote %d-sector clusters, first entry %d", small, tracks, e)
	}
	// The data area moves past the grown BAT: the cluster is copied to
	// the first cluster boundary after it.
	batEnd := int64(64 + 4*entries)
	dataStart := (batEnd + cluster - 1) / cluster * cluster
	out := make([]byte, dataStart+cluster)
	copy(out, b[:64])
	le.PutUint32(out[32:], entries)
	le.PutUint64(out[36:], uint64(entries)*uint64(tracks))
	le.PutUint32(out[48:], uint32(dataStart/512))
	for i := range int64(entries) {
		le.PutUint32(out[64+4*i:], uint32(dataStart/cluster))
	}
	copy(out[dataStart:], b[int64(e)*cluster:int64(e+1)*cluster])
	return path, os.WriteFile(path, out, 0o644)
}
