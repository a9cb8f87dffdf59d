// Command mkseeds writes the seeds of FuzzRead: the headers (without key
// material) of LUKS1 and LUKS2 volumes made by cryptsetup luksFormat.
//
//	go run ./testdata/mkseeds testdata/fuzz/FuzzRead
package main

import (
	"bytes"
	"encoding/binary"
	"log"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: mkseeds OUTDIR")
	}
	tmp, err := os.MkdirTemp("", "luks-seeds")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	key := filepath.Join(tmp, "key")
	if err := os.WriteFile(key, []byte("seed passphrase"), 0o600); err != nil {
		log.Fatal(err)
	}
	for _, typ := range []string{"luks1", "luks2"} {
		img := filepath.Join(tmp, typ)
		if err := os.WriteFile(img, make([]byte, 32<<20), 0o644); err != nil {
			log.Fatal(err)
		}
		args := []string{"luksFormat", "--batch-mode", "--type", typ, "--key-file", key, "--pbkdf-force-iterations", "1000"}
		if typ == "luks2" {
			args = append(args, "--pbkdf", "pbkdf2")
		}
		if out, err := exec.Command("cryptsetup", append(args, img)...).CombinedOutput(); err != nil {
			log.Fatalf("cryptsetup %v: %v\n%s", args, err, out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			log.Fatal(err)
		}
		// The binary header (LUKS1: 592 bytes with its key slots; LUKS2:
		// its size field says, JSON area included), never key material.
		n := 592
		if typ == "luks2" {
			n = int(binary.BigEndian.Uint64(b[8:]))
		}
		seed := bytes.TrimRight(b[:n], "\x00")
		if err := fuzzcorpus.Write(os.Args[1], typ, seed); err != nil {
			log.Fatal(err)
		}
	}
}
