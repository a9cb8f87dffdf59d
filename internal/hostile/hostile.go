// Package hostile writes crafted inputs that attack the scanner: images
// that name host files outside their allowed roots (by absolute path, by
// ../, through a symlink, as a qcow2 data file or a VMDK parent, from
// inside a container layer) or files that are no regular files (a FIFO,
// /dev/zero, /proc); small files
// that claim huge amounts of work (aliased qcow2 tables, ELF cores and kdump
// files whose segments all read one block, migration streams of fill pages,
// gzip bombs inside an OVA, FAT directories whose entries all share one
// chain, ext4 and XFS inodes that share one extent tree, a squashfs
// metadata block that inflates to 900 MiB, xz files whose dictionaries
// fill 128 MiB each, on a disk and in two container layers) and data that attacks the detectors (adversarial
// repetition, millions of matches, also inside gzip files). Each case is
// one entry of Cases; the hostile-input suite (suite_test.go) scans every one beside a good target
// and checks that the scan stays bounded, and `go run
// ./internal/hostile/cmd/genhostile DIR` writes them all out for manual
// trials.
//
// Images are made with the real tools where a tool can make them (qemu-img
// and qemu-io for qcow2), then edited byte by byte for the hostile part;
// formats no tool here writes (ELF cores and kdump files come from a running
// guest) are written from their specifications.
package hostile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
)

// Case is one crafted input.
type Case struct {
	// Name identifies the case (and names its files).
	Name string
	// What says, in a sentence, what the input claims and what it is.
	What string
	// Tools are the external programs Make runs.
	Tools []string
	// Make writes the case's files into dir and returns the path of the
	// target to scan.
	Make func(ctx context.Context, dir string) (string, error)
	// Roots are the --backing-root directories to scan the case with
	// (besides the target's own directory).
	Roots []string
}

// Cases lists every crafted input of issue 16 sections 1 and 2, in the
// order of the issue, then the filesystems that claim work out of
// proportion to their size.
func Cases() []Case {
	qemu := []string{"qemu-img"}
	return []Case{
		{Name: "backing-absolute", Tools: qemu, Make: BackingAbsolute,
			What: "a qcow2 whose backing file name is the absolute path of a planted host credential"},
		{Name: "backing-dotdot", Tools: qemu, Make: BackingDotDot,
			What: "a qcow2 whose backing file name is ../host/shadow"},
		{Name: "backing-symlink", Tools: qemu, Make: BackingSymlink,
			What: "a qcow2 whose backing file is a symlink beside it that leads out of its directory"},
		{Name: "data-file-absolute", Tools: []string{"qemu-img", "qemu-io"}, Make: DataFileAbsolute,
			What: "a qcow2 whose external data file name is the absolute path of a planted host credential"},
		{Name: "data-file-dotdot", Tools: []string{"qemu-img", "qemu-io"}, Make: DataFileDotDot,
			What: "a qcow2 whose external data file name is ../host/data.raw"},
		{Name: "data-file-symlink", Tools: []string{"qemu-img", "qemu-io"}, Make: DataFileSymlink,
			What: "a qcow2 whose external data file is a symlink beside it that leads out of its directory"},
		{Name: "vmdk-parent-absolute", Tools: qemu, Make: VMDKParentAbsolute,
			What: "a VMDK delta whose parentFileNameHint is the absolute path of a planted host VMDK"},
		{Name: "qed-backing-absolute", Tools: qemu, Make: QEDBackingAbsolute,
			What: "a QED image whose backing file name is the absolute path of a planted host credential"},
		{Name: "parallels-parent-absolute", Tools: qemu, Make: ParallelsParentAbsolute,
			What: "a Parallels disk bundle whose DiskDescriptor.xml names the absolute path of a planted host image as the top image's parent"},
		{Name: "layer-backing-host", Tools: qemu, Make: LayerBackingHost,
			What: "a docker save tarball whose layer holds a qcow2 naming a host file as its backing file"},
		{Name: "backing-fifo", Tools: qemu, Make: BackingFIFO,
			What: "a qcow2 whose backing file is a named pipe beside it"},
		{Name: "backing-dev-zero", Tools: qemu, Make: BackingDevZero, Roots: []string{"/dev"},
			What: "a qcow2 whose backing file is /dev/zero, scanned with --backing-root /dev"},
		{Name: "backing-proc", Tools: qemu, Make: BackingProc, Roots: []string{"/proc"},
			What: "a qcow2 whose backing file is /proc/self/environ, scanned with --backing-root /proc"},
		{Name: "qcow2-alias-current", Tools: []string{"qemu-img", "qemu-io"}, Make: QCOW2AliasCurrent,
			What: "a 384 KiB qcow2 whose 1 TiB current view maps every guest cluster to one host cluster"},
		{Name: "qcow2-alias-vmstate", Tools: []string{"qemu-img", "qemu-io"}, Make: QCOW2AliasVMState,
			What: "a qcow2 snapshot whose 1 TiB saved VM state repeats one host cluster of page records"},
		{Name: "parallels-alias", Tools: []string{"qemu-img", "qemu-io"}, Make: ParallelsAlias,
			What: "a 65 MiB Parallels image whose 16 Mi BAT entries (16 TiB) all map one host cluster"},
		{Name: "elf-aliased-segments", Make: ELFAliasedSegments,
			What: "an ELF core with 65,534 program headers, all reading the file from offset 0 (240 GB claimed)"},
		{Name: "kdump-aliased-pages", Make: KdumpAliasedPages,
			What: "a kdump file with 100,000 page descriptors of 1 MiB, all pointing at one block"},
		{Name: "elf-truncated", Make: ELFTruncatedDump,
			What: "an ELF core cut short: a 64 MiB segment of which the file holds 1 MiB"},
		{Name: "lime-truncated", Make: LiMETruncatedCapture,
			What: "a LiME capture cut short: a 64 MiB range of which the file holds 1 MiB"},
		{Name: "qemu-fill-pages", Make: QEMUFillPages,
			What: "a QEMU migration stream of 16 Mi fill pages claiming 64 GiB of RAM"},
		{Name: "ova-gzip-bomb", Make: OVAGzipBomb,
			What: "a 10 MB OVA whose gzip-compressed disk inflates to 10 GiB of zeros"},
		{Name: "akia-repeated", Make: AKIARepeated,
			What: "64 MiB of the keyword AKIA repeated, with no key after it"},
		{Name: "one-hit-repeated", Make: OneHitRepeated,
			What: "64 MiB of one AWS key ID repeated on every line"},
		{Name: "distinct-hits", Make: DistinctHits,
			What: "32 MiB of distinct AWS key IDs, one per line"},
		{Name: "repeated-line", Make: RepeatedLine,
			What: "256 MiB of one credentials line matched by several rules"},
		{Name: "fat-cross-linked", Tools: []string{"mkfs.fat", "mmd"}, Make: FATCrossLinked,
			What: "a 64 MiB FAT32 whose 524,286 directory entries all start one chain of 96,000 clusters"},
		{Name: "ext4-shared-index", Tools: []string{"mkfs.ext4", "debugfs"}, Make: Ext4SharedIndex,
			What: "a 64 MiB ext4 whose 20,000 empty files share one extent tree of depth 4, 4 * 10^7 index blocks each"},
		{Name: "xfs-shared-btree", Tools: []string{"mkfs.xfs", "xfs_db"}, Make: XFSSharedBtree,
			What: "a 300 MiB XFS whose 4,000 empty files share one extent B+tree of level 4, 4 * 10^9 blocks each"},
		{Name: "squashfs-id-bomb", Tools: []string{"mksquashfs", "zstd"}, Make: SquashfsIDBomb,
			What: "a 33 KB squashfs whose id table block is a zstd frame of 900 MiB of zeros"},
		{Name: "xz-dictionaries", Tools: []string{"xz", "mkfs.ext4"}, Make: XzDictionaries,
			What: "a 32 MiB ext4 of 16 xz files whose 128 MiB dictionaries each fill as they decode (150 MB from 1.6 MB)"},
		{Name: "layers-xz-dictionaries", Tools: []string{"xz"}, Make: LayersXzDictionaries,
			What: "a docker save tarball of 2 layers of 8 such xz files each, which the registry reads side by side"},
		{Name: "layers-records", Make: LayersRecords,
			What: "a docker save tarball of 16 layers, each adding 40 MiB of dpkg md5sums that pack to almost nothing"},
		{Name: "layers-records-dictionaries", Tools: []string{"xz"}, Make: LayersRecordsDictionaries,
			What: "a docker save tarball of 2 layers, each of 63 MiB of dpkg md5sums and 8 such xz files, read side by side"},
		{Name: "gzip-distinct-hits", Tools: []string{"gzip", "mkfs.ext4"}, Make: GzipDistinctHits,
			What: "a 200 MiB ext4 of 4 gzip files, each of 32 MiB of distinct AWS key IDs"},
	}
}

