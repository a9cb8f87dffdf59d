package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/imgaudit/imgaudit/formats/tarindex"
)

// maxTarEntries bounds how many headers are indexed in a docker save
// tarball, and in a layer whose disks are read in place.
const maxTarEntries = 1 << 20

// IsContainerSource reports whether path is a local container image source
// that ScanLocal reads: an OCI layout directory (it has an "oci-layout"
// file), a dir: transport directory (isDirTransport), a docker/podman save
// tarball (a tar with a top-level manifest.json), or an OCI archive (a tar
// of an OCI layout, with a top-level oci-layout: `podman save --format
// oci-archive`, skopeo's oci-archive:, BuildKit's type=oci output). Of a
// tarball it reads only tar headers.
func IsContainerSource(p string) bool {
	st, err := os.Stat(p)
	if err != nil {
		return false
	}
	if st.IsDir() {
		_, err := os.Stat(filepath.Join(p, "oci-layout"))
		return err == nil || isDirTransport(p)
	}
	if !st.Mode().IsRegular() || st.Size() < 1024 {
		return false
	}
	f, err := hostfile.OpenRegular(p) // still regular, and never blocks
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
		if n := path.Clean(h.Name); n == "manifest.json" || n == "oci-layout" {
			return true
		}
	}
	return false
}

// tarKind says what kind of container source the tarball file is:
// "docker-archive" when it has a top-level manifest.json (Docker 25's
// `docker save` also lays an OCI layout beside it), else "oci-archive"
// when it has a top-level oci-layout, else "".
func tarKind(ctx context.Context, file string) (string, error) {
	f, err := openFileAt(file, hostfile.OpenRegular)
	if err != nil {
		return "", err
	}
	defer f.close()
	x, err := tarindex.Build(ctx, f, f.size, file, maxTarEntries)
	if err != nil {
		return "", err
	}
	if _, err := x.Member(tarindex.Clean("manifest.json")); err == nil {
		return "docker-archive", nil
	}
	if _, err := x.Member(tarindex.Clean("oci-layout")); err == nil {
		return "oci-archive", nil
	}
	return "", nil
}

// resolveLocal expands a local source into its images.
func (s *Scanner) resolveLocal(ctx context.Context, p string) []image {
	st, err := os.Stat(p)
	if err != nil {
		return []image{{Target: p, Err: err}}
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(p, "oci-layout")); err != nil && isDirTransport(p) {
			return s.resolveDirTransport(p)
		}
		return s.resolveLayout(p)
	}
	kind, err := tarKind(ctx, p)
	if err != nil {
		return []image{{Target: p, Err: err}}
	}
	if kind == "oci-archive" {
		return s.resolveOCIArchive(p)
	}
	return s.resolveTarball(p)
}

// ociLayout reads an OCI layout's files: index.json, manifests and
// indexes (whole, within maxMetadataBytes), and blobs (as streams, and
// read in place where they are not compressed).
type ociLayout struct {
	name     string // the directory or archive, as targets name it
	index    func() ([]byte, error)
	manifest func(h v1.Hash) ([]byte, error)
	blob     func(h v1.Hash) blobSource
}

// dirTransportVersion starts the version file of a directory that
// containers/image's dir: transport wrote (`podman save --format
// docker-dir`, `skopeo copy ... dir:PATH`): one image's manifest.json,
// and its blobs named by their SHA-256 in hex.
const dirTransportVersion = "Directory Transport Version: 1."

// isDirTransport reports whether dir is such a directory.
func isDirTransport(dir string) bool {
	b, err := readRegular(filepath.Join(dir, "version"), hostfile.OpenRegularNoFollow, 64)
	if err != nil || !bytes.HasPrefix(b, []byte(dirTransportVersion)) {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "manifest.json"))
	return err == nil
}

