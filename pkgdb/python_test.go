package pkgdb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// debianPython is Debian's interpreter, whose python3-setuptools,
// python3-wheel and python3-pip build and install wheels offline; a
// python3 earlier on PATH (pyenv, say) may lack them.
const debianPython = "/usr/bin/python3"

// requirePythonModules skips (or, under IMGAUDIT_REQUIRE_TOOLS=1, fails)
// the test when the interpreter lacks a module, as RequireTool does for
// commands.
func requirePythonModules(t *testing.T, py string, mods ...string) {
	t.Helper()
	testutil.RequireTool(t, py)
	out, err := exec.Command(py, "-c", "import "+strings.Join(mods, ", ")).CombinedOutput()
	if err != nil {
		if os.Getenv("IMGAUDIT_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s lacks %v: %v\n%s", py, mods, err, out)
		}
		t.Skipf("%s lacks %v (make test installs them)", py, mods)
	}
}

// buildWheel builds a small distribution with a module, a data file and a
// console script into a wheel, with pip and setuptools, offline.
func buildWheel(t *testing.T) string {
	t.Helper()
	requirePythonModules(t, debianPython, "setuptools", "wheel", "pip", "venv")
	src := t.TempDir()
	files := map[string]string{
		"pyproject.toml": `[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "imgaudit-demo"
version = "1.4.2"

[project.scripts]
imgaudit-demo = "imgaudit_demo:main"

[tool.setuptools.package-data]
imgaudit_demo = ["data/*.pem"]
`,
		"src/imgaudit_demo/__init__.py":      "def main():\n    print('imgaudit demo')\n",
		"src/imgaudit_demo/data/example.pem": "-----BEGIN EXAMPLE-----\nnot a key\n-----END EXAMPLE-----\n",
	}
	for name, content := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dist := filepath.Join(src, "dist")
	testutil.Run(t, debianPython, "-m", "pip", "wheel", "--no-index", "--no-build-isolation", "--no-deps",
		"--disable-pip-version-check", "-w", dist, src)
	wheels, err := filepath.Glob(filepath.Join(dist, "imgaudit_demo-1.4.2-*.whl"))
	if err != nil || len(wheels) != 1 {
		t.Fatalf("built wheel: %v %v", wheels, err)
	}
	return wheels[0]
}

