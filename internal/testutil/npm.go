package testutil

import (
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// NPMPackage is a package for NPMInstall: its name ("@scope/name" for a
// scoped one), version and files, by their path inside the package.
type NPMPackage struct {
	Name, Version string
	Files         map[string][]byte
	Executable    []string // files of Files packed with mode 0755
}

// NPMInstall has the real npm install packages into appDir, with its
// cache in cacheDir (a user's ~/.npm), as `npm install` leaves a machine:
// each package is packed by `npm pack` and served by a registry on
// 127.0.0.1 that speaks the npm registry's protocol (a package document
// naming the tarball and its integrity, and the tarball), since the
// public registry is not reachable at test time. It returns the tarballs
// npm pack made, by package name.
func NPMInstall(t testing.TB, dir, cacheDir, appDir string, pkgs []NPMPackage) map[string]string {
	t.Helper()
	RequireTool(t, "npm", "node")
	registry, env, tarballs, names := npmRegistry(t, dir, appDir, pkgs)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", append([]string{"install", "--registry", registry, "--cache", cacheDir}, names...)...)
	cmd.Dir, cmd.Env = appDir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install: %v\n%s", err, out)
	}
	return tarballs
}

// PnpmInstall has the real pnpm add the packages to appDir, with its
// content-addressable store in storeDir (a user's
// ~/.local/share/pnpm/store), served as NPMInstall serves them: pnpm
// keeps each package file once in the store and hard-links it into
// appDir's node_modules/.pnpm.
func PnpmInstall(t testing.TB, dir, storeDir, appDir string, pkgs []NPMPackage) {
	t.Helper()
	RequireTool(t, "pnpm", "npm", "node")
	registry, env, _, names := npmRegistry(t, dir, appDir, pkgs)
	cmd := exec.Command("pnpm", append([]string{"add", "--registry", registry, "--store-dir", storeDir, "--reporter", "silent"}, names...)...)
	cmd.Dir, cmd.Env = appDir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pnpm add: %v\n%s", err, out)
	}
}

// YarnInstall has the real yarn 1 add the packages to appDir, served as
// NPMInstall serves them, with its cache in cacheFolder (root's is
// /usr/local/share/.cache/yarn, a user's ~/.cache/yarn): yarn unpacks each
// package there, keeps its tarball beside it (.yarn-tarball.tgz) and
// copies the files into appDir's node_modules.
func YarnInstall(t testing.TB, dir, cacheFolder, appDir string, pkgs []NPMPackage) {
	t.Helper()
	RequireTool(t, "yarn", "npm", "node")
	registry, env, _, names := npmRegistry(t, dir, appDir, pkgs)
	cmd := exec.Command("yarn", append([]string{"add", "--registry", registry, "--cache-folder", cacheFolder, "--non-interactive", "--silent", "--no-progress"}, names...)...)
	cmd.Dir, cmd.Env = appDir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("yarn add: %v\n%s", err, out)
	}
}

// YarnBerryInstall has the real yarn 4 (the command yarn-berry) add the
// packages to appDir, served as NPMInstall serves them, with its global
// cache in home (home/.yarn/berry/cache) and appDir's yarn.lock
// recording each package's zip by its SHA-512. linker is yarn's
// nodeLinker: "pnp" (the default: packages are read from the zips) or
// "node-modules" (unpacked into node_modules too). The registry's
// documents carry no publish times, so yarn's age gate (a day by
// default) is off.
func YarnBerryInstall(t testing.TB, dir, home, appDir, linker string, pkgs []NPMPackage) {
	t.Helper()
	RequireTool(t, "yarn-berry", "npm", "node")
	registry, env, _, names := npmRegistry(t, dir, appDir, pkgs)
	rc := fmt.Sprintf("npmRegistryServer: %q\nunsafeHttpWhitelist:\n  - 127.0.0.1\nenableGlobalCache: true\nnodeLinker: %s\nenableTelemetry: false\nnpmMinimalAgeGate: 0\n",
		strings.TrimSuffix(registry, "/"), linker)
	for name, data := range map[string]string{".yarnrc.yml": rc, "yarn.lock": ""} {
		if err := os.WriteFile(filepath.Join(appDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("yarn-berry", append([]string{"add"}, names...)...)
	cmd.Dir = appDir
	cmd.Env = append(env, "HOME="+home, "YARN_ENABLE_IMMUTABLE_INSTALLS=false", "YARN_ENABLE_PROGRESS_BARS=false", "CI=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("yarn-berry add: %v\n%s", err, out)
	}
}

// npmRegistry packs each package with `npm pack` and serves them from a
// registry on 127.0.0.1 that speaks the npm registry's protocol (a
// package document naming the tarball and its integrity, and the
// tarball), and writes appDir's package.json. It returns the registry's
// URL, the environment for npm and pnpm (a HOME of its own, so no ~/.npmrc
// of the host's), the tarballs by package name, and the names.
func npmRegistry(t testing.TB, dir, appDir string, pkgs []NPMPackage) (string, []string, map[string]string, []string) {
	t.Helper()
	home := filepath.Join(dir, "npm-home")
	for _, d := range []string{home, appDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "HOME="+home, "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	tarballs := map[string]string{}
	docs := map[string][]byte{}  // package document by request path
	files := map[string]string{} // tarball by request path
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := url.PathUnescape(r.URL.EscapedPath())
		if b, ok := docs[p]; ok {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
			return
		}
		if f, ok := files[p]; ok {
			http.ServeFile(w, r, f)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	var names []string
	for _, p := range pkgs {
		src := filepath.Join(dir, "npm-src", strings.ReplaceAll(p.Name, "/", "_"))
		manifest, _ := json.Marshal(map[string]string{"name": p.Name, "version": p.Version})
		all := map[string][]byte{"package.json": manifest}
		for name, data := range p.Files {
			all[name] = data
		}
		for name, data := range all {
			f := filepath.Join(src, name)
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o644)
			if slices.Contains(p.Executable, name) {
				mode = 0o755
			}
			if err := os.WriteFile(f, data, mode); err != nil {
				t.Fatal(err)
			}
		}
		packDir := filepath.Join(dir, "npm-packed", strings.ReplaceAll(p.Name, "/", "_"))
		os.MkdirAll(packDir, 0o755)
		cmd := exec.Command("npm", "pack", "--silent", "--pack-destination", packDir)
		cmd.Dir, cmd.Env = src, env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("npm pack %s: %v", p.Name, err)
		}
		tgz := filepath.Join(packDir, strings.TrimSpace(string(out)))
		b, err := os.ReadFile(tgz)
		if err != nil {
			t.Fatal(err)
		}
		s512, s1 := sha512.Sum512(b), sha1.Sum(b)
		base := p.Name[strings.LastIndex(p.Name, "/")+1:]
		tarPath := "/" + p.Name + "/-/" + base + "-" + p.Version + ".tgz"
		files[tarPath] = tgz
		doc, _ := json.Marshal(map[string]any{
			"name":      p.Name,
			"dist-tags": map[string]string{"latest": p.Version},
			"versions": map[string]any{p.Version: map[string]any{
				"name": p.Name, "version": p.Version,
				"dist": map[string]string{
					"tarball":   srv.URL + tarPath,
					"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]),
					"shasum":    hex.EncodeToString(s1[:]),
				},
			}},
		})
		docs["/"+p.Name] = doc
		tarballs[p.Name] = tgz
		names = append(names, p.Name)
	}
	if err := os.WriteFile(filepath.Join(appDir, "package.json"), []byte(`{"name":"app","version":"1.0.0","private":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/", env, tarballs, names
}
