// Command genbench writes a benchmark input of package benchdata:
//
//	go run ./internal/benchdata/cmd/genbench KIND MIB OUT
//
// KIND is raw (a disk image), elf (a dump-guest-memory ELF core), kdump
// (zlib pages, as dump-guest-memory -z), stream (a QEMU migration stream)
// or stream-zlib (one with the compress capability's zlib pages); MIB is
// the guest's size in MiB. The bytes mix this machine's /usr/bin and
// /usr/lib files with text and random bytes, the same on every run; a
// KIND prefixed with dense- (dense-raw, dense-elf, ...) holds nothing but
// distinct secrets instead (benchdata.Dense).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/internal/benchdata"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: genbench [dense-]raw|elf|kdump|stream|stream-zlib MIB OUT")
		os.Exit(2)
	}
	mib, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil || mib < 2 {
		fmt.Fprintf(os.Stderr, "genbench: size %q: want a number of MiB, at least 2\n", os.Args[2])
		os.Exit(2)
	}
	kind := os.Args[1]
	var src benchdata.Filler
	if d, ok := strings.CutPrefix(kind, "dense-"); ok {
		kind, src = d, benchdata.NewDense(22)
	} else {
		s := benchdata.NewSource(22, "/usr/bin", "/usr/lib")
		defer s.Close()
		src = s
	}
	size, out := mib<<20, os.Args[3]
	switch kind {
	case "raw":
		err = benchdata.WriteRaw(out, size, src)
	case "elf":
		err = benchdata.WriteELF(out, size, src)
	case "kdump":
		err = benchdata.WriteKdump(out, size, src)
	case "stream":
		err = benchdata.WriteStream(out, size, src, false)
	case "stream-zlib":
		err = benchdata.WriteStream(out, size, src, true)
	default:
		fmt.Fprintf(os.Stderr, "genbench: unknown kind %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genbench:", err)
		os.Exit(1)
	}
}
