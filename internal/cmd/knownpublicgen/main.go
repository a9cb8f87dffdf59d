// Command knownpublicgen writes downgrade/knownpublic_gen.go from
// downgrade/known_public.toml: the fingerprints of the private keys that
// the named software publishes (test keys compiled into a program or a
// library, a kernel's self-test vectors, a standard's examples).
//
//	go generate ./downgrade   # runs: go run ../internal/cmd/knownpublicgen known_public.toml knownpublic_gen.go
//
// For each source that names a Debian package it runs `apt-get download`
// (the apt mirror and lists of this machine) in a temporary directory,
// unpacks the .deb with `dpkg-deb -x`, and scans the files its globs
// match with every built-in rule, the memory rules included; then the
// same for each of the file's suites (a later Debian release: guests run
// other releases than this machine), from lists of their own that `apt-get
// update` fetches into the temporary directory from the file's mirror,
// leaving this machine's apt state alone. A package
// whose files match no glob is followed to its dependencies, one level,
// so a metapackage (linux-image-amd64) names the package of the day. A
// Linux bzImage is scanned as its decompressed kernel (the setup
// header's payload: xz, gzip or zstd). Sources with aes_keys list AES
// keys directly; their fingerprints are those of the keys' schedules as
// the aes-key-schedule rule reports them.
//
// It needs root (apt-get download as root), apt, dpkg-deb and xz. It is a
// generator, never run by tests: the list is data, checked in, and the
// tests check findings against it on real files.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"go/format"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/detectors/structural"
)

type sourceSpec struct {
	ID          string   `toml:"id"`
	Description string   `toml:"description"`
	Package     string   `toml:"package"`
	Files       []string `toml:"files"`
	AESKeys     []string `toml:"aes_keys"`
	From        string   `toml:"from"` // where aes_keys come from
}

// spec is known_public.toml.
type spec struct {
	// Mirror and Suites: the Debian releases whose packages are scanned
	// besides this machine's own (its apt lists), from Mirror.
	Mirror string       `toml:"mirror"`
	Suites []string     `toml:"suites"`
	Source []sourceSpec `toml:"source"`
}

type key struct{ rule, fingerprint, keyFingerprint string }

