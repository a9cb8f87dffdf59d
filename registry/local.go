package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imgaudit/imgaudit/formats/hostfile"
)

// maxTarEntries bounds how many headers are read while looking for a file
// in a docker save tarball.
const maxTarEntries = 1 << 20

// IsContainerSource reports whether path is a local container image source
// that ScanLocal reads: an OCI layout directory (it has an "oci-layout"
// file) or a docker/podman save tarball (a tar with a top-level
// manifest.json). It reads only tar headers.
func IsContainerSource(p string) bool {
	st, err := os.Stat(p)
	if err != nil {
		return false
	}
	if st.IsDir() {
		_, err := os.Stat(filepath.Join(p, "oci-layout"))
		return err == nil
	}
	if !st.Mode().IsRegular() || st.Size() < 1024 {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 512)
	if _, err := io.ReadFull(f, head); err != nil || !looksLikeTar(head) || bytes.Equal(head, make([]byte, 512)) {
		return false
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false
	}
	tr := tar.NewReader(f)
	for range maxTarEntries {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if path.Clean(h.Name) == "manifest.json" {
			return true
		}
	}
	return false
}

// resolveLocal expands a local source into its images.
func (s *Scanner) resolveLocal(ctx context.Context, p string) []image {
	st, err := os.Stat(p)
	if err != nil {
		return []image{{Target: p, Err: err}}
	}
	if st.IsDir() {
		return s.resolveLayout(p)
	}
	return s.resolveTarball(p)
}

// resolveLayout lists every image of an OCI layout's index.json (nested
// indexes included, --platform applied).
func (s *Scanner) resolveLayout(dir string) []image {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return []image{{Target: dir, Err: fmt.Errorf("OCI layout: %w", err)}}
	}
	// index.json is read as a regular file only (a FIFO would block);
	// go-containerregistry opens the blobs the same way.
	raw, err := readRegular(filepath.Join(dir, "index.json"))
	if err != nil {
		return []image{{Target: dir, Err: fmt.Errorf("OCI layout index.json: %w", err)}}
	}
	open := func(h v1.Hash) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) { return lp.Blob(h) }
	}
	var walk func(raw []byte, depth int) []image
	walk = func(raw []byte, depth int) []image {
		if depth >= maxIndexDepth {
			return []image{{Target: dir, Err: fmt.Errorf("indexes nested deeper than %d", maxIndexDepth)}}
		}
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return []image{{Target: dir, Err: fmt.Errorf("OCI layout index: %w", err)}}
		}
		var out []image
		for _, d := range s.selectManifests(im.Manifests) {
			target := dir + "@" + d.Digest.String()
			b, err := lp.Bytes(d.Digest)
			if err != nil {
				out = append(out, image{Target: target, Err: fmt.Errorf("reading manifest: %w", err)})
				continue
			}
			if d.MediaType.IsIndex() {
				out = append(out, walk(b, depth+1)...)
				continue
			}
			if got := sha256.Sum256(b); "sha256:"+hex.EncodeToString(got[:]) != d.Digest.String() {
				out = append(out, image{Target: target, Err: fmt.Errorf("manifest does not match its digest %s", d.Digest)})
				continue
			}
			mt := d.MediaType
			if mt == "" {
				mt = types.OCIManifestSchema1
			}
			out = append(out, imageFromManifest(target, d.Digest.String(), mt, b, platformString(d.Platform), open))
			if len(out) >= maxManifests {
				break
			}
		}
		return out
	}
	out := walk(raw, 0)
	if len(out) == 0 {
		return []image{{Target: dir, Err: errors.New("OCI layout has no image manifest (for this --platform)")}}
	}
	return out
}

// readRegular reads a whole file if it is a regular file.
func readRegular(p string) ([]byte, error) {
	f, err := hostfile.OpenRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// resolveTarball lists the images of a docker/podman save tarball. Its
// layers are keyed by their diff ID (the digest of the uncompressed tar,
// from the image config), since a tarball has no compressed digests.
func (s *Scanner) resolveTarball(file string) []image {
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return []image{{Target: file, Err: fmt.Errorf("docker save tarball: %w", err)}}
	}
	var out []image
	for _, d := range m {
		target := file + "@"
		if len(d.RepoTags) > 0 {
			target += d.RepoTags[0]
		}
		cfgBytes, err := readTarFile(file, d.Config, maxConfigBytes)
		if err != nil {
			out = append(out, image{Target: target, Err: fmt.Errorf("reading config %s: %w", d.Config, err)})
			continue
		}
		sum := sha256.Sum256(cfgBytes)
		id := "sha256:" + hex.EncodeToString(sum[:])
		if len(d.RepoTags) == 0 {
			target += id
		}
		img := image{Target: target, Digest: id, Format: "docker-archive"}
		var diffIDs []v1.Hash
		if cf, err := v1.ParseConfigFile(bytes.NewReader(cfgBytes)); err == nil {
			diffIDs = cf.RootFS.DiffIDs
			if cf.OS != "" {
				img.Platform = cf.Platform().String()
			}
		}
		for i, lp := range d.Layers {
			key := "file:" + lp
			if i < len(diffIDs) {
				key = diffIDs[i].String()
			}
			img.Layers = append(img.Layers, blob{Digest: key, Kind: blobTar, open: tarFileOpener(file, lp)})
		}
		img.Config = &blob{Digest: id, Kind: blobConfig, MediaType: string(types.DockerConfigJSON), Size: int64(len(cfgBytes)),
			open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(cfgBytes)), nil }}
		out = append(out, img)
	}
	if len(out) == 0 {
		return []image{{Target: file, Err: errors.New("docker save tarball lists no image")}}
	}
	return out
}

func tarFileOpener(file, name string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return openTarFile(file, name, 0) }
}

// readTarFile reads a small member of a tarball.
func readTarFile(file, name string, limit int64) ([]byte, error) {
	rc, err := openTarFile(file, name, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

type tarMember struct {
	io.Reader
	f *os.File
}

func (t tarMember) Close() error { return t.f.Close() }

// openTarFile opens a member of a tarball, following symbolic and hard
// links within it (docker save shares layer.tar files through links).
func openTarFile(file, name string, depth int) (io.ReadCloser, error) {
	if depth > 8 {
		return nil, fmt.Errorf("%s: too many links", name)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	want := path.Clean(name)
	tr := tar.NewReader(f)
	for range maxTarEntries {
		h, err := tr.Next()
		if err != nil {
			f.Close()
			if err == io.EOF {
				return nil, fmt.Errorf("%s: not in %s", name, file)
			}
			return nil, fmt.Errorf("%s: reading %s: %w", name, file, err)
		}
		if path.Clean(h.Name) != want {
			continue
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			f.Close()
			return openTarFile(file, path.Join(path.Dir(want), h.Linkname), depth+1)
		case tar.TypeLink:
			f.Close()
			return openTarFile(file, h.Linkname, depth+1)
		}
		return tarMember{Reader: tr, f: f}, nil
	}
	f.Close()
	return nil, fmt.Errorf("%s: more than %d entries in %s", name, maxTarEntries, file)
}
