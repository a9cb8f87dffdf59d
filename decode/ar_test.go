package decode

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// arArchive writes an ar archive: a GNU long-name table ("//") when table
// is not nil, then members, each a header name and its data.
func arArchive(table []byte, members ...[2]string) []byte {
	out := []byte("!<arch>\n")
	member := func(name string, data []byte) {
		out = fmt.Appendf(out, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", name, "0", "0", "0", "644", len(data))
		out = append(out, data...)
		if len(data)%2 == 1 {
			out = append(out, '\n')
		}
	}
	if table != nil {
		member("//", table)
	}
	for _, m := range members {
		member(m[0], []byte(m[1]))
	}
	return out
}

// TestArLongNames: a member's GNU long name is read from the "//" table up
// to its "/\n" (or the table's end), at most 4 KiB of it, and only the name
// is copied: a string of the rest of the table for each member (main until
// 2026-12-08) made 2,000 members named "/0" in a 1 MiB table allocate 2 GB,
// and the names kept for findings held each copy (a 1.4 MB .deb in an ext4
// took 2.1 GB).
func TestArLongNames(t *testing.T) {
	const body = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
	many := make([][2]string, 2000)
	for i := range many {
		many[i] = [2]string{"/0", body}
	}
	long := func(n string) string { return "ar member " + n }
	repeat := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		archive func(t *testing.T) []byte
		want    []string // the leaves' chains, in order
	}{
		{"GNU ar (the ar tool), names over 15 bytes", func(t *testing.T) []byte {
			testutil.RequireTool(t, "ar")
			dir := t.TempDir()
			for _, f := range []string{"a-member-with-a-long-name.txt", "short.txt", "another-member-with-a-long-name.conf"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(body+f+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			testutil.Bash(t, dir, "ar rc out.a a-member-with-a-long-name.txt short.txt another-member-with-a-long-name.conf")
			b, err := os.ReadFile(filepath.Join(dir, "out.a"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte("\n//              ")) {
				t.Fatal("ar wrote no long-name table")
			}
			return b
		}, []string{long("a-member-with-a-long-name.txt"), long("short.txt"), long("another-member-with-a-long-name.conf")}},
		{"2,000 members named /0 in a 1 MiB table", func(*testing.T) []byte {
			table := append([]byte("secret.txt/\n"), bytes.Repeat([]byte("a"), 1<<20-12)...)
			return arArchive(table, many...)
		}, repeat(long("secret.txt"), len(many))},
		{"a name that runs on for 1 MiB, without its end", func(*testing.T) []byte {
			return arArchive(bytes.Repeat([]byte("a"), 1<<20), many[:100]...)
		}, repeat(long(strings.Repeat("a", 1024)), 100)},
		{"a name at the table's end, without its end", func(*testing.T) []byte {
			return arArchive([]byte("x.txt/\nlast.txt"), [2]string{"/7", body}, [2]string{"/0", body})
		}, []string{long("last.txt"), long("x.txt")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.archive(t)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			leaves, _ := walkAll(t, b, Options{})
			runtime.ReadMemStats(&after)
			var got []string
			for _, l := range leaves {
				got = append(got, ChainString(l.chain))
				if !strings.HasPrefix(string(l.data), body) {
					t.Errorf("%s: data %q", ChainString(l.chain), l.data)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("%d leaves %.300q..., want %d: %.300q...", len(got), got, len(tc.want), tc.want)
			}
			// What a member costs, its name included, is far below the
			// table's 1 MiB that each member copied.
			n := (after.TotalAlloc - before.TotalAlloc) / uint64(max(1, len(leaves)))
			if n > 64<<10 {
				t.Errorf("%d bytes allocated per member, want at most 64 KiB", n)
			}
			t.Logf("%d leaves, %d bytes allocated per member", len(leaves), n)
		})
	}
}

// TestCleanNameCopiesLongNames: a name that cleanName shortens from more
// than 1 KiB is a copy, so that a finding that keeps it does not keep the
// whole name (a tar's PAX path of 1 MiB) alive.
func TestCleanNameCopiesLongNames(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"short", "./etc/shadow", "etc/shadow"},
		{"over 1 KiB", strings.Repeat("d/", 1<<19), strings.Repeat("d/", 512)},
		{"1 MiB of slashes before the name", strings.Repeat("/", 1<<20) + "key.pem", "key.pem"},
		{"control characters", "a\nb\x7f", "a?b?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cleanName(tc.in)
			if got != tc.want {
				t.Fatalf("cleanName = %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
			in, out := uintptr(unsafe.Pointer(unsafe.StringData(tc.in))), uintptr(unsafe.Pointer(unsafe.StringData(got)))
			if len(tc.in) > 1024 && out >= in && out < in+uintptr(len(tc.in)) {
				t.Error("the cleaned name points into the whole name, and keeps it alive")
			}
		})
	}
}
