// Command mkseed makes the committed fuzz seeds of guestfs/btrfs,
// guestfs/ntfs and guestfs/ext4: it builds small real filesystems with
// mkfs.btrfs (from a directory, no mount), mkntfs (populated through an
// ntfs-3g mount, as root) or mke2fs -d, and writes each, packed by
// sparseimg, as a Go fuzz corpus file.
//
//	go run ./guestfs/internal/mkseed -fs btrfs -dir guestfs/btrfs/testdata/fuzz/FuzzBtrfsOpen
//	go run ./guestfs/internal/mkseed -fs ntfs -dir guestfs/ntfs/testdata/fuzz/FuzzNTFSOpen
//	go run ./guestfs/internal/mkseed -fs ext4 -dir guestfs/ext4/testdata/fuzz/FuzzExt4Open
//
// The packages' go:generate lines run it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
	"github.com/imgaudit/imgaudit/guestfs/ntfs"
	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

func main() {
	kind := flag.String("fs", "", "btrfs, ntfs or ext4")
	dir := flag.String("dir", "", "corpus directory to write the seeds into")
	flag.Parse()
	if *dir == "" {
		log.Fatal("mkseed: -dir is required")
	}
	tmp, err := os.MkdirTemp("", "mkseed")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	var seeds map[string][]byte
	switch *kind {
	case "btrfs":
		seeds = btrfsSeeds(tmp)
	case "ntfs":
		seeds = ntfsSeeds(tmp)
	case "ext4":
		seeds = ext4Seeds(tmp)
	default:
		log.Fatalf("mkseed: -fs %q: want btrfs, ntfs or ext4", *kind)
	}
	for name, img := range seeds {
		packed := sparseimg.Encode(img, 64)
		if err := fuzzcorpus.Write(*dir, name, packed); err != nil {
			log.Fatal(err)
		}
		log.Printf("%s: %d-byte image packed into %d bytes", name, len(img), len(packed))
	}
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// tree writes a small directory tree: a file small enough to be inline
// (btrfs) or resident (NTFS), a larger one, a nested directory, a symlink.
func tree(root string) {
	must(os.MkdirAll(filepath.Join(root, "etc/app"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/small.conf"), []byte("password=hunter2\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, "etc/app/credentials"), bytes.Repeat([]byte("aws_secret_access_key = x\n"), 120), 0o600))
	must(os.Symlink("../small.conf", filepath.Join(root, "etc/app/link")))
}

func image(path string, size int64) {
	must(os.WriteFile(path, nil, 0o644))
	must(os.Truncate(path, size))
}

func btrfsSeeds(tmp string) map[string][]byte {
	src := filepath.Join(tmp, "src")
	tree(src)
	must(os.Link(filepath.Join(src, "etc/app/credentials"), filepath.Join(src, "etc/hardlink")))
	out := map[string][]byte{}
	for name, args := range map[string][]string{
		"mkfs-4k-nodes-dup":    {"-n", "4096"},
		"mkfs-4k-nodes-single": {"-n", "4096", "-m", "single"},
	} {
		img := filepath.Join(tmp, name)
		image(img, 128<<20)
		run("mkfs.btrfs", append(append([]string{"-q", "--rootdir", src}, args...), img)...)
		b, err := os.ReadFile(img)
		must(err)
		out[name] = b
	}
	// Files that btrfs stores compressed, which only a mounted btrfs
	// writes (this mkfs.btrfs has no --compress): inline and regular
	// compressed extents, for the reader's decompression.
	for _, codec := range []string{"zstd", "lzo", "zlib"} {
		name := "mount-compress-" + codec
		img := filepath.Join(tmp, name)
		image(img, 128<<20)
		run("mkfs.btrfs", "-q", "-n", "4096", "-m", "single", img)
		mnt := filepath.Join(tmp, "mnt-"+codec)
		must(os.Mkdir(mnt, 0o755))
		run("mount", "-o", "loop,compress-force="+codec, img, mnt)
		run("cp", "-a", src+"/.", mnt)
		must(os.WriteFile(filepath.Join(mnt, "etc/app/log"), bytes.Repeat([]byte("Dec  6 10:00:01 web01 sshd[811]: Accepted publickey\n"), 4000), 0o644))
		run("umount", mnt)
		b, err := os.ReadFile(img)
		must(err)
		out[name] = b
	}
	return out
}

// ext4Seeds makes ext2 (block pointers), ext4 (extents) and ext4 with
// inline data from the tree, a symlink /l (FuzzExt4Open reads it), a hard
// link and a directory of 200 entries (an htree index), in 1 KiB blocks.
func ext4Seeds(tmp string) map[string][]byte {
	src := filepath.Join(tmp, "src")
	tree(src)
	must(os.Symlink("etc/small.conf", filepath.Join(src, "l")))
	must(os.Link(filepath.Join(src, "etc/app/credentials"), filepath.Join(src, "etc/hardlink")))
	must(os.Mkdir(filepath.Join(src, "many"), 0o755))
	for i := range 200 {
		must(os.WriteFile(filepath.Join(src, "many", fmt.Sprintf("entry-%03d", i)), []byte{byte(i)}, 0o644))
	}
	out := map[string][]byte{}
	for name, args := range map[string][]string{
		"mke2fs-ext2":        {"-t", "ext2"},
		"mke2fs-ext4":        {"-t", "ext4"},
		"mke2fs-ext4-inline": {"-t", "ext4", "-O", "inline_data"},
	} {
		img := filepath.Join(tmp, name)
		image(img, 2<<20)
		run("mke2fs", append(append([]string{"-q", "-F", "-b", "1024", "-d", src}, args...), img)...)
		b, err := os.ReadFile(img)
		must(err)
		out[name] = b
	}
	return out
}

func ntfsSeeds(tmp string) map[string][]byte {
	img := filepath.Join(tmp, "ntfs.img")
	image(img, 8<<20)
	run("mkntfs", "-F", "-Q", "-q", img)
	mnt := filepath.Join(tmp, "mnt")
	must(os.Mkdir(mnt, 0o755))
	cmd := exec.Command("ntfs-3g", "-o", "no_detach,streams_interface=windows", img, mnt)
	must(cmd.Start())
	for i := 0; ; i++ {
		b, _ := os.ReadFile("/proc/self/mounts")
		if strings.Contains(string(b), " "+mnt+" ") {
			break
		}
		if i > 600 {
			cmd.Process.Kill()
			log.Fatal("mkseed: ntfs-3g did not mount")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tree(mnt)
	must(os.WriteFile(filepath.Join(mnt, "etc/small.conf:stream"), []byte("ads data\n"), 0o644))
	// A compressed folder (the attribute through ntfs-3g's xattr): its
	// file holds LZNT1 units, a unit stored as is (random bytes) and a
	// sparse one.
	must(os.Mkdir(filepath.Join(mnt, "cdir"), 0o755))
	must(syscall.Setxattr(filepath.Join(mnt, "cdir"), "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0))
	noise := make([]byte, 64<<10)
	rand.New(rand.NewSource(1)).Read(noise)
	comp := append(bytes.Repeat([]byte("aws_secret_access_key = x\n"), 3000), noise...)
	must(os.WriteFile(filepath.Join(mnt, "cdir/comp.txt"), append(comp, make([]byte, 128<<10)...), 0o644))
	// A deleted compressed file: its units decode from its runs.
	must(os.WriteFile(filepath.Join(mnt, "cdir/gone.txt"), bytes.Repeat([]byte("deleted compressed token\n"), 4000), 0o644))
	must(os.WriteFile(filepath.Join(mnt, "deleted.txt"), bytes.Repeat([]byte("deleted token\n"), 500), 0o644))
	must(os.WriteFile(filepath.Join(mnt, "deleted-small.txt"), []byte("tiny deleted\n"), 0o644))
	run("sync")
	must(os.Remove(filepath.Join(mnt, "deleted.txt")))
	must(os.Remove(filepath.Join(mnt, "cdir/gone.txt")))
	must(os.Remove(filepath.Join(mnt, "deleted-small.txt")))
	run("umount", mnt)
	must(cmd.Wait())
	b, err := os.ReadFile(img)
	must(err)
	trimNTFS(b)
	return map[string][]byte{"mkntfs-populated": b}
}

// trimNTFS zeroes the data of system files the reader never parses
// ($UpCase's 128 KiB table, $AttrDef, $Secure's descriptors, $LogFile),
// which would otherwise make most of the seed.
func trimNTFS(b []byte) {
	v, err := ntfs.Open(context.Background(), bytes.NewReader(b), int64(len(b)), "seed")
	must(err)
	must(v.Walk(context.Background(), func(e fsys.Entry) error {
		switch e.Path {
		case "/$UpCase", "/$AttrDef", "/$Secure:$SDS", "/$LogFile":
			for _, r := range e.Runs {
				clear(b[r.Off : r.Off+r.Len])
			}
		}
		return nil
	}))
}
