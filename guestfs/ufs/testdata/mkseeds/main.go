// Command mkseeds writes the seeds of FuzzUFSOpen: tiny UFS2 images
// (4 MiB, 8 KiB and 4 KiB blocks) made by makefs, packed by sparseimg
// (512-byte blocks that are one byte repeated read back as zeros). Each holds /etc
// with a secret and a file of more than 12 blocks, and a short and a
// long symlink to the secret.
//
//	go run ./testdata/mkseeds testdata/fuzz/FuzzUFSOpen
package main

import (
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

// bigSize and big match seedBig in fuzz_test.go.
const bigSize = 14*4096 + 100

func big() []byte {
	b := make([]byte, bigSize)
	for i := 0; i < bigSize; i += 4096 {
		b[i] = byte(i/4096 + 1)
	}
	b[bigSize-1] = 0xff
	return b
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: mkseeds OUTDIR")
	}
	out := os.Args[1]
	tmp, err := os.MkdirTemp("", "ufs-seeds")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	files := map[string][]byte{"etc/secret": []byte("password=hunter2\n"), "etc/big": big()}
	for p, c := range files {
		if err := os.WriteFile(filepath.Join(src, p), c, 0o600); err != nil {
			log.Fatal(err)
		}
	}
	// A short symlink (in the inode) and a long one (in a block).
	long := strings.Repeat("./", 70) + "etc/secret"
	for link, target := range map[string]string{"l": "etc/secret", "ll": long} {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			log.Fatal(err)
		}
	}
	for _, c := range []struct{ name, opts string }{
		{"tiny-8k", "version=2"},
		{"tiny-4k", "version=2,bsize=4096,fsize=512"},
	} {
		img := filepath.Join(tmp, c.name)
		cmd := exec.Command("makefs", "-t", "ffs", "-o", c.opts, "-s", "4m", img, src)
		if b, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("makefs %s: %v\n%s", c.opts, err, b)
		}
		data, err := os.ReadFile(img)
		if err != nil {
			log.Fatal(err)
		}
		if err := fuzzcorpus.Write(out, c.name, sparseimg.Encode(data, 512)); err != nil {
			log.Fatal(err)
		}
	}
}
