package stores

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestParseVMX(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		key      string
		want     string
		err      string
	}{
		{"plain", "displayName = \"web01\"\n", "displayname", "web01", ""},
		{"escape", "displayName = \"a |22b|22 |7C c\"\r\n", "displayName", `a "b" | c`, ""},
		{"comment", "# c\n\nfoo = \"1\" # trailing\n", "foo", "1", ""},
		{"unquoted", "foo = bar\n", "foo", "bar", ""},
		{"last wins", "a = \"1\"\nA = \"2\"\n", "a", "2", ""},
		{"no equals", "foo\n", "", "", "no '='"},
		{"unterminated", "foo = \"bar\n", "", "", "unterminated"},
		{"after value", "foo = \"bar\" baz\n", "", "", "text after"},
		{"bad key", "f o = \"1\"\n", "", "", "bad key"},
		{"long value", "foo = \"" + strings.Repeat("x", maxVMXValLen+1) + "\"\n", "", "", "longer than"},
	} {
		v, err := ParseVMX([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got, ok := v.Get(tc.key); !ok || got != tc.want {
			t.Errorf("%s: %q = %q, want %q", tc.name, tc.key, got, tc.want)
		}
	}
}

func TestVMSDTime(t *testing.T) {
	want := time.Date(2024, 3, 1, 10, 0, 0, 123456000, time.UTC)
	h, l := testutil.VMSDTime(want)
	if got := vmsdTime(strconv.FormatInt(h, 10), strconv.FormatInt(int64(l), 10)); !got.Equal(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := vmsdTime("x", "1"); !got.IsZero() {
		t.Errorf("bad input gave %v", got)
	}
}

// FuzzVMX checks the .vmx/.vmsd parser and the .vmsd snapshot decoding
// never panic and respect their bounds.
func FuzzVMX(f *testing.F) {
	f.Add([]byte(".encoding = \"UTF-8\"\ndisplayName = \"web |22prod|22\"\nscsi0:0.fileName = \"web01-000002.vmdk\"\n"))
	f.Add([]byte("snapshot0.uid = \"1\"\nsnapshot0.createTimeHigh = \"397973\"\nsnapshot0.createTimeLow = \"-1183510464\"\nsnapshot0.disk0.fileName = \"a.vmdk\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVMX(b)
		if err != nil {
			return
		}
		if len(v.Keys()) > maxVMXKeys {
			t.Fatalf("%d keys", len(v.Keys()))
		}
		for _, k := range v.Keys() {
			if _, ok := v.Get(k); !ok {
				t.Fatalf("key %q listed but not found", k)
			}
			if m := vmsdSnapshot.FindStringSubmatch(k); m != nil {
				hi, _ := v.Get("snapshot" + m[1] + ".createTimeHigh")
				lo, _ := v.Get("snapshot" + m[1] + ".createTimeLow")
				vmsdTime(hi, lo)
			}
		}
	})
}
