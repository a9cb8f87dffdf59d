package pkgdb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// apt's package cache. apt-get keeps every package it downloads in
// /var/cache/apt/archives until `apt-get clean` (unattended-upgrades and
// a plain `apt-get upgrade` leave them there), and a kernel package alone
// holds 4,000 compressed modules in its data.tar.xz. What vouches for such
// a file is the guest's own apt lists: each Packages index names a
// package's version, architecture and SHA-256, and a cached .deb whose
// digest equals its index entry is the repository's package, byte for
// byte, on every machine that downloaded it. readAptCache records each
// cached .deb under the index entries that could have produced its name;
// the scanner hashes the file and compares, as for dpkg's md5sums.
const (
	aptArchivesDir = "/var/cache/apt/archives"
	aptListsDir    = "/var/lib/apt/lists"
	// maxAptCached bounds the cached packages recorded (a server that
	// was never cleaned holds a few thousand).
	maxAptCached = 1 << 16
	// maxAptLine bounds one line of an index (a Provides or Built-Using
	// list: Debian 13's longest is 75,649 bytes).
	maxAptLine = 1 << 20
)

// aptLimits bound what readAptCache reads of the lists: how many index
// files, how many bytes one decompresses to, and all of them together.
type aptLimits struct {
	lists               int
	listBytes, allBytes int64
}

// defaultAptLimits: Debian 13's main index is 57 MB decompressed, and a
// machine with several suites, components and architectures holds a few
// dozen such files; the total keeps 256 small gzip bombs from making 256
// GiB.
func defaultAptLimits() aptLimits {
	return aptLimits{lists: 256, listBytes: 1 << 30, allBytes: 2 << 30}
}

// Opener is implemented by filesystems that open a file to read in place
// (guestfs.Files). A reader streams large files through it instead of
// reading them whole; without it, they are read whole within their cap.
type Opener interface {
	Open(path string) (fsys.File, error)
}

// readAptCache reads apt's package cache: the .deb files in
// /var/cache/apt/archives, each with the SHA-256 that an entry of the
// apt lists (/var/lib/apt/lists/*_Packages, plain or compressed as
// Acquire::GzipIndexes leaves them) records for the package, version and
// architecture its name spells. Nothing is read when the cache holds no
// package, so a cleaned machine pays one directory listing. A compressed
// index's decoder holds its memory at gate (nil: only the decoders'
// default cap bounds it), so that it counts with the decoders that run
// beside it.
func readAptCache(ctx context.Context, files FS, gate *decode.MemoryGate, paths *pathBudget) ([]Record, error) {
	return readAptCacheWith(ctx, files, defaultAptLimits(), gate, paths)
}

