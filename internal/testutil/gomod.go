package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/mod/module"
)

// GoModule is a module for GoModDownload: its path, version and files,
// by their path inside the module (go.mod is written for it).
type GoModule struct {
	Path, Version string
	Files         map[string][]byte
}

// GoModDownload has the real go command download modules into
// GOPATH=gopath ($GOPATH/pkg/mod: the zip and its ziphash in
// cache/download, the tree extracted beside), as `go build` or `go mod
// download` leaves a developer's or CI machine. The modules are zipped
// by zip (MODULE@VERSION/... entries, no directory entries, as module
// zips are) into a file:// module proxy, since no public proxy is
// reachable at test time; the checksum database is off.
func GoModDownload(t testing.TB, dir, gopath string, mods []GoModule) {
	t.Helper()
	RequireTool(t, "go", "zip")
	proxy := filepath.Join(dir, "goproxy")
	write := func(p string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	for _, m := range mods {
		gomod := []byte("module " + m.Path + "\n\ngo 1.21\n")
		src := filepath.Join(dir, "gomod-src", m.Path+"@"+m.Version)
		write(filepath.Join(src, "go.mod"), gomod)
		for name, b := range m.Files {
			write(filepath.Join(src, name), b)
		}
		esc, err := module.EscapePath(m.Path) // the proxy's paths are escaped: "!x" for "X"
		if err != nil {
			t.Fatal(err)
		}
		v := filepath.Join(proxy, esc, "@v")
		write(filepath.Join(v, "list"), []byte(m.Version+"\n"))
		write(filepath.Join(v, m.Version+".info"), []byte(`{"Version":"`+m.Version+`","Time":"2026-01-01T00:00:00Z"}`))
		write(filepath.Join(v, m.Version+".mod"), gomod)
		cmd := exec.Command("zip", "-q", "-r", "-D", "-X", filepath.Join(v, m.Version+".zip"), m.Path+"@"+m.Version)
		cmd.Dir = filepath.Join(dir, "gomod-src")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zip %s: %v\n%s", m.Path, err, out)
		}
		args = append(args, m.Path+"@"+m.Version)
	}
	home := filepath.Join(dir, "go-home")
	os.MkdirAll(home, 0o755)
	cmd := exec.Command("go", append([]string{"mod", "download"}, args...)...)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "HOME="+home, "GOPATH="+gopath, "GOMODCACHE="+filepath.Join(gopath, "pkg/mod"),
		"GOPROXY=file://"+proxy, "GOSUMDB=off", "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "GOENV=off", "GO111MODULE=on")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
}