type source struct {
	spec sourceSpec
	from string
	keys []key
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: knownpublicgen known_public.toml knownpublic_gen.go")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "knownpublicgen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	var spec spec
	if _, err := toml.DecodeFile(in, &spec); err != nil {
		return err
	}
	engine, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "knownpublicgen-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	apts := []apt{{}} // this machine's own configuration first
	for _, suite := range spec.Suites {
		a, err := suiteApt(filepath.Join(tmp, "apt-"+suite), spec.Mirror, suite)
		if err != nil {
			return err
		}
		apts = append(apts, a)
	}
	var sources []source
	for _, sp := range spec.Source {
		s := source{spec: sp}
		switch {
		case sp.Package != "":
			var froms []string
			for i, a := range apts {
				dir := filepath.Join(tmp, fmt.Sprintf("%s-%d", sp.ID, i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					return err
				}
				files, names, pkg, err := fetch(a, dir, sp.Package, sp.Files)
				if err != nil {
					return fmt.Errorf("source %s: %w", sp.ID, err)
				}
				// From names the files that hold keys, not every file the
				// globs matched (a source tree has thousands).
				var held []string
				for j, f := range files {
					b, err := contents(f)
					if err != nil {
						return fmt.Errorf("source %s: %w", sp.ID, err)
					}
					n := len(s.keys)
					ms := engine.FindAll(b, detectors.ScanOptions{Memory: true})
					if s.keys = appendKeys(s.keys, ms); len(s.keys) > n || len(appendKeys(nil, ms)) > 0 {
						held = append(held, names[j])
					}
				}
				froms = append(froms, pkg+": "+strings.Join(held, ", "))
			}
			s.from = strings.Join(froms, "; ")
		case len(sp.AESKeys) > 0 && sp.From != "":
			s.from = sp.From
			for _, h := range sp.AESKeys {
				k, err := hex.DecodeString(h)
				if err != nil {
					return fmt.Errorf("source %s: AES key %q: %w", sp.ID, h, err)
				}
				ms := engine.FindAll(structural.ExpandAESKey(k), detectors.ScanOptions{Memory: true})
				if len(ms) == 0 {
					return fmt.Errorf("source %s: the schedule of AES key %s is not found by the rules", sp.ID, h)
				}
				s.keys = appendKeys(s.keys, ms)
			}
		default:
			return fmt.Errorf("source %s: neither a package nor aes_keys with from", sp.ID)
		}
		if len(s.keys) == 0 {
			return fmt.Errorf("source %s: no private key found in %s", sp.ID, s.from)
		}
		fmt.Fprintf(os.Stderr, "%s: %d keys in %s\n", sp.ID, len(s.keys), s.from)
		sources = append(sources, s)
	}
	src, err := generated(filepath.Base(in), sources)
	if err != nil {
		return err
	}
	return os.WriteFile(out, src, 0o644)
}

// appendKeys adds the private keys among ms (rules of category
// private-key and memory), each (rule, fingerprint) once.
func appendKeys(keys []key, ms []detectors.Match) []key {
	for _, m := range ms {
		if m.Category != "private-key" && m.Category != "memory" {
			continue
		}
		k := key{m.RuleID, m.Fingerprint, m.KeyFingerprint}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// apt is the apt configuration packages are downloaded with: options
// for apt-get (none: this machine's).
type apt struct{ options []string }

// suiteApt makes an apt configuration for suite of mirror under dir (its
// sources list, lists and cache) and fetches its lists. Only the Release
// files signed by a key of this machine's keyring are accepted.
func suiteApt(dir, mirror, suite string) (apt, error) {
	if mirror == "" {
		return apt{}, fmt.Errorf("suite %s: no mirror", suite)
	}
	for _, d := range []string{"lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return apt{}, err
		}
	}
	list := filepath.Join(dir, "sources.list")
	if err := os.WriteFile(list, []byte(fmt.Sprintf("deb %s %s main\n", mirror, suite)), 0o644); err != nil {
		return apt{}, err
	}
	a := apt{options: []string{
		"-o", "Dir::Etc::SourceList=" + list,
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "sources.list.d"),
		"-o", "Dir::Etc::Preferences=/dev/null",
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(dir, "preferences.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Dir::State::status=/dev/null",
		"-o", "APT::Sandbox::User=root",
	}}
	cmd := exec.Command("apt-get", append(slices.Clone(a.options), "update", "-q")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return apt{}, fmt.Errorf("apt-get update for %s %s: %w: %s", mirror, suite, err, out)
	}
	return a, nil
}

// fetch downloads pkg with a, unpacks it under dir and returns the files
// its globs match, their paths in the package ("/usr/bin/openssl") and
// the package's name and version ("openssl 3.0.17-1~deb12u2"). A package
// without such files is followed to its dependencies.
func fetch(a apt, dir, pkg string, globs []string) (files, names []string, from string, err error) {
	// "libgnutls30t64 | libgnutls30": the first a suite has (packages
	// renamed between releases).
	var deb string
	for _, alt := range strings.Split(pkg, "|") {
		if deb, err = download(a, dir, strings.TrimSpace(alt)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, "", err
	}
	files, names, from, err = unpack(dir, deb, globs)
	if err != nil || len(files) > 0 {
		return files, names, from, err
	}
	deps, err := exec.Command("dpkg-deb", "-f", deb, "Depends").Output()
	if err != nil {
		return nil, nil, "", fmt.Errorf("dpkg-deb -f %s Depends: %w", deb, err)
	}
	for _, d := range strings.Split(string(deps), ",") {
		name := strings.Fields(strings.Split(d, "|")[0])
		if len(name) == 0 {
			continue
		}
		deb, err := download(a, dir, name[0])
		if err != nil {
			return nil, nil, "", err
		}
		if files, names, from, err := unpack(dir, deb, globs); err != nil || len(files) > 0 {
			return files, names, from, err
		}
	}
	return nil, nil, "", fmt.Errorf("%s and its dependencies hold no file matching %q", pkg, globs)
}

func download(a apt, dir, pkg string) (string, error) {
	cmd := exec.Command("apt-get", append(slices.Clone(a.options), "download", "-q", pkg)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w: %s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: %d .deb files", pkg, len(debs))
	}
	return debs[0], nil
}

// unpack unpacks deb under dir and returns the files globs match, their
// paths in the package, and the package's name and version.
func unpack(dir, deb string, globs []string) (files, names []string, from string, err error) {
	root := strings.TrimSuffix(deb, ".deb")
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		return nil, nil, "", fmt.Errorf("dpkg-deb -x %s: %w: %s", deb, err, out)
	}
	for _, g := range globs {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			return nil, nil, "", err
		}
		for _, f := range m {
			if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
				files = append(files, f)
				names = append(names, "/"+strings.TrimPrefix(f, root+"/"))
			}
		}
	}
	fields, err := exec.Command("dpkg-deb", "-W", "--showformat", "${Package} ${Version}", deb).Output()
	if err != nil {
		return nil, nil, "", fmt.Errorf("dpkg-deb -W %s: %w", deb, err)
	}
	return files, names, string(fields), nil
}

