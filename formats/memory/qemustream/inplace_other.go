//go:build !unix

package qemustream

import "io"

// mapStream maps nothing here: streams are read through a buffer.
func mapStream(io.ReaderAt, int64) ([]byte, func(), bool) { return nil, nil, false }

func readingMapped(_ string, _ *cursor, parse func() error) error { return parse() }