func readAptCacheWith(ctx context.Context, files FS, lim aptLimits, gate *decode.MemoryGate, paths *pathBudget) ([]Record, error) {
	ents, err := files.ReadDir(aptArchivesDir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", aptArchivesDir, err)
	}
	cached := map[string]bool{} // file names, as apt writes them
	for _, e := range ents {
		if len(cached) >= maxAptCached {
			break
		}
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".deb") {
			cached[e.Name()] = true
		}
	}
	if len(cached) == 0 {
		return nil, nil
	}
	lists, err := files.ReadDir(aptListsDir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil // no index: nothing vouches for the cache
		}
		return nil, fmt.Errorf("%s: %w", aptListsDir, err)
	}
	var out []Record
	var errs []error
	n := 0
	left := lim.allBytes
	for _, e := range lists {
		codec, ok := aptIndexCodec(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if n++; n > lim.lists {
			errs = append(errs, fmt.Errorf("%s: over %d package indexes: the rest are not read", aptListsDir, lim.lists))
			break
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		file := path.Join(aptListsDir, e.Name())
		if left <= 0 {
			errs = append(errs, fmt.Errorf("%s: package indexes over %d bytes in all, decompressed: the rest are not read", aptListsDir, lim.allBytes))
			break
		}
		var stop error // paths spent: the index's further entries are not kept
		err := readAptIndex(ctx, files, file, codec, gate, min(lim.listBytes, left), &left, func(pkg, version, arch string, sum []byte) {
			name := aptCacheName(pkg, version, arch)
			if cached[name] && len(out) < maxRecords && stop == nil {
				// The name is one the cache directory lists.
				n := len(aptArchivesDir) + 1 + len(name)
				fit, err := paths.fit(n, func() string { return fmt.Sprintf("%s: the package %s (%d bytes)", file, truncated(name, 256), n) })
				if err != nil {
					stop = fmt.Errorf("%s: %w", file, err)
				}
				if !fit {
					return
				}
				out = append(out, Record{Path: path.Join(aptArchivesDir, name), Owner: Owner{
					Manager: "apt", Package: pkg, Version: version, Arch: arch,
					Digest: Digest{Algo: "sha256", Sum: sum},
				}})
			}
		})
		if err != nil && len(errs) < 8 {
			errs = append(errs, err)
		}
		if stop != nil {
			return out, errors.Join(append(errs, stop)...)
		}
	}
	return out, errors.Join(errs...)
}

// aptIndexCodec says whether name is a binary package index as apt
// stores it in its lists directory (…_binary-amd64_Packages, or a flat
// repository's …_Packages), and how it is compressed ("" for none).
func aptIndexCodec(name string) (string, bool) {
	for _, c := range []string{"", ".lz4", ".gz", ".xz", ".zst"} {
		if strings.HasSuffix(name, "_Packages"+c) {
			return c, true
		}
	}
	return "", false
}

// readAptIndex calls fn with the package, version, architecture and
// SHA-256 of each entry of one Packages index. Entries without all four
// are skipped. The file is streamed when fsys can open it.
func readAptIndex(ctx context.Context, files FS, file, codec string, gate *decode.MemoryGate, limit int64, left *int64, fn func(pkg, version, arch string, sum []byte)) error {
	var raw io.Reader
	if o, ok := files.(Opener); ok {
		f, err := o.Open(file)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		raw = io.NewSectionReader(f, 0, f.Size())
	} else {
		b, err := readBounded(files, file, limit)
		if err != nil {
			return err
		}
		raw = bytes.NewReader(b)
	}
	r, err := decompressIndex(ctx, raw, codec, gate)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer r.Close()
	lr := &io.LimitedReader{R: r, N: limit + 1}
	err = parseAptIndex(ctx, lr, fn)
	*left -= limit + 1 - lr.N
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if lr.N <= 0 {
		return fmt.Errorf("%s: over %d bytes decompressed: the rest is not read", file, limit)
	}
	return nil
}

// decompressIndex returns r decompressed, when its name says it is
// compressed (codec, the name's extension): by the decode package's
// stream readers, which learn the codec from the magic number and check
// an xz dictionary or zstd window against their memory cap before
// allocating it. A guest's 68-byte .xz list declaring a 256 MiB
// dictionary made the xz and zstd libraries' own readers allocate it.
func decompressIndex(ctx context.Context, r io.Reader, codec string, gate *decode.MemoryGate) (io.ReadCloser, error) {
	if codec == "" {
		return io.NopCloser(r), nil
	}
	d, _, err := openStream(ctx, r, gate) // one list at a time
	if err != nil {
		return nil, fmt.Errorf("named %s: %w", codec, err)
	}
	return d, nil
}

// parseAptIndex reads the entries of a Packages index: deb822 paragraphs
// separated by blank lines, of which only four fields matter here.
func parseAptIndex(ctx context.Context, r io.Reader, fn func(pkg, version, arch string, sum []byte)) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var pkg, version, arch string
	var sum []byte
	flush := func() {
		if pkg != "" && version != "" && arch != "" && len(sum) == 32 {
			fn(pkg, version, arch, sum)
		}
		pkg, version, arch, sum = "", "", "", nil
	}
	for lines := 0; ; lines++ {
		if lines%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: drop it to its end, within maxAptLine.
			skipped := len(line)
			for errors.Is(err, bufio.ErrBufferFull) && skipped < maxAptLine {
				line, err = br.ReadSlice('\n')
				skipped += len(line)
			}
			if err != nil {
				return fmt.Errorf("a line over %d bytes", maxAptLine)
			}
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// a continuation line (Description, Conffiles)
		default:
			k, v, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				break
			}
			v = bytes.TrimSpace(v)
			switch string(k) {
			case "Package":
				pkg = string(v)
			case "Version":
				version = string(v)
			case "Architecture":
				arch = string(v)
			case "SHA256":
				if s, err := hex.DecodeString(string(v)); err == nil {
					sum = s
				}
			}
		}
		if err != nil {
			flush()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// aptCacheName is the name apt gives a downloaded package in its cache:
// package, version and architecture joined by "_", each quoted as apt's
// QuoteString quotes them ("_" and ":" everywhere, "." in the
// architecture, and "%", space, control and non-ASCII bytes), so that a
// version's epoch "1:" is spelled "1%3a".
func aptCacheName(pkg, version, arch string) string {
	return aptQuote(pkg, "_:") + "_" + aptQuote(version, "_:") + "_" + aptQuote(arch, "_:.") + ".deb"
}

func aptQuote(s, bad string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(bad, c) >= 0 || c == '%' || c <= 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
