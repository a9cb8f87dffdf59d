package guestfs

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestLUKS: volumes made by cryptsetup luksFormat (LUKS1 and LUKS2, one or
// two key slots, whole disk and in a GPT partition) are reported encrypted
// with their cipher and key-slot count, and every key-slot area that
// cryptsetup luksDump lists is excluded from the findings.
func TestLUKS(t *testing.T) {
	testutil.RequireTool(t, "cryptsetup", "sfdisk")
	for _, c := range []struct {
		name, typ string
		slots     int
		part      bool
	}{
		{"luks1", "luks1", 1, false},
		{"luks1-two-slots", "luks1", 2, false},
		{"luks2", "luks2", 1, false},
		{"luks2-two-slots-gpt", "luks2", 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			vol := filepath.Join(dir, "vol.img")
			if err := os.WriteFile(vol, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(vol, 32<<20); err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(dir, "key")
			os.WriteFile(key, []byte("test passphrase"), 0o600)
			args := []string{"luksFormat", "--batch-mode", "--type", c.typ, "--key-file", key, "--pbkdf-force-iterations", "1000"}
			if c.typ == "luks2" {
				args = append(args, "--pbkdf", "pbkdf2")
			}
			testutil.Run(t, "cryptsetup", append(args, vol)...)
			if c.slots == 2 {
				key2 := filepath.Join(dir, "key2")
				os.WriteFile(key2, []byte("second passphrase"), 0o600)
				add := []string{"luksAddKey", "--batch-mode", "--key-file", key, "--pbkdf-force-iterations", "1000"}
				if c.typ == "luks2" {
					add = append(add, "--pbkdf", "pbkdf2") // argon2 would take a second and 1 GiB
				}
				testutil.Run(t, "cryptsetup", append(add, vol, key2)...)
			}
			// luksDump: the key-slot areas, in bytes.
			dump := string(testutil.Run(t, "cryptsetup", "luksDump", vol))
			var areas [][2]int64
			if c.typ == "luks1" {
				stripes := regexp.MustCompile(`Key material offset:\s*(\d+)\s+AF stripes:\s*(\d+)`).FindAllStringSubmatch(dump, -1)
				for _, m := range stripes {
					off, _ := strconv.ParseInt(m[1], 10, 64)
					n, _ := strconv.ParseInt(m[2], 10, 64)
					areas = append(areas, [2]int64{off * 512, off*512 + n*64})
				}
			} else {
				for _, m := range regexp.MustCompile(`Area offset:\s*(\d+) \[bytes\]\s+Area length:\s*(\d+)`).FindAllStringSubmatch(dump, -1) {
					off, _ := strconv.ParseInt(m[1], 10, 64)
					n, _ := strconv.ParseInt(m[2], 10, 64)
					areas = append(areas, [2]int64{off, off + n})
				}
			}
			if len(areas) != c.slots {
				t.Fatalf("luksDump lists %d key-slot areas:\n%s", len(areas), dump)
			}
			disk, base, name := vol, int64(0), WholeDisk
			if c.part {
				disk = filepath.Join(dir, "disk.img")
				os.WriteFile(disk, nil, 0o644)
				os.Truncate(disk, 34<<20)
				testutil.Run(t, "sh", "-c", fmt.Sprintf("sfdisk --no-reread --no-tell-kernel -q %s <<'EOF'\nlabel: gpt\nstart=2048, size=65536\nEOF\n", disk))
				embed(t, disk, vol, partStart)
				base, name = partStart, "p1"
			}
			m, _ := analyzeFile(t, disk)
			u := strings.Join(m.Unattributed(), "\n")
			slots := "key slots"
			if c.slots == 1 {
				slots = "key slot"
			}
			want := fmt.Sprintf("%s: luks: encrypted: contents not visible (LUKS%s, cipher aes-xts-plain64, %d %s)", name, c.typ[4:], c.slots, slots)
			if !strings.Contains(u, want) {
				t.Errorf("unattributed: %s\nwant %s", u, want)
			}
			for _, a := range areas {
				for _, off := range []int64{a[0], (a[0] + a[1]) / 2, a[1] - 1} {
					if got := m.Locate(base + off); got.Excluded == "" || got.Partition != name || got.FS != "luks" || got.State != StateUnknown {
						t.Errorf("key material at %d: %+v", off, got)
					}
				}
			}
			// The encrypted data is not excluded: unattributed, unknown.
			if got := m.Locate(base + 30<<20); got.Excluded != "" || got.State != StateUnknown || got.FS != "luks" {
				t.Errorf("encrypted data: %+v", got)
			}
		})
	}
}
