package model

import "context"

// SlackStream is a place in an unreferenced view where the compressed
// stream of a freed cluster may start: an image that packs compressed
// clusters back to back (qcow2) keeps an overwritten cluster's old stream
// in a host cluster that other compressed clusters still use. The stream
// starts at an offset in [From, To), ends at or before Limit, and decodes
// to exactly Size bytes with Codec ("deflate": raw deflate, or "zstd").
type SlackStream struct {
	From, To, Limit int64
	Codec           string
	Size            int64
}

// SlackLister is implemented by the disks of unreferenced views that can
// say where freed compressed streams may lie, so that a scanner tries to
// decode only there, never all data.
type SlackLister interface {
	SlackStreams(ctx context.Context) ([]SlackStream, error)
}
