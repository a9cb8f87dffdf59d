package hostile

import (
	"archive/tar"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// layerEntry is one entry of a layer: a directory when its name ends in
// "/", else a regular file of body.
type layerEntry struct {
	name string
	body []byte
}

// writeDockerSave writes path, a docker save tarball (go-containerregistry's
// tarball.WriteToFile, as `docker save` lays it out, its layers gzip'd) of
// an image tagged tag whose layers are tars of the entries given, one list
// per layer. Each layer's tar is written as it is read, so that layers of
// large, repeated bodies (entries may share one) cost no memory here.
func writeDockerSave(path, tag string, layers ...[]layerEntry) error {
	var ls []v1.Layer
	for _, entries := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeLayerTar(pw, entries)) }()
			return pr, nil
		})
		if err != nil {
			return err
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		return err
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, t, img)
}

// writeLayerTar writes a layer's tar of entries to w.
func writeLayerTar(w io.Writer, entries []layerEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.body))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			return err
		}
	}
	return tw.Close()
}