// regularFiles lists the regular files under dir, as guest paths of root.
func regularFiles(t *testing.T, root, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReadPythonRecords(t *testing.T) {
	wheel := buildWheel(t)
	pyver := strings.TrimSpace(string(testutil.Run(t, debianPython, "-c",
		"import sys; print('python%d.%d' % sys.version_info[:2])")))
	pip := []string{"-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
		"--no-warn-script-location"}

	cases := []struct {
		name    string
		install func(t *testing.T, root string)
		site    string // where the distribution lands, in the guest
		script  string // where its console script lands
	}{
		{"pip --root, /usr/local", func(t *testing.T, root string) {
			testutil.Run(t, debianPython, append(pip, "--root", root, "--ignore-installed", "--break-system-packages", wheel)...)
		}, "/usr/local/lib/" + pyver + "/dist-packages", "/usr/local/bin/imgaudit-demo"},
		{"venv under /opt", func(t *testing.T, root string) {
			venv := filepath.Join(root, "opt/app/venv")
			testutil.Run(t, debianPython, "-m", "venv", "--without-pip", venv)
			testutil.Run(t, debianPython, append([]string{"-m", "pip", "--python", filepath.Join(venv, "bin/python")},
				append(pip[2:], wheel)...)...)
		}, "/opt/app/venv/lib/" + pyver + "/site-packages", "/opt/app/venv/bin/imgaudit-demo"},
		{"pip --user, for root", func(t *testing.T, root string) {
			cmd := exec.Command(debianPython, append(pip, "--user", "--break-system-packages", wheel)...)
			cmd.Env = append(os.Environ(), "PYTHONUSERBASE="+filepath.Join(root, "root/.local"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("pip install --user: %v\n%s", err, out)
			}
		}, "/root/.local/lib/" + pyver + "/site-packages", "/root/.local/bin/imgaudit-demo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.install(t, root)
			got, err := readPythonRecords(context.Background(), newHostRootFS(t, root), newPathBudget())
			if err != nil {
				t.Fatal(err)
			}
			// Every file pip installed, and nothing else, with pip's name
			// and version, and the sha256 of the bytes on disk.
			want := append(regularFiles(t, root, tc.site), tc.script)
			slices.Sort(want)
			var paths []string
			for _, r := range got {
				paths = append(paths, r.Path)
				if r.Owner.Manager != "python" || r.Owner.Package != "imgaudit-demo" || r.Owner.Version != "1.4.2" {
					t.Errorf("%s: owner %+v", r.Path, r.Owner)
				}
				if r.Owner.Digest.Algo == "" {
					if !strings.HasSuffix(r.Path, "/RECORD") && !strings.HasSuffix(r.Path, ".pyc") {
						t.Errorf("%s: no digest", r.Path)
					}
					continue
				}
				b, err := os.ReadFile(filepath.Join(root, r.Path))
				if err != nil {
					t.Fatal(err)
				}
				if sum := sha256.Sum256(b); r.Owner.Digest.Algo != "sha256" || !bytes.Equal(sum[:], r.Owner.Digest.Sum) {
					t.Errorf("%s: digest %s:%x, the file's sha256 is %x", r.Path, r.Owner.Digest.Algo, r.Owner.Digest.Sum, sum)
				}
			}
			slices.Sort(paths)
			if !slices.Equal(paths, want) {
				t.Errorf("paths\n%q\nwant the installed files\n%q", paths, want)
			}
		})
	}

	if recs, err := readPythonRecords(context.Background(), newHostRootFS(t, t.TempDir()), newPathBudget()); recs != nil || err != nil {
		t.Fatalf("no Python: got %v, %v; want nil, nil", recs, err)
	}
}

func TestParsePythonRecord(t *testing.T) {
	const site = "/usr/lib/python3/dist-packages"
	sum := "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" // of no bytes
	cases := []struct {
		name, record string
		wantPaths    []string
		wantDigests  int
		wantErr      string
	}{
		{"relative, up to bin, absolute", "a/b.py," + sum + ",0\n../../../bin/tool," + sum + ",0\n/etc/x.conf," + sum + ",0\n",
			[]string{site + "/a/b.py", "/usr/bin/tool", "/etc/x.conf"}, 3, ""},
		{"climbing past the root is refused", "../../../../../../../etc/shadow," + sum + ",0\nok.py," + sum + ",0\n",
			[]string{site + "/ok.py"}, 1, "leaves the root"},
		{"rows without digest are kept", "x.dist-info/RECORD,,\nm/__pycache__/m.cpython-311.pyc,,\n",
			[]string{site + "/x.dist-info/RECORD", site + "/m/__pycache__/m.cpython-311.pyc"}, 0, ""},
		{"quoted path with a comma, CRLF", "\"a,b.py\"," + sum + ",0\r\n", []string{site + "/a,b.py"}, 1, ""},
		{"unknown algorithm loses the digest only", "a.py,crc32=AAAA,1\n", []string{site + "/a.py"}, 0, "unknown algorithm"},
		{"short digest", "a.py,sha256=AAAA,1\n", []string{site + "/a.py"}, 0, "not a sha256"},
		{"padded base64 is read", "a.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=,0\n", []string{site + "/a.py"}, 1, ""},
		{"broken quoting", "\"a.py,sha256=x\n", nil, 0, "offset 0"},
		{"dot segments", "./a/./b/../c.py,,\n", []string{site + "/a/c.py"}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, errs := parsePythonRecord("RECORD", site, []byte(tc.record), newPathBudget())
			var paths []string
			digests := 0
			for _, r := range recs {
				paths = append(paths, r.Path)
				if r.Owner.Digest.Algo != "" {
					digests++
				}
			}
			if !slices.Equal(paths, tc.wantPaths) || digests != tc.wantDigests {
				t.Errorf("paths %q with %d digests, want %q with %d", paths, digests, tc.wantPaths, tc.wantDigests)
			}
			err := fmt.Sprint(errs)
			if tc.wantErr == "" && len(errs) > 0 || tc.wantErr != "" && !strings.Contains(err, tc.wantErr) {
				t.Errorf("errors %s, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

// The seed in testdata/fuzz/FuzzPythonRecord is the RECORD that pip 23
// wrote for imgaudit-demo (buildWheel) with --root.
func FuzzPythonRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, record []byte) {
		recs, _ := parsePythonRecord("RECORD", "/usr/local/lib/python3.11/dist-packages", record, newPathBudget())
		for _, r := range recs {
			if r.Path != path.Clean(r.Path) || !strings.HasPrefix(r.Path, "/") || r.Path == "/" {
				t.Fatalf("path %q is not a clean absolute file path", r.Path)
			}
		}
	})
}

// countingFS counts directory listings.
type countingFS struct {
	FS
	listings int
}

func (c *countingFS) ReadDir(p string) ([]fs.DirEntry, error) {
	c.listings++
	return c.FS.ReadDir(p)
}

// TestPythonSearchBounded: a guest with more home directories than the
// search may list still gives the records found before the cut, and an
// error that says where it was cut.
func TestPythonSearchBounded(t *testing.T) {
	root := t.TempDir()
	site := filepath.Join(root, "usr/lib/python3/dist-packages")
	if err := os.MkdirAll(filepath.Join(site, "tiny-1.0.dist-info"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(site, "tiny-1.0.dist-info/RECORD"), []byte("tiny.py,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const budget = 40
	for i := range budget + 10 {
		if err := os.MkdirAll(filepath.Join(root, "home", fmt.Sprint("u", i), ".local/lib"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fsys := &countingFS{FS: newHostRootFS(t, root)}
	recs, err := searchPythonRecords(context.Background(), fsys, budget, newPathBudget())
	if len(recs) != 1 || recs[0].Path != "/usr/lib/python3/dist-packages/tiny.py" || recs[0].Owner.Package != "tiny" || recs[0].Owner.Version != "1.0" {
		t.Errorf("records %+v, want tiny.py of tiny 1.0", recs)
	}
	if err == nil || !strings.Contains(err.Error(), "search cut after 40 directory listings") {
		t.Errorf("error %v, want the search cut", err)
	}
	// The search's own listings, and one per file read (its size check).
	if fsys.listings > budget+2 {
		t.Errorf("%d directory listings, over the cap of %d", fsys.listings, budget)
	}
}
