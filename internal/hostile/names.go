package hostile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// The cases of issue 16 section 1 lay out two directories under the case's
// dir: ImagesDir, which holds the hostile target (and so is its allowed
// root), and HostDir, outside it, which holds a planted host file: a fake
// /etc/shadow line and HostSecret as AWS credentials. An image that gets a
// reader to open a file of HostDir makes HostSecret appear in the report.

// ImagesDir is the directory of a name case's target.
func ImagesDir(dir string) string { return filepath.Join(dir, "images") }

// HostDir is the directory of a name case's planted host files, outside
// every allowed root of its target.
func HostDir(dir string) string { return filepath.Join(dir, "host") }

// HostSecret is the secret planted in the host files that hostile images
// name: it must never be reported.
func HostSecret() Secret { return NewSecret(3) }

// plantHost writes the host file name under HostDir(dir): 1 MiB whose
// first bytes are a shadow line and HostSecret's credentials file, and
// returns its absolute path.
func plantHost(dir, name string) (string, error) {
	host := HostDir(dir)
	if err := os.MkdirAll(host, 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 1<<20)
	copy(b, "root:$6$hostile$"+HostSecret().Value+":19000:0:99999:7:::\n"+HostSecret().Credentials())
	p, err := filepath.Abs(filepath.Join(host, name))
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, b, 0o600)
}

// imagesDir makes ImagesDir(dir) and returns it.
func imagesDir(dir string) (string, error) {
	d := ImagesDir(dir)
	return d, os.MkdirAll(d, 0o755)
}

// backingNamed writes images/NAME.qcow2, a 1 MiB qcow2 overlay whose
// backing file name (qemu-img create -u: not opened) is backing, declared
// raw.
func backingNamed(ctx context.Context, dir, image, backing string) (string, error) {
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(images, image)
	return p, run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", p, "1M")
}

// BackingAbsolute: a qcow2 whose backing name is the absolute path of a
// planted host file.
func BackingAbsolute(ctx context.Context, dir string) (string, error) {
	shadow, err := plantHost(dir, "shadow")
	if err != nil {
		return "", err
	}
	return backingNamed(ctx, dir, "absolute.qcow2", shadow)
}

// QEDBackingAbsolute: a QED image (qemu-img create -u) whose backing
// name is the absolute path of a planted host file.
func QEDBackingAbsolute(ctx context.Context, dir string) (string, error) {
	shadow, err := plantHost(dir, "shadow")
	if err != nil {
		return "", err
	}
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(images, "absolute.qed")
	return p, run(ctx, "qemu-img", "create", "-q", "-f", "qed", "-u", "-b", shadow, "-F", "raw", p, "1M")
}

// BackingDotDot: a qcow2 whose backing name climbs out of its directory.
func BackingDotDot(ctx context.Context, dir string) (string, error) {
	if _, err := plantHost(dir, "shadow"); err != nil {
		return "", err
	}
	return backingNamed(ctx, dir, "dotdot.qcow2", "../host/shadow")
}

// BackingSymlink: a qcow2 whose backing name is a symlink beside it that
// leads out of its directory.
func BackingSymlink(ctx context.Context, dir string) (string, error) {
	if _, err := plantHost(dir, "shadow"); err != nil {
		return "", err
	}
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	if err := os.Symlink("../host/shadow", filepath.Join(images, "link.raw")); err != nil {
		return "", err
	}
	return backingNamed(ctx, dir, "symlink.qcow2", "link.raw")
}

// BackingFIFO: a qcow2 whose backing file is a named pipe beside it
// (opening a FIFO for reading waits for a writer, forever).
func BackingFIFO(ctx context.Context, dir string) (string, error) {
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	if err := syscall.Mkfifo(filepath.Join(images, "fifo"), 0o644); err != nil {
		return "", fmt.Errorf("mkfifo: %w", err)
	}
	return backingNamed(ctx, dir, "fifo.qcow2", "fifo")
}

// BackingDevZero: a qcow2 whose backing file is /dev/zero (an endless
// device); its case scans with /dev as a backing root, so that the file
// type, not the root, is what refuses it.
func BackingDevZero(ctx context.Context, dir string) (string, error) {
	return backingNamed(ctx, dir, "devzero.qcow2", "/dev/zero")
}