// resolveDirTransport lists the image of a dir: transport directory. Its
// manifest and blobs are read as an OCI layout's are (regular files, not
// followed through links, the manifest within maxMetadataBytes). A
// manifest list there (`skopeo copy --all`, `podman manifest push --all`)
// is read as an OCI layout's index.json, --platform applied: its images'
// manifests are the files named DIGEST.manifest.json beside it, as
// containers/image writes them.
func (s *Scanner) resolveDirTransport(dir string) []image {
	raw, err := readRegular(filepath.Join(dir, "manifest.json"), hostfile.OpenRegularNoFollow, maxMetadataBytes)
	if err != nil {
		return []image{{Target: dir, Err: fmt.Errorf("dir: transport manifest.json: %w", err)}}
	}
	var head struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return []image{{Target: dir, Err: fmt.Errorf("dir: transport manifest.json: %w", err)}}
	}
	blob := func(h v1.Hash) blobSource {
		if h.Algorithm != "sha256" {
			err := fmt.Errorf("blob %s: the dir: transport names only SHA-256 blobs", h)
			return blobSource{open: func(context.Context) (io.ReadCloser, error) { return nil, err }}
		}
		p := filepath.Join(dir, h.Hex)
		return blobSource{
			open: func(context.Context) (io.ReadCloser, error) {
				f, err := hostfile.OpenRegularNoFollow(p)
				if err != nil {
					return nil, err
				}
				return f, nil
			},
			openAt: func(context.Context) (*blobFileAt, error) {
				return openFileAt(p, hostfile.OpenRegularNoFollow)
			},
		}
	}
	if head.MediaType.IsIndex() {
		return s.resolveOCI(ociLayout{
			name:  dir,
			index: func() ([]byte, error) { return raw, nil },
			manifest: func(h v1.Hash) ([]byte, error) {
				if h.Algorithm != "sha256" {
					return nil, fmt.Errorf("manifest %s: the dir: transport names only SHA-256 manifests", h)
				}
				return readRegular(filepath.Join(dir, h.Hex+".manifest.json"), hostfile.OpenRegularNoFollow, maxMetadataBytes)
			},
			blob: blob,
		})
	}
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	mt := head.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	return []image{imageFromManifest(dir+"@"+digest, digest, mt, raw, "", blob)}
}

// resolveLayout lists every image of an OCI layout directory. Its files
// (index.json, and blobs/ALG/HEX for manifests and blobs) are read only
// as regular files inside it: no component below the directory may be a
// symbolic link (hostfile.OpenBeneath). go-containerregistry refuses a
// blob that is itself a link, but followed a blobs or blobs/sha256
// directory that links to another store's, and index.json was followed
// wherever it led: a layout of its own index.json and a link to another
// store's blobs read that store's images and reported them as its own.
func (s *Scanner) resolveLayout(dir string) []image {
	if _, err := layout.FromPath(dir); err != nil {
		return []image{{Target: dir, Err: fmt.Errorf("OCI layout: %w", err)}}
	}
	open := func(rel ...string) func(string) (*os.File, error) {
		return func(string) (*os.File, error) { return hostfile.OpenBeneath(dir, path.Join(rel...)) }
	}
	blobPath := func(h v1.Hash) string { return filepath.Join(dir, "blobs", h.Algorithm, h.Hex) }
	return s.resolveOCI(ociLayout{
		name: dir,
		// index.json is read as a regular file only (a FIFO would block).
		index: func() ([]byte, error) {
			return readRegular(filepath.Join(dir, "index.json"), open("index.json"), maxMetadataBytes)
		},
		// Within maxMetadataBytes.
		manifest: func(h v1.Hash) ([]byte, error) {
			return readRegular(blobPath(h), open("blobs", h.Algorithm, h.Hex), maxMetadataBytes)
		},
		blob: func(h v1.Hash) blobSource {
			return blobSource{
				open: func(context.Context) (io.ReadCloser, error) {
					f, err := hostfile.OpenBeneath(dir, path.Join("blobs", h.Algorithm, h.Hex))
					if err != nil {
						return nil, err
					}
					return f, nil
				},
				// The blob is a file of the layout: read in place.
				openAt: func(context.Context) (*blobFileAt, error) {
					return openFileAt(blobPath(h), open("blobs", h.Algorithm, h.Hex))
				},
			}
		},
	})
}

// resolveOCIArchive lists every image of an OCI archive: a tar of an OCI
// layout, whose files are its members (links inside the tar followed, as
// in a docker save tarball; nothing outside it).
func (s *Scanner) resolveOCIArchive(file string) []image {
	member := func(h v1.Hash) string { return path.Join("blobs", h.Algorithm, h.Hex) }
	return s.resolveOCI(ociLayout{
		name:     file,
		index:    func() ([]byte, error) { return readTarFile(file, "index.json", maxMetadataBytes) },
		manifest: func(h v1.Hash) ([]byte, error) { return readTarFile(file, member(h), maxMetadataBytes) },
		blob: func(h v1.Hash) blobSource {
			return blobSource{open: tarFileOpener(file, member(h)), openAt: tarMemberAt(file, member(h))}
		},
	})
}

