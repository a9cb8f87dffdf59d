package memory_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"hash/crc32"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/memory/libvirtsave"
	"github.com/imgaudit/imgaudit/formats/memory/lime"
	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// plantedSecret is a secret written into guest RAM: rule is the detector
// rule expected to report it, addr the guest-physical address of its value
// and value the bytes its fingerprint is computed from (the fingerprint
// contract: "sha256:" + hex(sha256(value))).
type plantedSecret struct {
	name   string
	rule   string
	addr   int64
	value  []byte
	length int64 // bytes the finding covers at addr (the whole schedule for AES)
}

func fingerprint(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// githubToken returns a GitHub classic token with a valid checksum: 30
// base62 characters then the CRC32 (IEEE) of those, as 6 base62 digits.
func githubToken(rng *mrand.Rand) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := make([]byte, 30, 36)
	for i := range body {
		body[i] = alphabet[rng.IntN(62)]
	}
	sum := crc32.ChecksumIEEE(body)
	var crc [6]byte
	for i := 5; i >= 0; i-- {
		crc[i] = alphabet[sum%62]
		sum /= 62
	}
	return "ghp_" + string(append(body, crc[:]...))
}

// secretPlants makes the secrets of the detection test. Every one crosses a
// 4 KiB page boundary, so that a reader that did not join pages in
// guest-physical order (a stream interleaves page headers) would hide it.
// They lie between 2 and 3 MiB, clear of the default plants.
func secretPlants(t testing.TB) ([]qemufixture.Plant, []plantedSecret) {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(0x1d6, 0xa11))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var plants []qemufixture.Plant
	var secrets []plantedSecret
	// add plants prefix+body+suffix so that body starts at addr; value is
	// the fingerprinted secret (body itself, or the key of a schedule).
	add := func(name, rule string, addr int64, prefix, body, suffix, value []byte) {
		length := int64(len(body))
		if addr/4096 == (addr+length-1)/4096 {
			t.Fatalf("%s at 0x%x+%d does not cross a page boundary", name, addr, length)
		}
		plants = append(plants, qemufixture.Plant{Name: name, Addr: addr - int64(len(prefix)), Data: slicesConcat(prefix, body, suffix)})
		secrets = append(secrets, plantedSecret{name, rule, addr, value, length})
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	// The fingerprinted value of a PEM key is its block without the
	// trailing newline; the newline is planted after it, as in a key file.
	ecPEM := bytes.TrimRight(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), "\n")
	add("EC private key PEM", "private-key-ec", 0x200f90, nil, ecPEM, []byte("\n"), ecPEM)

	tok := []byte(githubToken(rng))
	add("GitHub token", "github-pat", 0x202fec, []byte("export GITHUB_TOKEN="), tok, []byte("\n"), tok)

	k128, k256 := random(16), random(32)
	s128, s256 := structural.ExpandAESKey(k128), structural.ExpandAESKey(k256)
	add("AES-128 key schedule", "aes-key-schedule", 0x204f80, nil, s128, nil, k128)
	add("AES-256 key schedule", "aes-key-schedule", 0x206f40, nil, s256, nil, k256)

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER := x509.MarshalPKCS1PrivateKey(rk)
	add("RSA private key DER", "rsa-private-key-der", 0x208c00, nil, rsaDER, nil, rsaDER)
	return plants, secrets
}

// captures holds the memory images of one guest, every capture taken from
// the same stopped guest (it never runs: -S), so they all hold the plants.
type captures struct {
	vm      *qemufixture.VM
	secrets []plantedSecret
	files   map[string]string
	// unavailable says why QEMU could not write a capture.
	unavailable map[string]error
}

