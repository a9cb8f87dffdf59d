package mdblock

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReplace(t *testing.T) {
	b := Block{"<!-- B -->\n", "<!-- E -->\n", "new\n"}
	c := Block{"<!-- C -->\n", "<!-- D -->\n", ""}
	for _, tc := range []struct {
		name, doc string
		blocks    []Block
		want      string // "": an error
	}{
		{"replaced", "a\n<!-- B -->\nold\n<!-- E -->\nz\n", []Block{b}, "a\n<!-- B -->\nnew\n<!-- E -->\nz\n"},
		{"empty", "<!-- B -->\n<!-- E -->\n", []Block{b}, "<!-- B -->\nnew\n<!-- E -->\n"},
		{"two blocks", "<!-- B -->\n<!-- E -->\n-\n<!-- C -->\nx\n<!-- D -->\n", []Block{b, c}, "<!-- B -->\nnew\n<!-- E -->\n-\n<!-- C -->\n<!-- D -->\n"},
		{"no end", "<!-- B -->\nold\n", []Block{b}, ""},
		{"reversed", "<!-- E -->\n<!-- B -->\n", []Block{b}, ""},
		{"second missing", "<!-- B -->\n<!-- E -->\n", []Block{b, c}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Replace([]byte(tc.doc), tc.blocks...)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("no error: %q", got)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("Replace = %q, %v; want %q", got, err, tc.want)
			}
			if text, ok := Text(got, tc.blocks[0]); !ok || text != tc.blocks[0].Text {
				t.Errorf("Text = %q, %v", text, ok)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "doc.md")
	b := Block{"<!-- B -->\n", "<!-- E -->\n", "new\n"}
	if err := os.WriteFile(p, []byte("<!-- B -->\nold\n<!-- E -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run changes nothing
		if err := Rewrite(p, b); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != "<!-- B -->\nnew\n<!-- E -->\n" {
			t.Fatalf("file = %q", got)
		}
	}
	if err := Rewrite(filepath.Join(t.TempDir(), "missing.md"), b); err == nil {
		t.Error("a missing file was accepted")
	}
}
