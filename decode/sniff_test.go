package decode

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestOctal checks the tar checksum parser against what it replaced,
// strconv.ParseInt of the field with spaces and NULs trimmed, on fields
// of the bytes a header holds and on random ones.
func TestOctal(t *testing.T) {
	want := func(field []byte) (int64, bool) {
		s := strings.Trim(string(field), " \x00")
		n, err := strconv.ParseInt(s, 8, 64)
		return n, err == nil
	}
	fields := []string{"0010644\x00", "000000 \x00", " 12345 ", "\x00\x00\x00\x00\x00\x00\x00\x00", "        ",
		"+17     ", "-17     ", "+       ", "-0      ", "-       ", "12 34   ", "0000008\x00", "77777777", "abc     ", "\x0017\x00    "}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("01234567 \x00+-89a")
	for range 100000 {
		f := make([]byte, 8)
		for i := range f {
			f[i] = alphabet[rng.IntN(len(alphabet))]
		}
		fields = append(fields, string(f))
	}
	for _, f := range fields {
		gn, gok := octal([]byte(f))
		wn, wok := want([]byte(f))
		if gok != wok || (gok && gn != wn) {
			t.Fatalf("octal(%q) = %d, %v; ParseInt: %d, %v", f, gn, gok, wn, wok)
		}
	}
}