func capture(t *testing.T) *captures {
	t.Helper()
	testutil.RequireTool(t, "gzip", "zstd")
	plants, secrets := secretPlants(t)
	vm := qemufixture.Start(t, qemufixture.Config{Disk: true, Extra: plants})
	vm.HMP(t, "savevm golden")
	vm.HMP(t, "dump-guest-memory {dir}/dump.elf")
	vm.HMP(t, "dump-guest-memory -z {dir}/dump-zlib.kdump")
	// LZO and snappy kdump pages depend on how QEMU was built.
	unavailable := map[string]error{}
	for _, c := range []string{"lzo", "snappy"} {
		if _, err := vm.TryHMP(t, "dump-guest-memory -"+c[:1]+" {dir}/dump-"+c+".kdump"); err != nil {
			unavailable["kdump-"+c] = err
		}
	}
	vm.HMP(t, `migrate "exec:cat > {dir}/mig.bin"`) // last: QEMU refuses a second migration
	vm.Quit()
	// A second guest with the same plants for the compressed migration.
	vmc := qemufixture.Capture(t, qemufixture.Config{Extra: plants},
		"migrate_set_capability compress on", `migrate "exec:cat > {dir}/mig-compress.bin"`)

	vmq := qemufixture.Capture(t, qemufixture.Config{Machine: "q35", Extra: plants}, `migrate "exec:cat > {dir}/mig-q35.bin"`)

	// The default fixture's AES-128 schedule is a planted secret too.
	for _, p := range vm.Plants {
		if p.Name == "aes-128 key schedule" {
			secrets = append(secrets, plantedSecret{"default " + p.Name, "aes-key-schedule", p.Addr, p.Data[:16], int64(len(p.Data))})
		}
	}
	c := &captures{vm: vm, secrets: secrets, unavailable: unavailable, files: map[string]string{
		"savevm":           vm.Path("disk.qcow2"),
		"migrate":          vm.Path("mig.bin"),
		"migrate-compress": vmc.Path("mig-compress.bin"),
		"elf":              vm.Path("dump.elf"),
		"kdump-zlib":       vm.Path("dump-zlib.kdump"),
		"kdump-lzo":        vm.Path("dump-lzo.kdump"),
		"kdump-snappy":     vm.Path("dump-snappy.kdump"),
		"migrate-q35":      vmq.Path("mig-q35.bin"),
	}}
	dir := t.TempDir()
	c.files["lime"] = limeFromELF(t, vm.Path("dump.elf"), filepath.Join(dir, "mem.lime"))
	c.files["libvirt-gzip"] = libvirtSave(t, vm.Path("mig.bin"), filepath.Join(dir, "gzip.save"), libvirtsave.FormatGzip, "gzip", "-c")
	c.files["libvirt-zstd"] = libvirtSave(t, vm.Path("mig.bin"), filepath.Join(dir, "zstd.save"), libvirtsave.FormatZstd, "zstd", "-c", "-q")
	c.files["libvirt-raw-compress"] = libvirtSave(t, vmc.Path("mig-compress.bin"), filepath.Join(dir, "compress.save"), libvirtsave.FormatRaw)
	return c
}

// limeFromELF writes the PT_LOAD segments of a dump-guest-memory file as
// LiME ranges (header: magic, version 1, first and last address, reserved).
func limeFromELF(t *testing.T, src, dst string) string {
	t.Helper()
	f, err := elf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		h := make([]byte, 32)
		binary.LittleEndian.PutUint32(h, lime.Magic)
		binary.LittleEndian.PutUint32(h[4:], 1)
		binary.LittleEndian.PutUint64(h[8:], p.Paddr)
		binary.LittleEndian.PutUint64(h[16:], p.Paddr+p.Filesz-1)
		b.Write(h)
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// libvirtSave wraps a migration stream as virQEMUSaveHeaderWrite does: the
// 92-byte header (magic, version 2, XML length, was-running, compression),
// the domain XML padded with NULs, then the payload compressed by tool.
func libvirtSave(t *testing.T, stream, dst string, format uint32, tool ...string) string {
	t.Helper()
	payload, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(tool) > 0 {
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Stdin = bytes.NewReader(payload)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v", tool, err)
		}
		payload = out.Bytes()
	}
	const domXML = "<domain type='kvm'>\n  <name>web01</name>\n  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\n</domain>\n"
	x := make([]byte, len(domXML)+1024)
	copy(x, domXML)
	h := make([]byte, libvirtsave.HeaderSize)
	copy(h, libvirtsave.Magic)
	binary.LittleEndian.PutUint32(h[16:], 2)
	binary.LittleEndian.PutUint32(h[20:], uint32(len(x)))
	binary.LittleEndian.PutUint32(h[24:], 1)
	binary.LittleEndian.PutUint32(h[28:], format)
	if err := os.WriteFile(dst, slicesConcat(h, x, payload), 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func slicesConcat(parts ...[]byte) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.Write(p)
	}
	return b.Bytes()
}

