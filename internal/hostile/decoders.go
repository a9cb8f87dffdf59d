package hostile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// XzDictionaries writes a 32 MiB ext4 (mkfs.ext4 -d) of 16 xz files, each
// a stream whose LZMA2 dictionary is 128 MiB (the xz tool's, preset 0
// with dict=128MiB) holding 94 copies of the same 1.6 MB of random bytes:
// 150 MB decoded from 1.6 MB, under the decoders' 100:1 expansion cap,
// and written through the whole dictionary. Each file then gets a small
// xz stream of its own number appended, so that no two are the same
// content. A decoder's memory cap is per walk, and a scan decodes on
// every core: before the decode pass shared a memory gate, 2 cores held
// two such dictionaries at once (722 MB of RSS), 16 cores sixteen (2.4
// GB).
func XzDictionaries(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "xz.src")
	defer os.RemoveAll(src)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files, err := xzDictionaryFiles(ctx, 16)
	if err != nil {
		return "", err
	}
	for i, b := range files {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("log.%d.xz", i)), b, 0o644); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "xz-dictionaries.ext4")
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-d", src, path, "32M"); err != nil {
		return "", err
	}
	return path, nil
}

// LayersXzDictionaries writes a docker save tarball of two layers, each
// of 8 of XzDictionaries' xz files: the registry reads an image's layers
// side by side, and each layer decodes its files one after the other, so
// without one memory gate for both the two layers held two 128 MiB
// dictionaries at once.
func LayersXzDictionaries(ctx context.Context, dir string) (string, error) {
	files, err := xzDictionaryFiles(ctx, 16)
	if err != nil {
		return "", err
	}
	var layers [][]layerEntry
	for l := range 2 {
		var entries []layerEntry
		for i := l * 8; i < l*8+8; i++ {
			entries = append(entries, layerEntry{name: fmt.Sprintf("var/log/app.%d.xz", i), body: files[i]})
		}
		layers = append(layers, entries)
	}
	p := filepath.Join(dir, "layers-xz-dictionaries.tar")
	return p, writeDockerSave(p, "example.com/hostile/logs:1", layers...)
}

// xzDictionaryFiles returns n distinct xz files of XzDictionaries' kind.
func xzDictionaryFiles(ctx context.Context, n int) ([][]byte, error) {
	block := randomBytes(5, 1_600_000)
	var stream bytes.Buffer
	cmd := exec.CommandContext(ctx, "xz", "--format=xz", "--lzma2=preset=0,dict=128MiB", "-T1", "-c")
	cmd.Stdin = bytes.NewReader(bytes.Repeat(block, 94))
	cmd.Stdout = &stream
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	var files [][]byte
	for i := range n {
		var tail bytes.Buffer
		cmd := exec.CommandContext(ctx, "xz", "--format=xz", "-c")
		cmd.Stdin = bytes.NewReader(fmt.Appendf(nil, "file %d\n", i))
		cmd.Stdout = &tail
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		files = append(files, append(bytes.Clone(stream.Bytes()), tail.Bytes()...))
	}
	return files, nil
}

// GzipDistinctHits writes a 200 MiB ext4 (mkfs.ext4 -d) of 4 gzip files
// (the gzip tool's), each of 32 MiB of distinct AWS key IDs, one per
// line, the four sets disjoint: 6.4 million matches to validate in what
// decodes. A decoded stream's chunk held all its matches until it ended
// (200,000 in 4 MiB), and the decode pass held a file's first 100,000
// until its end, on every core: 562 MB of RSS on 2 cores and 1 GB on 4,
// 13 s of wall time.
func GzipDistinctHits(ctx context.Context, dir string) (string, error) {
	src := filepath.Join(dir, "gzip.src")
	defer os.RemoveAll(src)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	const size = 32 << 20
	lines := int64(size / 21)
	for k := range int64(4) {
		path := filepath.Join(src, fmt.Sprintf("keys.%d.log", k))
		line := []byte("AKIA0000000000000000\n")
		if err := writeRepeated(path, size, func(i int64) []byte {
			i += k * lines
			for j := 19; j >= 4; j-- { // in base 32 over the 16 ID characters
				line[j] = upperDigits[i&31]
				i >>= 5
			}
			return line
		}); err != nil {
			return "", err
		}
		if err := run(ctx, "gzip", "-1", path); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, "gzip-distinct-hits.ext4")
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-d", src, path, "200M"); err != nil {
		return "", err
	}
	return path, nil
}
