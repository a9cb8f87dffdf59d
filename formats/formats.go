// Package formats opens VM disk and memory images of any supported format,
// detected by magic bytes, and exposes them through one model: an Image with
// named views, each a guest byte space (Disk) with allocated extents.
package formats

import (
	"github.com/imgaudit/imgaudit/formats/model"
)

// The model, re-exported so that callers need only this package.
type (
	Disk        = model.Disk
	Extent      = model.Extent
	Source      = model.Source
	View        = model.View
	Kind        = model.Kind
	Image       = model.Image
	Options     = model.Options
	BackingLink = model.BackingLink
	FormatError = model.FormatError
)

const (
	KindCurrent      = model.KindCurrent
	KindSnapshot     = model.KindSnapshot
	KindBacking      = model.KindBacking
	KindUnreferenced = model.KindUnreferenced
	KindMemory       = model.KindMemory
	KindLayer        = model.KindLayer

	SourceData       = model.SourceData
	SourceCompressed = model.SourceCompressed
	SourceZero       = model.SourceZero
	SourceDerived    = model.SourceDerived
)

var (
	ErrUnknownFormat = model.ErrUnknownFormat
	ErrEncrypted     = model.ErrEncrypted
	ErrUnsupported   = model.ErrUnsupported
)
