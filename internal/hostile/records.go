package hostile

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
)

// LayersRecords writes a docker save tarball of an image of 16 layers,
// each adding a dpkg md5sums file of 40 MiB under a name of its own: one
// line repeated, which gzip and the registry's record packing (zstd)
// take to almost nothing, so the run's cap on packed records never
// counts them. The image's judging unpacked every layer's records at
// once: 640 MiB here (a peak RSS of 523 MiB for 12 such layers), a GiB
// for 16 layers of 60 MiB.
func LayersRecords(ctx context.Context, dir string) (string, error) {
	line := []byte("0123456789abcdef0123456789abcdef  usr/share/doc/hostile/file\n")
	body := bytes.Repeat(line, (40<<20)/len(line))
	var layers [][]layerEntry
	for i := range 16 {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		layers = append(layers, []layerEntry{{name: fmt.Sprintf("var/lib/dpkg/info/hostile%d.md5sums", i), body: body}})
	}
	p := filepath.Join(dir, "layers-records.tar")
	return p, writeDockerSave(p, "example.com/hostile/records:1", layers...)
}

// LayersRecordsDictionaries writes a docker save tarball of two layers,
// each a dpkg md5sums file of 63 MiB (within a layer's 64 MiB of records)
// and 8 of XzDictionaries' xz files: the registry reads the two layers
// side by side, and each layer held its records unpacked until its walk
// ended, while the other decoded 128 MiB dictionaries (402–683 MiB).
func LayersRecordsDictionaries(ctx context.Context, dir string) (string, error) {
	files, err := xzDictionaryFiles(ctx, 16)
	if err != nil {
		return "", err
	}
	line := []byte("0123456789abcdef0123456789abcdef  usr/share/doc/hostile/file\n")
	body := bytes.Repeat(line, (63<<20)/len(line))
	var layers [][]layerEntry
	for l := range 2 {
		entries := []layerEntry{{name: fmt.Sprintf("var/lib/dpkg/info/hostile%d.md5sums", l), body: body}}
		for i := l * 8; i < l*8+8; i++ {
			entries = append(entries, layerEntry{name: fmt.Sprintf("var/log/app.%d.xz", i), body: files[i]})
		}
		layers = append(layers, entries)
	}
	p := filepath.Join(dir, "layers-records-dictionaries.tar")
	return p, writeDockerSave(p, "example.com/hostile/records:2", layers...)
}