// contents reads a file; a Linux bzImage is read as the kernel it
// decompresses to, where the self-test vectors are.
func contents(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 0x250 || string(b[0x202:0x206]) != "HdrS" {
		return b, nil
	}
	// The boot protocol's setup header: the protected-mode kernel starts
	// after (setup_sects + 1) sectors; payload_offset and payload_length
	// place the compressed kernel in it.
	start := (int(b[0x1f1]) + 1) * 512
	off, n := int(binary.LittleEndian.Uint32(b[0x248:])), int(binary.LittleEndian.Uint32(b[0x24c:]))
	if start+off+n > len(b) || n == 0 {
		return nil, fmt.Errorf("%s: bzImage payload at %d+%d outside the file", path, start+off, n)
	}
	payload := b[start+off : start+off+n]
	var r io.Reader
	switch {
	case bytes.HasPrefix(payload, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		// The kernel's xz stream uses the x86 BCJ filter, which
		// ulikunitz/xz does not implement: xz(1) does.
		cmd := exec.Command("xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(payload)
		kernel, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%s: bzImage payload: xz -dc: %w", path, err)
		}
		return kernel, nil
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		r, err = gzip.NewReader(bytes.NewReader(payload))
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(payload))
		r = d
	default:
		return nil, fmt.Errorf("%s: bzImage payload at %d compressed with an unknown method (% x)", path, start+off, payload[:4])
	}
	if err != nil {
		return nil, fmt.Errorf("%s: bzImage payload: %w", path, err)
	}
	kernel, err := io.ReadAll(r)
	// xz payloads are padded with zeros past the stream.
	if err != nil && len(kernel) == 0 {
		return nil, fmt.Errorf("%s: bzImage payload: %w", path, err)
	}
	return kernel, nil
}

func generated(in string, sources []source) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/cmd/knownpublicgen from %s; DO NOT EDIT.\n\npackage downgrade\n\n", in)
	b.WriteString("// knownPublicSources returns a fresh copy of the sources and their keys.\nfunc knownPublicSources() []KnownSource {\n\treturn []KnownSource{\n")
	for _, s := range sources {
		fmt.Fprintf(&b, "\t\t{\n\t\t\tID: %s,\n\t\t\tDescription: %s,\n\t\t\tFrom: %s,\n\t\t\tKeys: []KnownKey{\n",
			strconv.Quote(s.spec.ID), strconv.Quote(s.spec.Description), strconv.Quote(s.from))
		for _, k := range s.keys {
			fmt.Fprintf(&b, "\t\t\t\t{Rule: %s, Fingerprint: %s", strconv.Quote(k.rule), strconv.Quote(k.fingerprint))
			if k.keyFingerprint != "" {
				fmt.Fprintf(&b, ", KeyFingerprint: %s", strconv.Quote(k.keyFingerprint))
			}
			b.WriteString("},\n")
		}
		b.WriteString("\t\t\t},\n\t\t},\n")
	}
	b.WriteString("\t}\n}\n")
	return format.Source(b.Bytes())
}