// Secret is a planted secret: its value and the fingerprint a report gives it.
type Secret struct {
	KeyID, Value string
}

// Fingerprint is the report's fingerprint of the secret value.
func (s Secret) Fingerprint() string {
	sum := sha256.Sum256([]byte(s.Value))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Credentials is the secret as an AWS credentials file.
func (s Secret) Credentials() string {
	return "[default]\naws_access_key_id = " + s.KeyID + "\naws_secret_access_key = " + s.Value + "\n"
}

// NewSecret returns an AWS key pair made from seed: the same seed gives the
// same pair, so a case and its test agree without sharing state.
func NewSecret(seed uint64) Secret {
	rng := rand.New(rand.NewPCG(seed, 0x1a2b3c))
	return Secret{KeyID: "AKIA" + pick(rng, upperDigits, 16), Value: pick(rng, base64Chars, 40)}
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func pick(rng *rand.Rand, set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[rng.IntN(len(set))]
	}
	return string(b)
}

// GoodSecret is the secret planted in the good target.
func GoodSecret() Secret { return NewSecret(1) }

// HostileSecret is the secret planted in the hostile inputs that carry one.
func HostileSecret() Secret { return NewSecret(2) }

// Good writes the good target: a small qcow2 (made by qemu-img from a raw
// image) that holds GoodSecret, to be scanned beside each hostile case.
func Good(ctx context.Context, dir string) (string, error) {
	rawPath := filepath.Join(dir, "good.raw")
	data := make([]byte, 1<<20)
	copy(data[64<<10:], GoodSecret().Credentials())
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "good.qcow2")
	if err := run(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", rawPath, out); err != nil {
		return "", err
	}
	return out, os.Remove(rawPath)
}

// run runs a tool, returning its output in the error when it fails.
func run(ctx context.Context, name string, args ...string) error {
	return runIn(ctx, "", name, args...)
}

// runIn is run in the working directory dir ("" for this process's).
func runIn(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", name, args, err, out.String())
	}
	return nil
}

// randomBytes fills n bytes from seed: data that matches no rule and does
// not compress.
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}