// BackingProc: a qcow2 whose backing file is /proc/self/environ (the
// scanner's own environment); its case scans with /proc as a backing
// root.
func BackingProc(ctx context.Context, dir string) (string, error) {
	return backingNamed(ctx, dir, "proc.qcow2", "/proc/self/environ")
}

// dataFileNamed writes images/IMAGE, a 1 MiB qcow2 whose external data
// file (data_file_raw) is named dataName. qemu-img resolves a relative
// data file name against its working directory, so it runs in the images
// directory: the data file is made where the name leads, qemu-io writes
// the guest's 1 MiB through it, and the file is then replaced by the
// planted host file, as if the name had led to an existing host file.
func dataFileNamed(ctx context.Context, dir, image, dataName, hostName string) (string, error) {
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(HostDir(dir), 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(images, image)
	if err := runIn(ctx, images, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file="+dataName+",data_file_raw=on", p, "1M"); err != nil {
		return "", err
	}
	if err := runIn(ctx, images, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0 0 1M", p); err != nil {
		return "", err
	}
	_, err = plantHost(dir, hostName)
	return p, err
}

// DataFileAbsolute: a qcow2 whose external data file name is the absolute
// path of a planted host file.
func DataFileAbsolute(ctx context.Context, dir string) (string, error) {
	abs, err := filepath.Abs(filepath.Join(HostDir(dir), "data.raw"))
	if err != nil {
		return "", err
	}
	return dataFileNamed(ctx, dir, "data-absolute.qcow2", abs, "data.raw")
}

// DataFileDotDot: a qcow2 whose external data file name climbs out of its
// directory.
func DataFileDotDot(ctx context.Context, dir string) (string, error) {
	return dataFileNamed(ctx, dir, "data-dotdot.qcow2", "../host/data.raw", "data.raw")
}

// DataFileSymlink: a qcow2 whose external data file is a symlink beside
// it that leads out of its directory.
func DataFileSymlink(ctx context.Context, dir string) (string, error) {
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(HostDir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink("../host/data.raw", filepath.Join(images, "data-link.raw")); err != nil {
		return "", err
	}
	return dataFileNamed(ctx, dir, "data-symlink.qcow2", "data-link.raw", "data.raw")
}

// VMDKParentAbsolute: a VMDK delta whose parentFileNameHint is the
// absolute path of a planted host VMDK (qemu-img converts the planted file
// to a VMDK, and makes the delta with it as backing file).
func VMDKParentAbsolute(ctx context.Context, dir string) (string, error) {
	shadow, err := plantHost(dir, "shadow.raw")
	if err != nil {
		return "", err
	}
	parent := filepath.Join(HostDir(dir), "parent.vmdk")
	if err := run(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", shadow, parent); err != nil {
		return "", err
	}
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	p := filepath.Join(images, "delta.vmdk")
	return p, run(ctx, "qemu-img", "create", "-q", "-f", "vmdk", "-F", "vmdk", "-b", parent, p)
}

// LayerBackingHost: a docker save tarball (written with
// go-containerregistry) of one layer holding disk/disk.qcow2, a qcow2 made
// by qemu-img whose backing name is the absolute path of a planted host
// file. The disk is spooled out of the layer to be read, and must not
// resolve the name on the scanning host.
func LayerBackingHost(ctx context.Context, dir string) (string, error) {
	shadow, err := plantHost(dir, "shadow")
	if err != nil {
		return "", err
	}
	images, err := imagesDir(dir)
	if err != nil {
		return "", err
	}
	disk := filepath.Join(dir, "disk.qcow2")
	if err := run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", shadow, "-F", "raw", disk, "1M"); err != nil {
		return "", err
	}
	body, err := os.ReadFile(disk)
	if err != nil {
		return "", err
	}
	if err := os.Remove(disk); err != nil {
		return "", err
	}
	p := filepath.Join(images, "image.tar")
	return p, writeDockerSave(p, "example.com/hostile/vm:1", []layerEntry{{name: "disk/"}, {name: "disk/disk.qcow2", body: body}})
}
