package libvirtsave

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/klauspost/compress/zstd"
)

const domXML = "<domain type='kvm'>\n  <name>web01</name>\n  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\n</domain>\n"

// header builds a libvirt save header as virQEMUSaveHeaderWrite does.
func header(magic string, format uint32, xmlLen int, bo binary.ByteOrder) []byte {
	h := make([]byte, HeaderSize)
	copy(h, magic)
	bo.PutUint32(h[16:], 2)
	bo.PutUint32(h[20:], uint32(xmlLen))
	bo.PutUint32(h[24:], 1)
	bo.PutUint32(h[28:], format)
	return h
}

// wrap writes header + XML padded like libvirt (NULs, 1 KiB extra) +
// payload compressed by the named tool.
func wrap(t *testing.T, dir, name, magic string, format uint32, tool []string, stream []byte, bo binary.ByteOrder) string {
	t.Helper()
	payload := stream
	if tool != nil {
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin = bytes.NewReader(stream)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v", tool, err)
		}
		payload = out.Bytes()
	}
	x := make([]byte, len(domXML)+1024)
	copy(x, domXML)
	var b bytes.Buffer
	b.Write(header(magic, format, len(x), bo))
	b.Write(x)
	b.Write(payload)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLibvirtSave(t *testing.T) {
	testutil.RequireTool(t, "gzip", "zstd", "bzip2", "xz", "lzop")
	vm := qemufixture.Capture(t, qemufixture.Config{}, `migrate "exec:cat > {dir}/mig.bin"`)
	stream, err := os.ReadFile(vm.Path("mig.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	le, be := binary.ByteOrder(binary.LittleEndian), binary.ByteOrder(binary.BigEndian)
	for _, tc := range []struct {
		name    string
		magic   string
		format  uint32
		tool    []string
		bo      binary.ByteOrder
		trunc   bool
		wantErr error
	}{
		{"raw", Magic, FormatRaw, nil, le, false, nil},
		{"raw-bigendian", Magic, FormatRaw, nil, be, false, nil},
		{"gzip", Magic, FormatGzip, []string{"gzip", "-c"}, le, false, nil},
		{"zstd", Magic, FormatZstd, []string{"zstd", "-c", "-q"}, le, false, nil},
		// streamed, so the frame keeps the 1 GiB window --long=30 asks for
		{"zstd-window-too-big", Magic, FormatZstd, []string{"zstd", "-c", "-q", "--long=30"}, le, false, zstd.ErrWindowSizeExceeded},
		{"bzip2", Magic, FormatBzip2, []string{"bzip2", "-c"}, le, false, nil},
		{"xz", Magic, FormatXZ, []string{"xz", "-c"}, le, false, nil},
		{"xz-9-multiblock", Magic, FormatXZ, []string{"xz", "-c", "-9", "-T2", "--block-size=256KiB"}, le, false, nil},
		{"xz-dict-too-big", Magic, FormatXZ, []string{"xz", "-c", "--lzma2=dict=128MiB"}, le, false, errXZDictSize},
		{"lzop", Magic, FormatLzop, []string{"lzop", "-c"}, le, false, nil},
		{"lzop-9-crc32", Magic, FormatLzop, []string{"lzop", "-c", "-9", "--crc32"}, be, false, nil},
		{"lzop-filter", Magic, FormatLzop, []string{"lzop", "-c", "--filter=1"}, le, false, model.ErrUnsupported},
		{"partial-raw", PartialMagic, FormatRaw, nil, le, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := stream
			if tc.trunc {
				// Cut after the page planted at 0x1fe0 but before the end.
				s = stream[:len(stream)*9/10]
			}
			p := wrap(t, dir, tc.name+".save", tc.magic, tc.format, tc.tool, s, tc.bo)
			before := qemufixture.FileSum(t, p)
			head := make([]byte, 4096)
			n, _ := bytes.NewReader(testutil.FileSnapshot(t, p)).Read(head)
			if !Probe(head[:n], nil, 0) {
				t.Fatal("Probe rejects a libvirt save file")
			}
			im, err := Open(context.Background(), p, model.Options{})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.Attrs["domain_name"] != "web01" || im.Attrs["domain_uuid"] != "4dea22b3-1d52-d8f3-2516-782e98ab3fa0" {
				t.Errorf("attrs %v", im.Attrs)
			}
			v := im.Views[0]
			if v.Kind != model.KindMemory || v.ID != filepath.Base(p)+"#memory" {
				t.Errorf("view %s %s", v.ID, v.Kind)
			}
			plants := vm.Plants
			if tc.trunc {
				plants = plants[:1] // pages sent later may be cut off
				if im.Attrs["partial"] != "true" {
					t.Error("partial save not reported")
				}
			}
			qemufixture.CheckPlants(t, tc.name, v.Disk, plants)
			for e, err := range v.Disk.Extents(context.Background()) {
				if err != nil {
					t.Fatal(err)
				}
				if tc.tool != nil && e.Source != model.SourceDerived {
					t.Fatalf("extent of a compressed payload not derived: %+v", e)
				}
				if tc.tool == nil && e.Source == model.SourceData && e.File != p {
					t.Fatalf("extent file %q", e.File)
				}
			}
			if qemufixture.FileSum(t, p) != before {
				t.Fatal("save file changed")
			}
		})
	}
}
