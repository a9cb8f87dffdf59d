package fuzzcorpus

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestEncode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []any
		want   string // "": an error
	}{
		{"bytes", []any{[]byte("a\x00\"\n\xff")}, "go test fuzz v1\n[]byte(\"a\\x00\\\"\\n\\xff\")\n"},
		{"several", []any{[]byte{}, "s", byte(7), uint16(9), 42, int64(-1), true}, "go test fuzz v1\n[]byte(\"\")\nstring(\"s\")\nbyte(7)\nuint16(9)\nint(42)\nint64(-1)\nbool(true)\n"},
		{"unsupported", []any{3.5}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode(tc.values...)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("Encode = %q, want an error", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("Encode = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestWriteDecode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "testdata", "fuzz", "FuzzX")
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	for _, tc := range []struct {
		name   string
		values []any
	}{
		{"every-byte", []any{every}},
		{"empty", []any{[]byte{}}},
		{"with-more", []any{[]byte("key"), "s", byte(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Write(dir, tc.name, tc.values...); err != nil {
				t.Fatal(err)
			}
			file, err := os.ReadFile(filepath.Join(dir, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(file)
			if err != nil || !bytes.Equal(got, tc.values[0].([]byte)) {
				t.Errorf("Decode = %q, %v; want %q", got, err, tc.values[0])
			}
		})
	}
	for _, bad := range []string{"", "[]byte(\"x\")\n", "go test fuzz v1\nstring(\"x\")\n", "go test fuzz v1\n[]byte(\"x)\n"} {
		if got, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) = %q, want an error", bad, got)
		}
	}
}
