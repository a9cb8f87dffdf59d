package structural

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// ktutilKeytab writes a keytab with MIT ktutil and returns its bytes and the
// principals `klist -k` lists (the oracle).
func ktutilKeytab(t *testing.T, entries [][2]string) ([]byte, []string) {
	t.Helper()
	testutil.RequireTool(t, "ktutil", "klist")
	path := t.TempDir() + "/test.keytab"
	var script strings.Builder
	for i, e := range entries {
		script.WriteString("addent -password -p " + e[0] + " -k " + string(rune('1'+i)) + " -e " + e[1] + "\npassword" + string(rune('a'+i)) + "\n")
	}
	script.WriteString("wkt " + path + "\nquit\n")
	cmd := exec.Command("ktutil")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ktutil: %v\n%s", err, out)
	}
	var principals []string
	for _, l := range strings.Split(string(testutil.Run(t, "klist", "-k", path)), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] != "KVNO" && !strings.HasPrefix(f[0], "-") && !slices.Contains(principals, f[1]) {
			principals = append(principals, f[1])
		}
	}
	return readFile(t, path), principals
}

func TestParseKeytab(t *testing.T) {
	kt, oracle := ktutilKeytab(t, [][2]string{
		{"alice@EXAMPLE.COM", "aes256-cts-hmac-sha1-96"},
		{"host/web01.example.com@EXAMPLE.COM", "aes128-cts-hmac-sha1-96"},
		{"alice@EXAMPLE.COM", "aes128-cts-hmac-sha256-128"},
		{"HTTP/www.example.com@EXAMPLE.COM", "aes256-cts-hmac-sha384-192"},
	})
	if len(oracle) != 3 {
		t.Fatalf("klist listed %v", oracle)
	}
	r := rand.New(rand.NewPCG(3, 4))
	garbage := make([]byte, 300)
	for i := range garbage {
		garbage[i] = byte(r.UintN(255) + 1)
	}
	// A deleted entry: negative size followed by that many zero bytes.
	withHole := append([]byte{}, kt[:2]...)
	withHole = binary.BigEndian.AppendUint32(withHole, uint32(0xffffffff-40+1))
	withHole = append(withHole, make([]byte, 40)...)
	withHole = append(withHole, kt[2:]...)

	cases := []struct {
		name  string
		in    []byte
		wantN int
	}{
		{"exact", kt, len(kt)},
		{"trailing-zeros", append(bytes.Clone(kt), make([]byte, 4096)...), len(kt)},
		{"trailing-garbage", append(bytes.Clone(kt), garbage...), len(kt)},
		{"with-hole", withHole, len(withHole)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, principals, err := ParseKeytab(c.in)
			if err != nil {
				t.Fatalf("ParseKeytab: %v", err)
			}
			if n != c.wantN || !slices.Equal(principals, oracle) {
				t.Fatalf("got n=%d %v, want n=%d %v", n, principals, c.wantN, oracle)
			}
		})
	}

	firstLen := int(binary.BigEndian.Uint32(kt[2:]))
	badEnctype := bytes.Clone(kt)
	// The enctype of the first entry sits 2+2+keylen+... from its end; find
	// it via the aes256 enctype (18) and key length (32) pattern.
	i := bytes.Index(badEnctype, []byte{0x00, 0x12, 0x00, 0x20})
	if i < 0 || i > 2+4+firstLen {
		t.Fatal("aes256 keyblock not found in first entry")
	}
	badEnctype[i+1] = 0x63 // enctype 99 does not exist
	badKeyLen := bytes.Clone(kt)
	badKeyLen[i+3] = 0x10 // aes256 with a 16-byte key
	neg := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad-version", append([]byte{0x05, 0x01}, kt[2:]...)},
		{"truncated-first-entry", kt[:2+4+firstLen-5]},
		{"header-only", kt[:2]},
		{"end-marker-first", append([]byte{5, 2, 0, 0, 0, 0}, kt[2:]...)},
		{"unknown-enctype", badEnctype[:2+4+firstLen]},
		{"key-length-mismatch", badKeyLen[:2+4+firstLen]},
		{"random", append([]byte{5, 2}, garbage...)},
	}
	for _, c := range neg {
		t.Run("neg-"+c.name, func(t *testing.T) {
			n, p, err := ParseKeytab(c.in)
			if err == nil {
				t.Fatalf("accepted: n=%d %v", n, p)
			}
			assertNoLeak(t, err, c.in)
		})
	}
}