// TestDetectorsFindPlantedSecrets captures one guest's RAM in every format
// QEMU writes (and LiME and libvirt save files built from them), scans each
// with the scanner and checks that every planted secret is reported with its
// fingerprint and guest-physical address in the memory view.
func TestDetectorsFindPlantedSecrets(t *testing.T) {
	c := capture(t)
	engine, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		format string // formats.Open's Image.Format
		view   string // ID suffix of the guest-physical view after the file's base name
	}{
		{"savevm", "qcow2", "#memory:golden"},
		{"migrate", "qemu-migration", "#memory"},
		{"migrate-compress", "qemu-migration", "#memory"},
		{"elf", "elf-core", "#memory"},
		{"kdump-zlib", "kdump", "#memory"},
		{"kdump-lzo", "kdump", "#memory"},
		{"kdump-snappy", "kdump", "#memory"},
		{"migrate-q35", "qemu-migration", "#memory"},
		{"lime", "lime", "#memory"},
		{"libvirt-gzip", "libvirt-save", "#memory"},
		{"libvirt-zstd", "libvirt-save", "#memory"},
		{"libvirt-raw-compress", "libvirt-save", "#memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.unavailable[tc.name]; err != nil {
				t.Skipf("this QEMU cannot write it: %v", err)
			}
			path := c.files[tc.name]
			before := qemufixture.FileSum(t, path)
			wantView := filepath.Base(path) + tc.view

			// The planted bytes read back at their guest-physical addresses.
			im, err := formats.Open(ctx, path, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if im.Format != tc.format {
				t.Errorf("format %q, want %q", im.Format, tc.format)
			}
			var phys model.Disk
			for _, v := range im.Views {
				if v.ID == wantView && v.Kind == model.KindMemory {
					phys = v.Disk
				}
			}
			if phys == nil {
				t.Fatalf("no memory view %s", wantView)
			}
			qemufixture.CheckPlants(t, tc.name, phys, c.vm.Plants)
			im.Close()

			rep, err := scanner.New(scanner.Options{Engine: engine}).Scan(ctx, []string{path})
			if err != nil {
				t.Fatal(err)
			}
			for _, tg := range rep.Targets {
				for _, e := range tg.Errors {
					t.Errorf("target %s: %s", tg.Path, e)
				}
			}
			byFP := map[string]report.Finding{}
			for _, f := range rep.Findings {
				byFP[f.Fingerprint] = f
			}
			for _, s := range c.secrets {
				f, ok := byFP[fingerprint(s.value)]
				if !ok {
					t.Errorf("%s (%s) at 0x%x not found", s.name, s.rule, s.addr)
					continue
				}
				// The scanner keeps one finding per secret, under its most
				// severe rule, and lists the other rules that matched it.
				if f.Rule != s.rule && !slices.Contains(strings.Split(f.Metadata["also_matched"], ","), s.rule) {
					t.Errorf("%s: rule %q (also %q), want %q", s.name, f.Rule, f.Metadata["also_matched"], s.rule)
				}
				found := false
				var where []string
				for _, l := range f.Locations {
					if l.View == wantView && l.ViewKind == string(model.KindMemory) && l.Offset == s.addr {
						found = true
						if l.Length != s.length {
							t.Errorf("%s: length %d, want %d", s.name, l.Length, s.length)
						}
					}
					where = append(where, fmt.Sprintf("%s@0x%x", l.View, l.Offset))
				}
				if !found {
					t.Errorf("%s: no location at guest-physical 0x%x in %s; got %v", s.name, s.addr, wantView, where)
				}
			}
			if qemufixture.FileSum(t, path) != before {
				t.Fatal("file changed by reading it")
			}
		})
	}

	// The compress capability must really have produced compressed pages,
	// or the migrate-compress case would only repeat migrate.
	f, err := os.Open(c.files["migrate-compress"])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	s, err := qemustream.Parse(ctx, f.Name(), f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if s.CompressedPages == 0 {
		t.Errorf("migrate with the compress capability wrote no compressed pages")
	}
}
