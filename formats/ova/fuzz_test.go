package ova

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

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