// resolveOCI lists every image of an OCI layout's index.json (nested
// indexes included, --platform applied).
func (s *Scanner) resolveOCI(l ociLayout) []image {
	dir := l.name
	raw, err := l.index()
	if err != nil {
		return []image{{Target: dir, Err: fmt.Errorf("OCI layout index.json: %w", err)}}
	}
	// At most maxManifests images, over every nested index; past them an
	// error image says so, so that the run is incomplete (before, a
	// layout's further manifests were dropped without a word).
	images, full := 0, false
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
			if full {
				break
			}
			if images >= maxManifests {
				full = true
				out = append(out, image{Target: dir, Err: fmt.Errorf("the layout lists more than %d manifests: the rest are skipped", maxManifests)})
				break
			}
			target := dir + "@" + d.Digest.String()
			b, err := l.manifest(d.Digest)
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
			out = append(out, imageFromManifest(target, d.Digest.String(), mt, b, platformString(d.Platform), l.blob))
			images++
		}
		return out
	}
	out := walk(raw, 0)
	if len(out) == 0 {
		return []image{{Target: dir, Err: errors.New("OCI layout has no image manifest (for this --platform)")}}
	}
	return out
}

// maxMetadataBytes bounds what is read into memory of an OCI layout's
// index.json, of each manifest or index it names, and of a save
// tarball's manifest.json: a registry refuses manifests over 4 MiB
// (distribution's default), and a stranger's layout could name a blob
// of any size.
const maxMetadataBytes = 8 << 20

// readRegular reads a whole file, opened by open (which refuses what is
// not a regular file), of at most limit bytes.
func readRegular(p string, open func(string) (*os.File, error), limit int64) ([]byte, error) {
	f, err := open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: over %d bytes", p, limit)
	}
	return b, nil
}

// resolveTarball lists the images of a docker/podman save tarball. Its
// layers are keyed by their diff ID (the digest of the uncompressed tar,
// from the image config), since a tarball has no compressed digests.
func (s *Scanner) resolveTarball(file string) []image {
	opener := func() (io.ReadCloser, error) { return hostfile.OpenRegular(file) }
	// go-containerregistry decodes manifest.json whole: its size is
	// checked first.
	if mj, err := openTarMember(context.Background(), file, "manifest.json"); err == nil {
		size := mj.size
		mj.close()
		if size > maxMetadataBytes {
			return []image{{Target: file, Err: fmt.Errorf("docker save tarball: manifest.json is %d bytes, over %d", size, maxMetadataBytes)}}
		}
	}
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
			img.Layers = append(img.Layers, blob{Digest: key, Kind: blobTar, open: tarFileOpener(file, lp), openAt: tarMemberAt(file, lp)})
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

// openFileAt opens a regular file with open as a blob read in place.
func openFileAt(p string, open func(string) (*os.File, error)) (*blobFileAt, error) {
	f, err := open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &blobFileAt{ReaderAt: f, size: st.Size(), close: f.Close}, nil
}

// tarMemberAt opens a member of a tarball (a docker save layer.tar) as a
// blob read in place.
func tarMemberAt(file, name string) func(context.Context) (*blobFileAt, error) {
	return func(ctx context.Context) (*blobFileAt, error) { return openTarMember(ctx, file, name) }
}

func tarFileOpener(file, name string) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		m, err := openTarMember(ctx, file, name)
		if err != nil {
			return nil, err
		}
		return tarMember{io.NewSectionReader(m, 0, m.size), m.close}, nil
	}
}

// readTarFile reads a small member of a tarball.
func readTarFile(file, name string, limit int64) ([]byte, error) {
	m, err := openTarMember(context.Background(), file, name)
	if err != nil {
		return nil, err
	}
	defer m.close()
	if m.size > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return io.ReadAll(io.NewSectionReader(m, 0, m.size))
}

// tarMember is a member of a tarball read as a stream.
type tarMember struct {
	io.Reader
	close func() error
}

func (t tarMember) Close() error { return t.close() }

// openTarMember opens a member of a tarball in place, following the
// tarball's symbolic and hard links (docker save shares layer.tar files
// through links).
func openTarMember(ctx context.Context, file, name string) (*blobFileAt, error) {
	f, err := openFileAt(file, hostfile.OpenRegular)
	if err != nil {
		return nil, err
	}
	x, err := tarindex.Build(ctx, f, f.size, file, maxTarEntries)
	if err != nil {
		f.close()
		return nil, err
	}
	m, err := x.Member(tarindex.Clean(name))
	if err != nil {
		f.close()
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &blobFileAt{ReaderAt: m, size: m.Size(), close: f.close}, nil
}
