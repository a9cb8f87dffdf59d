// Package vboxsav recognises VirtualBox saved states (.sav) so that they are
// reported as unsupported rather than scanned as raw bytes.
package vboxsav

import (
	"bytes"
	"context"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
)

// Magic starts every saved state unit file (SSMFILEHDR.szMagic).
const Magic = "\x7fVirtualBox SavedState "

// Probe reports whether head is a VirtualBox saved state.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	return bytes.HasPrefix(head, []byte(Magic))
}

// New always fails: the SSM format (compressed units) is not read yet.
func New(_ context.Context, _ io.ReaderAt, _ int64, name string, _ model.Options) (*model.Image, error) {
	return nil, model.Wrapf(model.ErrUnsupported, name, 0, "VirtualBox saved state (.sav) is not supported yet")
}
